"""Truncated back-propagation through time for any Keras video model, through
Keras' own training step: videos run in chunks, states carried across,
gradients cut at chunk boundaries."""

import keras
from keras import ops

from keras_cbm.layers.frame_aggregation import video_probabilities
from keras_cbm.models.recurrent_states import RecurrentStates
from keras_cbm.training.frame_targets import check_targets
from keras_cbm.training.frame_targets import frame_weights
from keras_cbm.training.variable_values import assign_values
from keras_cbm.training.variable_values import current_values
from keras_cbm.training.variable_values import run_with_values


def check_chunk_length(chunk_length):
    """Raises `ValueError` unless `chunk_length` is an integer >= 1."""
    if (
        isinstance(chunk_length, bool)
        or not isinstance(chunk_length, int)
        or chunk_length < 1
    ):
        raise ValueError(
            "`chunk_length` must be an integer >= 1 (frames per chunk). "
            f"Received: chunk_length={chunk_length!r}"
        )


@keras.saving.register_keras_serializable(package="keras_cbm")
class TruncatedBPTT(keras.Model):
    """Trains a per-frame video model on whole videos in chunks of frames.

    Truncated back-propagation through time (TBPTT(N, N) in Williams and
    Peng's terms): each video runs in consecutive chunks of `chunk_length`
    frames, every recurrent layer of `model` starting each chunk from the
    states the previous chunk ended in (see
    `keras_cbm.models.RecurrentStates`), with the gradient cut at the chunk
    boundaries; the loss over all frames gives one optimizer step per batch,
    whose gradient is the sum of the chunks' gradients. With
    `rematerialize`, each chunk's activations are recomputed in the backward
    pass (`keras.remat`), so peak training memory is set by the chunk
    length (plus the states at the chunk boundaries), not by the video's
    length. A chunk as long as the video is full back-propagation through
    time.

    `model` is any Keras model of frames `(batch, time, *frame_shape)` to
    per-frame predictions `(batch, time, classes)` that `RecurrentStates`
    accepts (no `Bidirectional`, `go_backwards` or `stateful` layer).
    Training runs through Keras' own `train_step` (the loss is in
    `compute_loss`), so it works on every backend.

    The compiled loss applies to every frame the `targets` select (the
    video's label repeated per frame; each video's loss is the weighted
    mean over its frames, then the mean over videos, times its sample
    weight). The compiled metrics see the video prediction:
    `keras_cbm.layers.video_probabilities` of the target frames, the softmax
    of their mean logits.

    Args:
        model: A per-frame video model (see above).
        chunk_length: Integer >= 1, frames per chunk (the truncation).
        targets: Which frames train toward the label (see
            `keras_cbm.training.frame_weights`): `"all"` (the paper),
            `("last", k)`, `("from", j)`, or `"given"` to read the weights
            `(batch, time)` from the inputs' `"frame_weights"`.
        rematerialize: Whether to recompute each chunk's activations in
            the backward pass (memory set by `chunk_length`, one more
            forward pass per chunk) rather than keep them all.
        from_logits: Whether `model` outputs logits or probabilities.
        **kwargs: Base model arguments (`name`, ...).

    Call arguments:
        inputs: Videos `(batch, time, *frame_shape)` with a static `time`
            >= `chunk_length`, or a dict with `"video"` and (for
            `targets="given"`) `"frame_weights"` `(batch, time)`.
        training: Python boolean.

    Returns:
        The model's per-frame outputs `(batch, time, classes)`, the same
        (up to float rounding) as one run of `model` over the whole video.

    Example:

    >>> videos = np.random.rand(4, 12, 8, 8, 3).astype("float32")
    >>> net = keras.Sequential([
    ...     keras.Input((None, 8, 8, 3)),
    ...     keras.layers.ConvLSTM2D(4, 3, padding="same",
    ...                             return_sequences=True),
    ...     keras.layers.TimeDistributed(
    ...         keras.layers.GlobalAveragePooling2D()),
    ...     keras.layers.Dense(2)])
    >>> trainer = TruncatedBPTT(net, chunk_length=4, targets=("last", 3))
    >>> trainer.compile(
    ...     "adam",
    ...     keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...     metrics=["accuracy"])
    >>> history = trainer.fit(videos, np.array([0, 1, 0, 1]), epochs=1,
    ...                       batch_size=2, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'loss']
    >>> trainer.predict(videos, verbose=0).shape
    (4, 12, 2)
    """

    def __init__(
        self,
        model,
        chunk_length,
        targets="all",
        rematerialize=True,
        from_logits=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise ValueError(
                "`model` must be a Keras model of frames (batch, time, ...) "
                "to per-frame predictions (batch, time, classes). Received: "
                f"model={model!r}"
            )
        check_chunk_length(chunk_length)
        check_targets(targets, allow_given=True)
        self.model = model
        self.chunk_length = chunk_length
        self.targets = targets
        self.rematerialize = rematerialize
        self.from_logits = from_logits
        # Refuses, naming it, a layer that cannot start from given states.
        self.recurrent_states = RecurrentStates(model)
        self.built = True

    def call(self, inputs, training=None):
        videos = inputs["video"] if isinstance(inputs, dict) else inputs
        time = videos.shape[1]
        if time is None:
            raise ValueError(
                "`inputs` must have a static number of frames for chunks of "
                f"{self.chunk_length}. Received: videos of shape "
                f"{tuple(videos.shape)}"
            )
        if time < self.chunk_length:
            raise ValueError(
                f"`chunk_length` must be at most the videos' length ({time} "
                "frames): a video shorter than a chunk has nothing to "
                f"truncate. Received: chunk_length={self.chunk_length}"
            )
        outputs, _ = self.run_chunks(
            videos, None, self.chunk_length, training=training
        )
        return outputs

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
        time = videos.shape[1]
        # The states' structure: given, or that of the first chunk's run.
        structure = [] if states is None else [states]
        run_chunk = self._chunk_run(training, structure)
        if training and self.rematerialize:
            run_chunk = keras.remat(run_chunk)
        states = keras.tree.flatten(states) if states is not None else []
        outputs = []
        for start in range(0, time, chunk_length):
            if start:
                # The gradient stops at the chunk boundary.
                states = [ops.stop_gradient(state) for state in states]
            chunk = videos[:, start : start + chunk_length]
            chunk_outputs, states, values = run_chunk(
                chunk, states, current_values(self.model)
            )
            assign_values(self.model, values)
            outputs.append(chunk_outputs)
        final = keras.tree.pack_sequence_as(structure[0], list(states))
        return ops.concatenate(outputs, axis=1), final

    def _chunk_run(self, training, structure):
        """A function `(chunk, flat states it starts from (none: the
        model's own), values of the model's non-trainable variables)` to
        `(outputs, flat final states, new values)`; `structure` is a list
        holding the states' structure (see `RecurrentStates`), or empty
        to hold that of the first run's final states.

        Stateless in the model's non-trainable variables (batch
        normalisation statistics, dropout seeds): a rematerialised chunk
        runs twice, and must draw the same dropout masks and update the
        statistics once; JAX also refuses state updates that escape
        `jax.checkpoint`.
        """
        run = self.recurrent_states
        model = self.model

        def run_chunk(chunk, flat_states, values):
            initial = None
            if flat_states:
                initial = keras.tree.pack_sequence_as(
                    structure[0], list(flat_states)
                )
            (outputs, final), new_values = run_with_values(
                model,
                values,
                lambda: run(chunk, initial_states=initial, training=training),
            )
            if not structure:
                structure.append(final)
            return outputs, keras.tree.flatten(final), new_values

        return run_chunk

    def frame_weights(self, inputs, outputs):
        """The loss weight of every frame `(batch, time)`: the `targets`'
        weights, each video's scaled to mean 1 over its frames (every video
        counts equally in the loss)."""
        if self.targets == "given":
            if not isinstance(inputs, dict) or "frame_weights" not in inputs:
                received = (
                    sorted(inputs) if isinstance(inputs, dict) else "videos"
                )
                raise ValueError(
                    "`inputs` must be a dict with 'video' and "
                    "'frame_weights' (batch, time) for targets='given'. "
                    f"Received: {received}"
                )
            weights = ops.cast(inputs["frame_weights"], self.compute_dtype)
        else:
            time = outputs.shape[1]
            weights = frame_weights(ops.arange(time), time, self.targets)
            weights = ops.broadcast_to(
                ops.cast(weights, self.compute_dtype)[None],
                ops.shape(outputs)[:2],
            )
        total = ops.sum(weights, axis=1, keepdims=True)
        frames = ops.cast(ops.shape(weights)[1], weights.dtype)
        return weights * ops.divide_no_nan(frames, total)

    def video_predictions(self, inputs, outputs):
        """The video predictions `(batch, classes)` from per-frame
        `outputs`: `keras_cbm.layers.video_probabilities` over the target
        frames (weight > 0), the softmax of their mean logits."""
        targeted = self.frame_weights(inputs, outputs) > 0
        return video_probabilities(
            outputs, mask=targeted, from_logits=self.from_logits
        )

    def loss_weights(self, inputs, outputs, sample_weight=None):
        """The weight of every frame's loss `(batch, time)`:
        `frame_weights` times the videos' `sample_weight`."""
        weights = self.frame_weights(inputs, outputs)
        if sample_weight is not None:
            weights = weights * ops.cast(sample_weight, weights.dtype)[:, None]
        return weights

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        return super().compute_loss(
            x,
            per_frame(y, y_pred),
            y_pred,
            self.loss_weights(x, y_pred, sample_weight),
            training=training,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(
            x, y, self.video_predictions(x, y_pred), sample_weight
        )

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.model),
            "chunk_length": self.chunk_length,
            "targets": self.targets,
            "rematerialize": self.rematerialize,
            "from_logits": self.from_logits,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        if isinstance(config["targets"], list):
            config["targets"] = tuple(config["targets"])
        return cls(**config)


def per_frame(labels, outputs):
    """The video labels `(batch, ...)` repeated for every frame of the
    per-frame `outputs` `(batch, time, ...)`."""
    labels = ops.convert_to_tensor(labels)
    return ops.broadcast_to(
        ops.expand_dims(labels, 1),
        (ops.shape(labels)[0], outputs.shape[1]) + tuple(labels.shape[1:]),
    )


__all__ = ["TruncatedBPTT"]
