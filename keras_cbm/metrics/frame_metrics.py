"""Per-frame image quality of predicted videos, averaged over frames."""

import keras
import tensorflow as tf
from keras import ops


def frame_psnr(y_true, y_pred, max_val=1.0):
    """`tf.image.psnr` of every frame of `(batch, time, rows, cols,
    channels)` videos: `(batch, time)`."""
    return tf.image.psnr(y_true, y_pred, max_val=max_val)


def frame_ssim(y_true, y_pred, max_val=1.0, filter_size=11):
    """`tf.image.ssim` of every frame: `(batch, time)`. Frames must be at
    least `filter_size` pixels high and wide."""
    return tf.image.ssim(
        y_true, y_pred, max_val=max_val, filter_size=filter_size
    )


def frame_sum_squared_error(y_true, y_pred):
    """Squared error summed over each frame's pixels: `(batch, time)`."""
    return ops.sum(ops.square(y_pred - y_true), axis=(-3, -2, -1))


def frame_sum_absolute_error(y_true, y_pred):
    """Absolute error summed over each frame's pixels: `(batch, time)`."""
    return ops.sum(ops.abs(y_pred - y_true), axis=(-3, -2, -1))


class FrameMean(keras.metrics.Mean):
    """The mean over all frames seen of a per-frame score.

    Every frame of every video counts once, however the videos are batched.

    Args:
        score: A function `(y_true, y_pred) -> (batch, time)` scores.
        name: The metric's name.
        dtype: The metric's dtype.

    Call arguments (`update_state`):
        y_true: The true videos, `(batch, time, rows, cols, channels)`.
        y_pred: The predicted videos, of the same shape.
        sample_weight: Optional weights broadcastable to `(batch, time)`.
    """

    def __init__(self, score, name, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.score = score

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true, self.dtype)
        y_pred = ops.convert_to_tensor(y_pred, self.dtype)
        scores = self.score(y_true, y_pred)
        if sample_weight is not None:
            sample_weight = ops.reshape(
                ops.broadcast_to(sample_weight, ops.shape(scores)), (-1,)
            )
        return super().update_state(
            ops.reshape(scores, (-1,)), sample_weight=sample_weight
        )

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="keras_cbm")
class PSNR(FrameMean):
    """Peak signal-to-noise ratio (dB), `tf.image.psnr` averaged over all
    predicted frames.

    Args:
        max_val: The dynamic range of the pixels (1.0 for [0, 1]).
        name: The metric's name.
        dtype: The metric's dtype.

    Example:

    >>> metric = PSNR()
    >>> metric.update_state(np.zeros((1, 2, 4, 4, 1)),
    ...                     np.full((1, 2, 4, 4, 1), 0.1))
    >>> round(float(metric.result()), 3)
    20.0
    """

    def __init__(self, max_val=1.0, name="psnr", dtype=None):
        super().__init__(self._psnr, name=name, dtype=dtype)
        self.max_val = max_val

    def _psnr(self, y_true, y_pred):
        return frame_psnr(y_true, y_pred, self.max_val)

    def get_config(self):
        return {**super().get_config(), "max_val": self.max_val}


@keras.saving.register_keras_serializable(package="keras_cbm")
class SSIM(FrameMean):
    """Structural similarity, `tf.image.ssim` averaged over all predicted
    frames.

    Args:
        max_val: The dynamic range of the pixels (1.0 for [0, 1]).
        filter_size: The Gaussian window's size; frames must be at least
            this many pixels high and wide.
        name: The metric's name.
        dtype: The metric's dtype.

    Example:

    >>> metric = SSIM()
    >>> frames = np.random.rand(1, 2, 16, 16, 1)
    >>> metric.update_state(frames, frames)
    >>> round(float(metric.result()), 3)
    1.0
    """

    def __init__(self, max_val=1.0, filter_size=11, name="ssim", dtype=None):
        super().__init__(self._ssim, name=name, dtype=dtype)
        self.max_val = max_val
        self.filter_size = filter_size

    def _ssim(self, y_true, y_pred):
        return frame_ssim(y_true, y_pred, self.max_val, self.filter_size)

    def get_config(self):
        return {
            **super().get_config(),
            "max_val": self.max_val,
            "filter_size": self.filter_size,
        }


@keras.saving.register_keras_serializable(package="keras_cbm")
class FrameSumMSE(FrameMean):
    """OpenSTL's MSE: squared error summed over each frame's pixels, then
    averaged over frames and videos.

    Args:
        name: The metric's name.
        dtype: The metric's dtype.

    Example:

    >>> metric = FrameSumMSE()
    >>> metric.update_state(np.zeros((1, 2, 4, 4, 1)),
    ...                     np.full((1, 2, 4, 4, 1), 0.5))
    >>> float(metric.result())
    4.0
    """

    def __init__(self, name="frame_sum_mse", dtype=None):
        super().__init__(frame_sum_squared_error, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_cbm")
class FrameSumMAE(FrameMean):
    """OpenSTL's MAE: absolute error summed over each frame's pixels, then
    averaged over frames and videos.

    Args:
        name: The metric's name.
        dtype: The metric's dtype.

    Example:

    >>> metric = FrameSumMAE()
    >>> metric.update_state(np.zeros((1, 2, 4, 4, 1)),
    ...                     np.full((1, 2, 4, 4, 1), 0.5))
    >>> float(metric.result())
    8.0
    """

    def __init__(self, name="frame_sum_mae", dtype=None):
        super().__init__(frame_sum_absolute_error, name=name, dtype=dtype)
