"""Running a video model over its frames in chunks, each chunk from the
states the previous one ended in, the gradient cut between chunks: what
`TruncatedBPTT` and `StreamingBPTT` share."""

import keras
from keras import ops

from keras_cbm.models.recurrent_states import RecurrentStates
from keras_cbm.training.variable_values import assign_values
from keras_cbm.training.variable_values import current_values
from keras_cbm.training.variable_values import run_with_values
from keras_cbm.training.video_trainer import VideoTrainer
from keras_cbm.training.video_trainer import check_per_frame


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
        rematerialize: Whether to recompute each chunk's activations in
            the backward pass (`keras.remat`: memory set by the chunk
            length, one more forward pass per chunk) rather than keep them
            all.
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

        Args:
            videos: `(batch, time, *frame_shape)`, static `time`.
            states: The states the first chunk starts from, in the
                structure of `RecurrentStates` (one list per recurrent
                layer), or `None` for the model's own initial states.
            chunk_length: Integer >= 1, frames per chunk.
            training: Python boolean.

        Returns:
            `(outputs, final_states)`: the per-frame outputs and the final
            states in the structure of `RecurrentStates`, their gradient
            not cut.
        """
        videos = ops.cast(videos, self._input_dtype)
        time = videos.shape[1]
        # The states' structure: given, or that of the first chunk's run.
        structure = [] if states is None else [states]
        run_chunk = self._chunk_run(training, structure)
        if training and self.rematerialize:
            run_chunk = keras.remat(run_chunk)
        states = keras.tree.flatten(states) if states is not None else []
        outputs, added = [], []
        for start in range(0, time, chunk_length):
            if start:
                # The gradient stops at the chunk boundary.
                states = [ops.stop_gradient(state) for state in states]
            chunk = videos[:, start : start + chunk_length]
            chunk_outputs, states, values, losses = run_chunk(
                chunk, states, current_values(self.model)
            )
            check_per_frame(chunk_outputs.shape, "per chunk")
            assign_values(self.model, values)
            outputs.append(chunk_outputs)
            added += losses
        if added:
            self.add_loss(ops.sum(ops.stack(added)))
        final = keras.tree.pack_sequence_as(structure[0], list(states))
        return ops.concatenate(outputs, axis=1), final

    def _chunk_run(self, training, structure):
        """A function `(chunk, flat states it starts from (none: the
        model's own), values of the model's non-trainable variables)` to
        `(outputs, flat final states, new values, added losses)`;
        `structure` is a list holding the states' structure (see
        `RecurrentStates`), or empty to hold that of the first run's final
        states.

        Stateless in the model's non-trainable variables (batch
        normalisation statistics, dropout seeds): a rematerialised chunk
        runs twice, and must draw the same dropout masks and update the
        statistics once; JAX also refuses state updates that escape
        `jax.checkpoint`. The losses the layers add leave as outputs, for
        the same reason.
        """
        run = self.recurrent_states
        model = self.model

        def run_chunk(chunk, flat_states, values):
            initial = None
            if flat_states:
                initial = keras.tree.pack_sequence_as(
                    structure[0], list(flat_states)
                )
            (outputs, final), new_values, losses = run_with_values(
                model,
                values,
                lambda: run(chunk, initial_states=initial, training=training),
                collect_losses=True,
            )
            if not structure:
                structure.append(final)
            return outputs, keras.tree.flatten(final), new_values, losses

        return run_chunk

    def get_config(self):
        return {**super().get_config(), "rematerialize": self.rematerialize}
