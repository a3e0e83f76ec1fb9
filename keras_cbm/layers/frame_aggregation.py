"""Per-frame predictions to one video prediction (the reference's test
schemes 1 to 3), and the package's one meaning of a video's probabilities."""

import keras
from keras import layers
from keras import ops

from keras_cbm.layers.base_cbm import check_choice

MODES = ("mean", "vote", "last")
# `video_probabilities`' modes: FrameAggregation's over the frames' logits,
# and the mean of the frames' probabilities.
VIDEO_AGGREGATIONS = MODES + ("mean_probabilities",)


def aggregate_frames(inputs, mask=None, mode="mean"):
    """`FrameAggregation(mode)(inputs, mask=mask)` as a function."""
    steps = ops.shape(inputs)[1]
    if mask is None:
        valid = ops.ones(ops.shape(inputs)[:2], inputs.dtype)
    else:
        valid = ops.cast(mask, inputs.dtype)
    if mode == "last":
        # Position t scores t + 1 when valid: the largest is the last.
        positions = ops.arange(1, steps + 1, dtype=inputs.dtype)
        last = ops.argmax(valid * positions, axis=1)
        picked = ops.take_along_axis(
            inputs, ops.reshape(last, (-1, 1, 1)), axis=1
        )[:, 0]
        return picked * ops.max(valid, axis=1, keepdims=True)
    counts = ops.sum(valid, axis=1, keepdims=True)
    mean = ops.sum(inputs * valid[..., None], axis=1) / ops.maximum(counts, 1.0)
    if mode == "mean":
        return mean
    classes = inputs.shape[-1]
    votes = ops.sum(
        ops.one_hot(ops.argmax(inputs, axis=-1), classes, dtype=inputs.dtype)
        * valid[..., None],
        axis=1,
    )
    tied = ops.equal(votes, ops.max(votes, axis=-1, keepdims=True))
    winner = ops.argmax(ops.where(tied, mean, float("-inf")), axis=-1)
    has_frames = ops.cast(counts > 0, inputs.dtype)
    return ops.one_hot(winner, classes, dtype=inputs.dtype) * has_frames


def video_probabilities(
    frame_outputs, mask=None, aggregation="mean", from_logits=True
):
    """A video's class probabilities from its frames' outputs.

    The package's one meaning of a video prediction (training metrics,
    `evaluate`, `predict` and serving's `classify` all use it):

    - `"mean"` (default): the softmax of the mean of the frames' logits,
      the temporal segment networks' consensus. A model that outputs
      probabilities (`from_logits=False`) gives the same: the logarithm of
      a frame's probabilities is its logits less a constant of the frame,
      which the softmax cancels (probabilities are clipped at
      `keras.config.epsilon()` first).
    - `"mean_probabilities"`: the mean of the frames' probabilities.
    - `"last"`: the last unmasked frame's probabilities.
    - `"vote"`: a one-hot vector of the class most frames rank first (a
      tie goes to the tied class with the highest mean logit).

    A video with every frame masked gets uniform probabilities (zeros with
    `"vote"` and `"mean_probabilities"`).

    Args:
        frame_outputs: `(batch, time, classes)` logits, or probabilities
            when `from_logits=False`.
        mask: Optional boolean `(batch, time)`, `False` for frames to
            ignore.
        aggregation: One of `VIDEO_AGGREGATIONS` (above).
        from_logits: Whether `frame_outputs` are logits.

    Returns:
        `(batch, classes)` probabilities.

    Example:

    >>> logits = np.array([[[4.0, 0.0], [0.0, 1.0], [0.0, 1.0]]], "float32")
    >>> np.round(np.asarray(video_probabilities(logits)), 4)
    array([[0.6608, 0.3392]], dtype=float32)
    >>> probabilities = np.asarray(keras.ops.softmax(logits))
    >>> np.round(np.asarray(video_probabilities(
    ...     probabilities, from_logits=False)), 4)
    array([[0.6608, 0.3392]], dtype=float32)
    >>> np.round(np.asarray(video_probabilities(
    ...     logits, aggregation="mean_probabilities")), 4)
    array([[0.5066, 0.4934]], dtype=float32)
    """
    check_choice("aggregation", aggregation, VIDEO_AGGREGATIONS)
    frame_outputs = ops.convert_to_tensor(frame_outputs)
    if aggregation == "mean_probabilities":
        if from_logits:
            frame_outputs = ops.softmax(frame_outputs, axis=-1)
        return aggregate_frames(frame_outputs, mask, "mean")
    logits = frame_outputs
    if not from_logits:
        epsilon = keras.config.epsilon()
        logits = ops.log(ops.maximum(frame_outputs, epsilon))
    scores = aggregate_frames(logits, mask, aggregation)
    return scores if aggregation == "vote" else ops.softmax(scores, axis=-1)


@keras.saving.register_keras_serializable(package="keras_cbm")
class FrameAggregation(layers.Layer):
    """Turns per-frame predictions `(batch, time, classes)` into `(batch,
    classes)`, ignoring masked frames.

    - `"mean"`: the mean over frames of the inputs (logits or probabilities,
      whichever are given; the package's video prediction is the softmax of
      the mean of the logits, `video_probabilities`);
    - `"vote"`: a one-hot vector of the class that most frames rank first;
      a tie goes to the tied class with the highest mean input;
    - `"last"`: the last unmasked frame.

    A sample with every frame masked gives zeros.

    Args:
        mode: `"mean"`, `"vote"` or `"last"`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A 3D tensor `(batch, time, classes)`.
        mask: Optional boolean tensor `(batch, time)`, `False` for frames to
            ignore.

    Input shape:
        `(batch, time, classes)`.

    Output shape:
        `(batch, classes)`.

    Returns:
        The video predictions.

    Example:

    >>> logits = np.array([[[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]]])
    >>> np.asarray(FrameAggregation("mean")(logits))
    array([[0.6666667, 1.3333334]], dtype=float32)
    >>> np.asarray(FrameAggregation("vote")(logits))
    array([[0., 1.]], dtype=float32)
    >>> mask = np.array([[True, True, False]])
    >>> np.asarray(FrameAggregation("last")(logits, mask=mask))
    array([[0., 1.]], dtype=float32)
    """

    def __init__(self, mode="mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(
                f"`mode` must be one of {MODES}. Received: mode={mode!r}"
            )
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if len(inputs.shape) != 3:
            raise ValueError(
                f"`inputs` of layer '{self.name}' must have rank 3, (batch, "
                f"time, classes). Received: inputs.shape={inputs.shape}"
            )
        return aggregate_frames(inputs, mask, self.mode)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
