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
"""

from keras.src.backend import rnn as _keras_rnn
from keras.src.backend import standardize_data_format

# Whether a `keras.StatelessScope` is active (JAX's training step opens
# one): `keras_cbm.training.variable_values` opens an inner one (a TBPTT
# chunk, a handover loop's body), which must then map every variable, as a
# variable reads the innermost scope only.
from keras.src.backend.common.stateless_scope import in_stateless_scope
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell
from keras.src.losses.loss import unscale_loss_for_distribution
from keras.src.ops.operation_utils import compute_conv_output_shape
from keras.src.utils.argument_validation import standardize_padding
from keras.src.utils.argument_validation import standardize_tuple

# Keras' TensorFlow loop replaces a missing `input_length` by
# `inputs.shape[1]`, which a tuple of inputs lacks; an int bound is only the
# loop's iteration limit (it stops at the real length), so a large one serves.
_UNKNOWN_LENGTH_BOUND = 2**31 - 1


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
    return _keras_rnn(
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
    object.__setattr__(layer, name, method)


def unshadow_method(layer, name):
    """Ends `shadow_method(layer, name, ...)`: the class's method runs
    again."""
    object.__delattr__(layer, name)


__all__ = [
    "DropoutRNNCell",
    "compute_conv_output_shape",
    "in_stateless_scope",
    "recurrent_loop",
    "shadow_method",
    "standardize_data_format",
    "standardize_padding",
    "standardize_tuple",
    "sub_layers",
    "unscale_loss_for_distribution",
    "unshadow_method",
]
