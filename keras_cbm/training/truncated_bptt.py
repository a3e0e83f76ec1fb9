"""Truncated back-propagation through time for any Keras video model, through
Keras' own training step: videos run in chunks, states carried across,
gradients cut at chunk boundaries."""

import keras
from keras import ops

from keras_cbm.frame_targets import check_targets
from keras_cbm.frame_targets import frame_weights
from keras_cbm.layers.base_cbm import check_units
from keras_cbm.training.chunked_runs import ChunkedTrainer


@keras.saving.register_keras_serializable(package="keras_cbm")
class TruncatedBPTT(ChunkedTrainer):
    """Trains a per-frame video model on whole videos in chunks of frames.

    Truncated back-propagation through time (TBPTT(N, N) in Williams and
    Peng's terms): each video runs in consecutive chunks of `chunk_length`
    frames, every recurrent layer of `model` starting each chunk from the
    states the previous chunk ended in (see
    `keras_cbm.models.RecurrentStates`), with the gradient cut at the chunk
    boundaries; the loss over all frames gives one optimizer step per batch,
    whose gradient is the sum of the chunks' gradients. The chunks run in
    one symbolic loop traced once (the number of frames may vary between
    batches on TensorFlow); with `rematerialize`, the backward pass runs
    each chunk again and takes its gradient inside a second loop, so peak
    training memory is set by the chunk length, not by the number of
    chunks. A chunk as long as the video is full back-propagation through
    time.

    `model` is any Keras model of frames `(batch, time, *frame_shape)` to
    per-frame predictions `(batch, time, classes)` that `RecurrentStates`
    accepts (no `Bidirectional`, `go_backwards` or `stateful` layer).
    Training runs through Keras' own `train_step` (the loss is in
    `compute_loss`, see `VideoTrainer`), on TensorFlow and JAX.

    The compiled loss applies to every frame the `targets` select (the
    video's label, one a video, repeated per frame; each video's loss is
    the weighted mean over its frames, then the mean over videos, times its
    sample weight), `evaluate` measures the same, and losses the model's
    layers add (`add_loss`, an `activity_regularizer`) add up over the
    chunks. The compiled metrics see the video prediction:
    `keras_cbm.layers.video_probabilities` of the target frames (by
    default the softmax of their mean logits).

    Args:
        model: A per-frame video model (see above).
        chunk_length: Integer >= 1, frames per chunk (the truncation).
        targets: Which frames train toward the label: `"all"` (the
            paper), a `keras_cbm.training.FrameTargets` (e.g.
            `FrameTargets(last=3)`; the short forms `("last", k)` and
            `("from", j)` are taken too), or `"given"` to read the weights
            `(batch, time)` from the inputs' `"frame_weights"`.
        rematerialize: Whether to recompute each chunk's activations in
            the backward pass (memory set by `chunk_length`, one more
            forward pass per chunk) rather than keep them all.
        aggregation: How the target frames make the video prediction the
            metrics see (see `VideoTrainer`).
        from_logits: Whether `model` outputs logits or probabilities; must
            be the compiled loss's.
        **kwargs: Base model arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: Videos `(batch, time, *frame_shape)`, `time` >=
            `chunk_length` (`None` when traced: TensorFlow), or a dict with `"video"` and (for
            `targets="given"`) `"frame_weights"` `(batch, time)`.
        training: Python boolean.

    Returns:
        The model's per-frame outputs `(batch, time, classes)`, the same
        (up to float rounding) as one run of `model` over the whole video.

    Example:

    >>> from keras_cbm.training import FrameTargets
    >>> videos = np.random.rand(4, 12, 8, 8, 3).astype("float32")
    >>> net = keras.Sequential([
    ...     keras.Input((None, 8, 8, 3)),
    ...     keras.layers.ConvLSTM2D(4, 3, padding="same",
    ...                             return_sequences=True),
    ...     keras.layers.TimeDistributed(
    ...         keras.layers.GlobalAveragePooling2D()),
    ...     keras.layers.Dense(2)])
    >>> trainer = TruncatedBPTT(net, chunk_length=4,
    ...                         targets=FrameTargets(last=3))
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
        aggregation="mean",
        from_logits=True,
        **kwargs,
    ):
        super().__init__(
            model,
            rematerialize=rematerialize,
            aggregation=aggregation,
            from_logits=from_logits,
            **kwargs,
        )
        self.chunk_length = check_units("chunk_length", chunk_length)
        self.targets = check_targets(targets, allow_given=True)
        self.built = True

    def call(self, inputs, training=None):
        videos = inputs["video"] if isinstance(inputs, dict) else inputs
        time = videos.shape[1]
        if time is not None and time < self.chunk_length:
            raise ValueError(
                f"`chunk_length` must be at most the videos' length ({time} "
                "frames): a video shorter than a chunk has nothing to "
                f"truncate. Received: chunk_length={self.chunk_length}"
            )
        outputs, _ = self.run_chunks(
            videos, None, self.chunk_length, training=training
        )
        return outputs

    def frame_weights(self, inputs, outputs):
        """The weight of every frame `(batch, time)`: the `targets`'
        weights (with `"given"`, the inputs' `"frame_weights"`)."""
        if self.targets != "given":
            time = ops.shape(outputs)[1]
            weights = frame_weights(ops.arange(time), time, self.targets)
            return ops.broadcast_to(
                ops.cast(weights, self.compute_dtype)[None],
                ops.shape(outputs)[:2],
            )
        if not isinstance(inputs, dict) or "frame_weights" not in inputs:
            received = sorted(inputs) if isinstance(inputs, dict) else "videos"
            raise ValueError(
                "`inputs` must be a dict with 'video' and 'frame_weights' "
                f"(batch, time) for targets='given'. Received: {received}"
            )
        return super().frame_weights(inputs, outputs)

    def get_config(self):
        return {
            **super().get_config(),
            "chunk_length": self.chunk_length,
            "targets": keras.saving.serialize_keras_object(self.targets),
        }


__all__ = ["TruncatedBPTT"]
