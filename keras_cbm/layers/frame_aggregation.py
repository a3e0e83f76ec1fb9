"""Per-frame predictions to one video prediction (the reference's test
schemes 1 to 3)."""

import keras
from keras import layers
from keras import ops

MODES = ("mean", "vote", "last")


@keras.saving.register_keras_serializable(package="keras_cbm")
class FrameAggregation(layers.Layer):
    """Turns per-frame predictions `(batch, time, classes)` into `(batch,
    classes)`, ignoring masked frames.

    - `"mean"`: the mean over frames of the inputs (logits or probabilities,
      whichever are given);
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
        steps = ops.shape(inputs)[1]
        if mask is None:
            valid = ops.ones(ops.shape(inputs)[:2], inputs.dtype)
        else:
            valid = ops.cast(mask, inputs.dtype)
        if self.mode == "last":
            # Position t scores t + 1 when valid: the largest is the last.
            positions = ops.arange(1, steps + 1, dtype=inputs.dtype)
            last = ops.argmax(valid * positions, axis=1)
            picked = ops.take_along_axis(
                inputs, ops.reshape(last, (-1, 1, 1)), axis=1
            )[:, 0]
            return picked * ops.max(valid, axis=1, keepdims=True)
        counts = ops.sum(valid, axis=1, keepdims=True)
        mean = ops.sum(inputs * valid[..., None], axis=1) / ops.maximum(
            counts, 1.0
        )
        if self.mode == "mean":
            return mean
        classes = inputs.shape[-1]
        votes = ops.sum(
            ops.one_hot(
                ops.argmax(inputs, axis=-1), classes, dtype=inputs.dtype
            )
            * valid[..., None],
            axis=1,
        )
        tied = ops.equal(votes, ops.max(votes, axis=-1, keepdims=True))
        winner = ops.argmax(ops.where(tied, mean, float("-inf")), axis=-1)
        has_frames = ops.cast(counts > 0, inputs.dtype)
        return ops.one_hot(winner, classes, dtype=inputs.dtype) * has_frames

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
