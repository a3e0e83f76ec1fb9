"""The private Keras parts keras_cbm relies on, imported in one place.

Keras 3 has no public API for a recurrent loop over precomputed inputs
(`recurrent_loop` wraps the backend's), for the dropout-mask cache that
`keras.layers.RNN` primes before its loop, for the argument and shape
helpers its own conv RNNs use (all used by `keras_cbm.layers`), for a
layer's sub-layers, for running a recurrent layer's `call` and
`inner_loop` with given states (`shadow_method`), for the stateless scope
of JAX's training step, or for undoing the loss scaling of a distribution
strategy (used by `keras_cbm.models` and `keras_cbm.training`). If a Keras
release moves one of them, this is the only module to change. It imports no
TensorFlow.

Each part was checked on the Keras versions of `CHECKED_KERAS_VERSIONS`.
Where a Keras release lacks one, the first use raises `KerasChangedError`
naming the behaviour and those versions, instead of an error from deep
inside Keras; `tests/models/keras_internals_test.py` checks the behaviours
themselves, and `bash tests/run --keras-nightly` runs the suite on the next
Keras (DEVELOPERS.md).
"""

import functools
import importlib

import keras

# The Keras releases on which every part of this module was checked (the
# suite passes on each; DEVELOPERS.md says how to check a new one).
CHECKED_KERAS_VERSIONS = ("3.15.1", "3.16.0.dev2026102704")


class KerasChangedError(RuntimeError):
    """A private Keras behaviour keras_cbm relies on is missing from the
    installed Keras."""


def keras_changed(behaviour):
    """The error for a private Keras `behaviour` this Keras lacks.

    Args:
        behaviour: What keras_cbm relies on, as a phrase.

    Returns:
        A `KerasChangedError` naming the behaviour, the installed Keras and
        the versions it was checked on.
    """
    return KerasChangedError(
        f"keras_cbm relies on {behaviour} (private Keras API, checked on "
        f"Keras {', '.join(CHECKED_KERAS_VERSIONS)}), which Keras "
        f"{keras.__version__} does not have. Install one of the checked "
        "versions, or a keras_cbm release that supports this one."
    )


def _private(module, name):
    """`module.name` from Keras' private tree, or `KerasChangedError`."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise keras_changed(f"`{module}.{name}`") from None


standardize_data_format = _private(
    "keras.src.backend", "standardize_data_format"
)
# Whether a `keras.StatelessScope` is active (JAX's training step opens
# one): `keras_cbm.training.variable_values` opens an inner one (a TBPTT
# chunk, a handover loop's body), which must then map every variable, as a
# variable reads the innermost scope only.
in_stateless_scope = _private(
    "keras.src.backend.common.stateless_scope", "in_stateless_scope"
)
DropoutRNNCell = _private(
    "keras.src.layers.rnn.dropout_rnn_cell", "DropoutRNNCell"
)
unscale_loss_for_distribution = _private(
    "keras.src.losses.loss", "unscale_loss_for_distribution"
)
compute_conv_output_shape = _private(
    "keras.src.ops.operation_utils", "compute_conv_output_shape"
)
standardize_padding = _private(
    "keras.src.utils.argument_validation", "standardize_padding"
)
standardize_tuple = _private(
    "keras.src.utils.argument_validation", "standardize_tuple"
)

# Keras' TensorFlow loop replaces a missing `input_length` by
# `inputs.shape[1]`, which a tuple of inputs lacks; an int bound is only the
# loop's iteration limit (it stops at the real length), so a large one serves.
_UNKNOWN_LENGTH_BOUND = 2**31 - 1


@functools.cache
def _backend_rnn():
    """The active backend's recurrent loop: `keras.src.backend.rnn` is the
    function up to Keras 3.15 and the backend's `rnn` module after it."""
    loop = _private("keras.src.backend", "rnn")
    if not callable(loop):
        loop = getattr(loop, "rnn", None)
    if not callable(loop):
        raise keras_changed("the backend's recurrent loop `backend.rnn`")
    return loop


def recurrent_loop(
    step_function,
    inputs,
    initial_states,
    go_backwards=False,
    unroll=False,
    return_all_outputs=True,
):
    """Runs `step_function` over the time axis of a tuple of sequences.

    Args:
        step_function: `(step_inputs, states) -> (output, new_states)`, where
            `step_inputs` is the tuple of `inputs` at one step.
        inputs: A tuple of time-major `(time, batch, ...)` tensors (rank >=
            3).
        initial_states: A list of tensors.
        go_backwards: Whether to iterate from the last step to the first.
        unroll: Whether to unroll the loop (needs a static time length).
        return_all_outputs: Whether to return all outputs or only the last.

    Returns:
        `(last_output, outputs, new_states)`, with time-major `outputs`
        (`(1, batch, ...)` when `return_all_outputs=False`).
    """
    return _backend_rnn()(
        step_function,
        inputs,
        initial_states,
        go_backwards=go_backwards,
        unroll=unroll,
        input_length=inputs[0].shape[0] or _UNKNOWN_LENGTH_BOUND,
        time_major=True,
        return_all_outputs=return_all_outputs,
    )


def sub_layers(layer):
    """Every layer inside `layer`, depth first, in the order they were set.

    Keras has no public list of a layer's sub-layers (`Model.layers` lists
    a model's own layers, not those inside them, e.g. a `DeepCBM`'s), and
    its private `_flatten_layers` reverses siblings; `_layers` is the list
    Keras tracks them in.

    Args:
        layer: A Keras layer or model.

    Returns:
        A list of layers, each once, `layer` itself excluded.
    """
    found, seen = [], set()

    def visit(parent):
        if not hasattr(parent, "_layers"):
            raise keras_changed("the list of a layer's sub-layers `_layers`")
        for child in parent._layers:
            if id(child) not in seen:
                seen.add(id(child))
                found.append(child)
                visit(child)

    visit(layer)
    return found


def shadow_method(layer, name, method):
    """Makes `method` run in place of `layer`'s method `name`, for this
    instance only, until `unshadow_method`.

    Two behaviours of Keras 3 make this work, and `RecurrentStates` (and
    `keras_cbm.serving.export`) rely on them;
    `tests/models/keras_internals_test.py` checks both and fails if a
    release changes them:

    - `Layer.__call__` (`Operation.__call__`) looks `self.call` up at every
      call, eager or traced, so an instance attribute shadows the class's
      method while the layer's own machinery (masks, training, dtype
      policies, name scopes) runs unchanged around it.
    - `keras.layers.RNN.call` runs its loop as `self.inner_loop(sequences=,
      initial_state=, mask=, training=)`, looked up on the instance, which
      returns `(last_output, outputs, final_states)` with the final states
      as a list, whatever the layer's `return_state`.

    `object.__setattr__` keeps Keras' attribute tracking out of it: a
    function is no layer state to track or save.

    Args:
        layer: A Keras layer.
        name: The method's name.
        method: A function of the method's arguments (without `self`).
    """
    if not callable(getattr(type(layer), name, None)):
        raise keras_changed(f"the method `{type(layer).__name__}.{name}`")
    object.__setattr__(layer, name, method)


def unshadow_method(layer, name):
    """Ends `shadow_method(layer, name, ...)`: the class's method runs
    again."""
    object.__delattr__(layer, name)


__all__ = [
    "CHECKED_KERAS_VERSIONS",
    "DropoutRNNCell",
    "KerasChangedError",
    "compute_conv_output_shape",
    "in_stateless_scope",
    "keras_changed",
    "recurrent_loop",
    "shadow_method",
    "standardize_data_format",
    "standardize_padding",
    "standardize_tuple",
    "sub_layers",
    "unscale_loss_for_distribution",
    "unshadow_method",
]
