"""Running a video model over its frames in chunks, each chunk from the
states the previous one ended in, the gradient cut between chunks: what
`TruncatedBPTT` and `StreamingBPTT` share."""

import keras
from keras import ops

from keras_cbm.models.recurrent_states import RecurrentStates
from keras_cbm.training.chunk_gradients import value_and_gradients
from keras_cbm.training.chunk_gradients import with_backward
from keras_cbm.training.variable_values import assign_values
from keras_cbm.training.variable_values import current_values
from keras_cbm.training.variable_values import run_with_values
from keras_cbm.training.video_trainer import VideoTrainer
from keras_cbm.training.video_trainer import check_per_frame


def _frames(tensor, start, length):
    """`tensor[:, start:start + length]`, for a `start` and `length` that
    may be tensors."""
    shape = tuple(ops.shape(tensor))
    return ops.slice(
        tensor,
        (0, start) + (0,) * (len(shape) - 2),
        (shape[0], length) + shape[2:],
    )


def _write(stacked, start, chunk):
    """`stacked` `(time, batch, ...)` with `chunk` `(batch, frames, ...)`
    written from frame `start` on: a scatter of whole frames, which both
    backends differentiate (TensorFlow's dynamic slice update has no
    gradient)."""
    frames = ops.arange(ops.shape(chunk)[1], dtype="int32") + start
    return ops.scatter_update(
        stacked, frames[:, None], ops.moveaxis(chunk, 1, 0)
    )


def _total(losses):
    """The sum of the scalar `losses` (a list, maybe empty), float32."""
    return sum((ops.cast(loss, "float32") for loss in losses), ops.zeros(()))


def chunk_loop(time, chunk_length, step, carry):
    """Calls `step(start, length, carry) -> carry` over the consecutive
    chunks of `time` frames.

    The first chunk runs on its own (its `carry` may change structure, as
    states appear after a run from the model's own), the later full chunks
    in one `keras.ops.fori_loop` whose body is traced once, the last
    shorter chunk in a loop of one run or none: `time` may be a tensor
    (known only when the step runs, TensorFlow), and JAX needs the loops'
    bounds static to differentiate them, which they are where `time` is.

    Args:
        time: Integer or scalar integer tensor, the frames.
        chunk_length: Integer >= 1, frames per chunk.
        step: `step(start, length, carry) -> carry`.
        carry: The first chunk's carry.

    Returns:
        The last chunk's carry.
    """
    full = time // chunk_length
    if isinstance(time, int):
        first = min(chunk_length, time)
        start = max(full, 1) * chunk_length
        last = int(time > start)
    else:
        first = ops.minimum(chunk_length, time)
        start = ops.maximum(full, 1) * chunk_length
        last = ops.cast(time > start, "int32")
    carry = step(0, first, carry)
    carry = ops.fori_loop(
        1,
        full,
        lambda index, carry: step(index * chunk_length, chunk_length, carry),
        carry,
    )
    if not isinstance(last, int) or last:
        carry = ops.fori_loop(
            0, last, lambda _, carry: step(start, time - start, carry), carry
        )
    return carry


class ChunkedTrainer(VideoTrainer):
    """The base of the trainers that run videos in chunks (`TruncatedBPTT`,
    `StreamingBPTT`): a `VideoTrainer` with `run_chunks`.

    The losses the model's layers add in a chunk (`add_loss`, an
    `activity_regularizer`) add up over the chunks, as Keras adds them up
    over the layers' calls: an activity regularizer's sum over the frames
    is that of one run over the whole video.

    Args:
        model: A per-frame video model that
            `keras_cbm.models.RecurrentStates` accepts (no `Bidirectional`,
            `go_backwards` or `stateful` layer).
        rematerialize: Whether the backward pass runs each chunk again and
            takes its gradient in a loop (memory set by the chunk length,
            one more forward pass per chunk) rather than keep every
            chunk's activations.
        **kwargs: `VideoTrainer` arguments (`aggregation`, `from_logits`,
            `name`, `dtype`, ...).
    """

    def __init__(self, model, rematerialize=True, **kwargs):
        super().__init__(model, **kwargs)
        self.rematerialize = rematerialize
        # Refuses, naming it, a layer that cannot start from given states.
        self.recurrent_states = RecurrentStates(model)

    def run_chunks(self, videos, states, chunk_length, training=None):
        """Runs `videos` in chunks of `chunk_length` frames (the last may
        be shorter), each chunk from the states the previous one ended in,
        the gradient cut between chunks.

        The chunks after the first run in one symbolic loop
        (`chunk_loop`), so the traced graph does not grow with the chunks
        and the number of frames may be unknown when the step is traced
        (TensorFlow). The gradient is the sum of the chunks' gradients.
        With `rematerialize` in training, the backward pass runs the chunks
        again, one at a time in a symbolic loop, each chunk's gradient
        computed in the loop's body (`chunk_gradients`): only the inputs are
        kept, so memory is set by the chunk length, not by the chunks.

        Args:
            videos: `(batch, time, *frame_shape)`.
            states: The states the first chunk starts from, in the
                structure of `RecurrentStates` (one list per recurrent
                layer), or `None` for the model's own initial states.
            chunk_length: Integer >= 1, frames per chunk.
            training: Python boolean.

        Returns:
            `(outputs, final_states)`: the per-frame outputs and the final
            states in the structure of `RecurrentStates`, gradient cut.
        """
        videos = ops.cast(videos, self._input_dtype)
        # The states' structure: given, or that of the first chunk's run.
        structure = [] if states is None else [states]
        run_chunk = self._chunk_run(training, structure)
        # Whether the layers add losses, known once a chunk is traced.
        collects = []

        def forward(videos, trainable, flat, values):
            batch, time = ops.shape(videos)[:2]

            def step(start, length, carry):
                flat, outputs, values, added = carry
                chunk_outputs, flat, values, losses = run_chunk(
                    _frames(videos, start, length), flat, trainable, values
                )
                check_per_frame(chunk_outputs.shape, "per chunk")
                if outputs is None:
                    collects.append(bool(losses))
                    outputs = ops.zeros(
                        (time, batch, chunk_outputs.shape[-1]),
                        chunk_outputs.dtype,
                    )
                outputs = _write(outputs, start, chunk_outputs)
                return flat, outputs, values, added + _total(losses)

            flat, outputs, values, added = chunk_loop(
                time, chunk_length, step, (flat, None, values, ops.zeros(()))
            )
            return ops.moveaxis(outputs, 0, 1), added, flat, values

        def backward(args, cotangents):
            videos, trainable, flat, values = args
            time = ops.shape(videos)[1]
            outputs_cotangent, added_cotangent = cotangents[:2]

            def step(start, length, carry):
                flat, values, gradients, video_gradients = carry

                def objective(chunk, trainable):
                    outputs, flat_out, values_out, losses = run_chunk(
                        chunk, flat, trainable, values
                    )
                    cotangent = _frames(outputs_cotangent, start, length)
                    value = ops.sum(
                        ops.cast(outputs, "float32")
                        * ops.cast(cotangent, "float32")
                    )
                    if added_cotangent is not None:
                        value = value + added_cotangent * _total(losses)
                    return value, (flat_out, values_out)

                (flat, values), (chunk_gradients, trainable_gradients) = (
                    value_and_gradients(
                        objective, (_frames(videos, start, length), trainable)
                    )
                )
                gradients = [
                    total + gradient
                    for total, gradient in zip(
                        gradients, trainable_gradients, strict=True
                    )
                ]
                video_gradients = _write(
                    video_gradients, start, chunk_gradients
                )
                return flat, values, gradients, video_gradients

            _, _, gradients, video_gradients = chunk_loop(
                time,
                chunk_length,
                step,
                (
                    flat,
                    values,
                    [ops.zeros_like(value) for value in trainable],
                    ops.zeros_like(ops.moveaxis(videos, 1, 0)),
                ),
            )
            return ops.moveaxis(video_gradients, 0, 1), gradients, None, None

        if training and self.rematerialize:
            forward = with_backward(forward, backward)
        outputs, added, flat, values = forward(
            videos,
            [variable.value for variable in self.model.trainable_variables],
            keras.tree.flatten(states) if states is not None else [],
            current_values(self.model),
        )
        assign_values(self.model, values)
        if collects[0]:
            self.add_loss(added)
        final = keras.tree.pack_sequence_as(structure[0], list(flat))
        return outputs, keras.tree.map_structure(ops.stop_gradient, final)

    def _chunk_run(self, training, structure):
        """A function `(chunk, flat states it starts from (none: the
        model's own), values of the model's trainable variables, values of
        its non-trainable variables)` to `(outputs, flat final states, new
        values, added losses)`; the states it starts from are
        gradient-cut (the chunk boundary). `structure` is a list holding
        the states' structure (see `RecurrentStates`), or empty to hold
        that of the first run's final states.

        Stateless in the model's variables: the weights are arguments, so
        that a chunk's gradient can be taken in them inside a loop's body;
        the non-trainable variables (batch normalisation statistics,
        dropout seeds) are threaded through, so that the backward pass's
        second run of a chunk draws the same dropout masks and the
        statistics update once. The losses the layers add leave as
        outputs, for the same reason.
        """
        run = self.recurrent_states
        model = self.model

        def run_chunk(chunk, flat_states, trainable, values):
            initial = None
            if flat_states:
                initial = keras.tree.pack_sequence_as(
                    structure[0],
                    [ops.stop_gradient(state) for state in flat_states],
                )
            (outputs, final), new_values, losses = run_with_values(
                model,
                values,
                lambda: run(chunk, initial_states=initial, training=training),
                collect_losses=True,
                trainable=trainable,
            )
            if not structure:
                structure.append(final)
            return outputs, keras.tree.flatten(final), new_values, losses

        return run_chunk

    def get_config(self):
        return {**super().get_config(), "rematerialize": self.rematerialize}
