"""Runs any Keras model of video with every recurrent layer's state in and
out: what clip state handover and frame-by-frame serving need."""

import contextlib
import threading

import keras
from keras import ops

from keras_cbm.keras_internals import shadow_method
from keras_cbm.keras_internals import sub_layers
from keras_cbm.keras_internals import unshadow_method
from keras_cbm.layers.base_cbm import BaseCBM


def _refusal(layer):
    """Why `layer` cannot run from handed-over states, or `None`."""
    if isinstance(layer, keras.layers.Bidirectional):
        return "it runs backwards over time: later frames change earlier ones"
    if isinstance(layer, keras.layers.RNN):
        if layer.go_backwards:
            return (
                "it has `go_backwards=True`: later frames change earlier ones"
            )
        if layer.stateful:
            return "it is `stateful`: it keeps its own state between calls"
    return None


def recurrent_layers(model, forward_only=True):
    """The recurrent layers of `model`, at any depth, in tracking order.

    Every `keras.layers.RNN` counts (`LSTM`, `GRU`, `ConvLSTM1D/2D/3D`,
    `keras.layers.RNN(cell)`, the CBM layers, the layers inside a `DeepCBM`
    or a `Bidirectional` wrapper).

    Args:
        model: A Keras layer or model.
        forward_only: Whether to refuse layers that cannot start from given
            states.

    Returns:
        A list of `keras.layers.RNN` layers.

    Raises:
        ValueError: With `forward_only`, for a layer that cannot start from
            given states (a `Bidirectional` wrapper, `go_backwards`,
            `stateful`), naming it and saying why.
    """
    found = []
    for layer in sub_layers(model):
        reason = _refusal(layer) if forward_only else None
        if reason is not None:
            raise ValueError(
                f"`model` must run forward in time from given states, but "
                f"its layer '{layer.name}' ({type(layer).__name__}) cannot: "
                f"{reason}. Received: model='{model.name}'"
            )
        if isinstance(layer, keras.layers.RNN):
            found.append(layer)
    return found


def call_with_mask(model, sequences, mask, training=None):
    """Calls `model` with a time mask given to every recurrent layer.

    The mask reaches each recurrent layer of `model` (see
    `recurrent_layers`, any direction), whatever layers lie between, as
    `RecurrentStates` gives it.

    Args:
        model: A Keras model of sequences `(batch, time, ...)`.
        sequences: The model's input.
        mask: Boolean tensor `(batch, time)`, `False` on steps to skip.
        training: Python boolean, the mode of the model.

    Returns:
        The model's outputs.
    """
    layers = recurrent_layers(model, forward_only=False)
    with _handing_over(layers, [None] * len(layers), mask, record=False):
        return model(sequences, training=training)


class RecurrentStates:
    """Runs a video model from given states of all its recurrent layers.

    Any Keras model (`Sequential`, functional or subclassed) can run a
    sequence from the states another run ended in, and return the states
    its own run ends in, without being rebuilt: during a call, every
    recurrent layer of the model (see `recurrent_layers`) takes its
    `initial_state` from `initial_states` and hands back its final states.
    A time `mask` reaches every recurrent layer the same way, whatever
    layers lie between (it replaces masks Keras propagates there; a masked
    step keeps every state), so the final
    states of a run with its last frames masked are the states at the last
    unmasked frame. Running a video in consecutive pieces, each from the
    states the previous one returned, equals one run over the video.

    States are a list with one entry per recurrent layer, in the order of
    `layers`, each the flat list of that layer's states in the order its
    `initial_state` takes them: `[c]` for a CBM layer, `[h, c]` for `LSTM`
    and `ConvLSTM*`, `[h]` for `GRU`, the cells' states one after the other
    for stacked cells (`keras.layers.RNN([LSTMCell, GRUCell])`: `[h1, c1,
    h2]`). A layer that sees a mask from Keras (a `keras.layers.Masking`
    before it) hands over its last output too, after its states (`[c,
    output]`, `[h, c, output]`), unless it has `zero_output_for_mask`: one
    run repeats that output at a masked step, so a piece starting on a
    masked frame outputs as one run there too. Each recurrent layer must
    be called once per run of the model.

    Runs are thread-safe and re-entrant: what a run gives and gathers
    belongs to its own thread (threads of a server, `tf.distribute` replica
    threads, a thread calling the model plainly meanwhile), and a run may
    happen inside another's call (a model whose `call` runs its sub-model
    through `RecurrentStates`); a layer covered by both takes the innermost
    run's states and mask and hands its final states to that run only.
    `return_state` is never changed; a run with `unroll` sets each layer's
    `unroll` for the duration of that layer's call, which holds the layer's
    lock: a call of the layer in another thread meanwhile waits, and runs
    with the layer's own setting.

    Args:
        model: A Keras model of sequences `(batch, time, ...)`.

    Call arguments:
        sequences: The model's input, `(batch, time, ...)`.
        initial_states: Optional states to start from; `None` starts every
            layer as the model does.
        mask: Optional boolean tensor `(batch, time)`, `False` on steps to
            skip.
        training: Python boolean, the mode of the model.
        unroll: Optional Python boolean: whether every recurrent layer
            unrolls its loop in this run (e.g. over one frame, a step
            without a while loop); `None` keeps each layer's own.

    Returns:
        `(outputs, states)`: the model's outputs and the final states.

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((None, 8, 8, 3)),
    ...     keras.layers.ConvLSTM2D(4, 3, padding="same",
    ...                             return_sequences=True),
    ...     keras.layers.TimeDistributed(keras.layers.Flatten()),
    ...     keras.layers.LSTM(5, return_sequences=True)])
    >>> run = RecurrentStates(model)
    >>> frames = np.random.rand(2, 6, 8, 8, 3).astype("float32")
    >>> first, states = run(frames[:, :4])
    >>> second, _ = run(frames[:, 4:], initial_states=states)
    >>> [len(s) for s in states]
    [2, 2]
    >>> bool(np.allclose(np.concatenate([first, second], 1), model(frames),
    ...                  atol=1e-5))
    True
    """

    def __init__(self, model):
        self.model = model
        self.layers = recurrent_layers(model)

    def __call__(
        self,
        sequences,
        initial_states=None,
        mask=None,
        training=None,
        unroll=None,
    ):
        count = len(self.layers)
        if initial_states is None:
            initial_states = [None] * count
        if len(initial_states) != count:
            raise ValueError(
                "`initial_states` must hold one list of states per recurrent "
                f"layer of model '{self.model.name}' ({count}: "
                f"{[layer.name for layer in self.layers]}). Received: "
                f"{len(initial_states)} entries"
            )
        with _handing_over(
            self.layers, initial_states, mask, unroll=unroll
        ) as frame:
            outputs = self.model(sequences, training=training)
        missing = [
            layer.name
            for layer in self.layers
            if frame.final_states[id(layer)] is None
        ]
        if missing:
            raise ValueError(
                f"Recurrent layers {missing} of model '{self.model.name}' did "
                "not run in a call of the model: they have no state to hand "
                "over."
            )
        return outputs, [frame.final_states[id(layer)] for layer in self.layers]

    def state_shapes(self, frame_shape, dtype="float32"):
        """The shape of every state, batch `None`, for frames of
        `frame_shape`, in the structure of the states (from a run over one
        frame)."""
        _, states = self(ops.zeros((1, 1) + tuple(frame_shape), dtype))
        return [
            [(None,) + tuple(state.shape[1:]) for state in layer_states]
            for layer_states in states
        ]


def _step_mask(mask, sequences, layer):
    """`mask` in the form `layer` needs for `sequences`.

    Keras' JAX loop compares a `(batch, 1)` step mask with every state, so
    its convolutional RNNs need the mask with the spatial axes as ones
    (TensorFlow's loop takes that form too); the CBM layers take
    `(batch, time)`.
    """
    mask = ops.cast(mask, "bool")
    if isinstance(layer, BaseCBM):
        return mask
    extra = len(sequences.shape) - 2
    return ops.reshape(mask, tuple(ops.shape(mask)) + (1,) * extra)


class _Frame:
    """What one `RecurrentStates` (or `call_with_mask`) call gives its
    recurrent layers and gathers from them."""

    def __init__(self, layers, states, mask, record, unroll=None):
        self.handed = {
            id(layer): state
            for layer, state in zip(layers, states, strict=True)
        }
        self.mask = mask
        self.unroll = unroll
        # Per layer that carries its output (see `_carries_output`): the
        # last output handed to it, or `None`.
        self.handed_outputs = {}
        self.final_states = (
            {id(layer): None for layer in layers} if record else None
        )

    def record(self, layer, states):
        if self.final_states is None:
            return
        if self.final_states[id(layer)] is not None:
            raise ValueError(
                f"Recurrent layer '{layer.name}' ran twice in one call of "
                "its model: a layer called several times per sequence "
                "has no single state to hand over."
            )
        self.final_states[id(layer)] = states


# Each thread's active frames, innermost last: a call in one thread never
# sees another's (a server's thread pool, `tf.distribute` replica threads).
_active = threading.local()
# Guards the installation counts below across threads.
_install_lock = threading.Lock()
_installed = {}
# Per installed layer: held by each call of it, so that a run's `unroll`
# is seen by that run's call alone.
_call_locks = {}


def _frame_of(layer):
    """The innermost active frame of this thread that covers `layer`."""
    for frame in reversed(getattr(_active, "frames", ())):
        if id(layer) in frame.handed:
            return frame
    return None


def _install(layer):
    """Shadows `layer`'s `call` and `inner_loop` with the dispatchers, once
    however many frames use it (see `keras_cbm.keras_internals` for the
    Keras behaviour this relies on)."""
    with _install_lock:
        count = _installed.get(id(layer), 0)
        if count == 0:
            _call_locks[id(layer)] = threading.RLock()
            shadow_method(layer, "call", _dispatching_call(layer, layer.call))
            shadow_method(
                layer, "inner_loop", _recording_loop(layer, layer.inner_loop)
            )
        _installed[id(layer)] = count + 1


def _uninstall(layer):
    with _install_lock:
        count = _installed.pop(id(layer)) - 1
        if count:
            _installed[id(layer)] = count
        else:
            unshadow_method(layer, "inner_loop")
            unshadow_method(layer, "call")
            del _call_locks[id(layer)]


def _dispatching_call(layer, call):
    """`layer.call`, taking the innermost frame's states, mask and
    `unroll`."""
    lock = _call_locks[id(layer)]

    def dispatching_call(
        sequences, initial_state=None, mask=None, training=False
    ):
        frame = _frame_of(layer)
        unroll = None
        if frame is not None:
            # Keras' own mask, before a handed one replaces it: whether it
            # is there is a property of the model, the same in every run,
            # so the states' structure is too.
            carries = _carries_output(layer, mask)
            handed = frame.handed[id(layer)]
            handed_output = None
            if handed is not None:
                initial_state, handed_output = _nested_states(
                    layer, handed, carries
                )
            if carries:
                frame.handed_outputs[id(layer)] = handed_output
            if frame.mask is not None:
                # The handed mask is the sequence's own: it replaces
                # whatever mask Keras propagated to the layer.
                mask = _step_mask(frame.mask, sequences, layer)
            unroll = frame.unroll
        with lock:
            # Keras' RNN reads `unroll` from the layer, in `call` and its
            # loop alike.
            own = layer.unroll
            layer.unroll = own if unroll is None else unroll
            try:
                return call(
                    sequences,
                    initial_state=initial_state,
                    mask=mask,
                    training=training,
                )
            finally:
                layer.unroll = own

    return dispatching_call


def _carries_output(layer, mask):
    """Whether `layer`, called with Keras' `mask`, hands over its last
    output after its states.

    At a masked step Keras' recurrent loop repeats the layer's last output
    (zeros before any), which a run from handed states does not have: a
    layer that sees a mask takes it as one more state, unless it outputs
    zeros there (`zero_output_for_mask`).
    """
    return mask is not None and not layer.zero_output_for_mask


def _nested_states(layer, states, carries):
    """`(initial_state, last_output)` from the flat list `states`: the
    states in the structure `layer`'s cell takes (a list of lists for
    stacked cells, `keras.layers.RNN([cell, cell])`, the list itself for
    any other layer) and, when the layer `carries` its output (see
    `_carries_output`), its last output (the last entry), else `None`."""
    structure = layer.get_initial_state(batch_size=1)
    count = len(keras.tree.flatten(structure))
    expected = f"{count} tensors"
    if carries:
        expected = f"{count + 1} tensors (its states, then its last output)"
    if len(states) != count + int(carries):
        raise ValueError(
            f"The states of recurrent layer '{layer.name}' must be a list "
            f"of {expected}. Received: {len(states)} states"
        )
    last_output = states[count] if carries else None
    return (
        keras.tree.pack_sequence_as(structure, list(states[:count])),
        last_output,
    )


def _continued(layer, handed_output, mask, last_output, outputs):
    """`(last_output, outputs)` of `layer`'s loop from handed states, as
    one run over the frames before too gives them: the masked steps
    before the first unmasked one repeat `handed_output`, the output of
    the last unmasked step before the loop (per position, for a mask with
    spatial axes)."""
    mask = ops.cast(keras.tree.flatten(mask)[0], "bool")
    handed_output = ops.cast(handed_output, last_output.dtype)

    def where(unmasked, value, other):
        for _ in range(len(value.shape) - len(unmasked.shape)):
            unmasked = ops.expand_dims(unmasked, -1)
        return ops.where(unmasked, value, other)

    last_output = where(ops.any(mask, axis=1), last_output, handed_output)
    if layer.return_sequences:
        unmasked_before = ops.cumsum(ops.cast(mask, "int32"), axis=1) > 0
        outputs = where(
            unmasked_before, outputs, ops.expand_dims(handed_output, 1)
        )
    return last_output, outputs


def _recording_loop(layer, inner_loop):
    """`layer.inner_loop`, giving its final states to the innermost frame:
    the layer's `return_state` is left alone, as other threads read it."""

    def recording_loop(sequences, initial_state, mask, training=False):
        last_output, outputs, states = inner_loop(
            sequences=sequences,
            initial_state=initial_state,
            mask=mask,
            training=training,
        )
        frame = _frame_of(layer)
        if frame is None:
            return last_output, outputs, states
        final = keras.tree.flatten(states)
        if id(layer) in frame.handed_outputs:
            handed_output = frame.handed_outputs[id(layer)]
            if handed_output is not None and mask is not None:
                last_output, outputs = _continued(
                    layer, handed_output, mask, last_output, outputs
                )
            final = final + [last_output]
        # As `keras.layers.RNN.call` returns them.
        frame.record(
            layer, [ops.cast(state, layer.compute_dtype) for state in final]
        )
        return last_output, outputs, states

    return recording_loop


@contextlib.contextmanager
def _handing_over(layers, states, mask, record=True, unroll=None):
    """While active, in this thread, each of `layers` starts from its entry
    of `states` (where not `None`), takes `mask` (when given) and `unroll`
    (when not `None`), unless an inner frame covers it; with `record`, the
    frame yielded gathers every layer's final states in `final_states`."""
    frame = _Frame(layers, states, mask, record, unroll)
    installed = []
    try:
        for layer in layers:
            _install(layer)
            installed.append(layer)
        if not hasattr(_active, "frames"):
            _active.frames = []
        _active.frames.append(frame)
        try:
            yield frame
        finally:
            _active.frames.remove(frame)
    finally:
        for layer in installed:
            _uninstall(layer)
