"""Runs a per-frame layer or model on every frame of a video."""

import keras

from keras_cbm.layers.per_frame import apply_per_frame


@keras.saving.register_keras_serializable(package="keras_cbm")
class FrameWise(keras.layers.Wrapper):
    """Applies `layer` to every frame of `(batch, time, ...)` inputs.

    Like `keras.layers.TimeDistributed`, but time is folded into the batch
    with reshapes, which keeps the right time length when batch and time are
    both dynamic in a traced or exported model (Keras 3.15's
    `TimeDistributed` does not). The time mask passes through.

    Args:
        layer: A layer or model taking `(frames, ...)`; in a training call,
            it runs in training mode unless it is frozen.
        **kwargs: Base layer arguments (`name`, ...).

    Call arguments:
        inputs: A tensor `(batch, time, ...)` with static dimensions after
            `time`.

    Input shape:
        `(batch, time) + frame_shape`.

    Output shape:
        `(batch, time) + layer_output_shape[1:]`.

    Returns:
        `layer`'s per-frame outputs.

    Example:

    >>> frames = np.zeros((2, 5, 8, 8, 3), "float32")
    >>> pool = FrameWise(keras.layers.GlobalAveragePooling2D())
    >>> tuple(pool(frames).shape)
    (2, 5, 3)
    """

    def __init__(self, layer, **kwargs):
        super().__init__(layer, **kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((None,) + tuple(input_shape[2:]))
        self.built = True

    def call(self, inputs):
        return apply_per_frame(self.layer, inputs)

    def compute_output_shape(self, input_shape):
        frame_shape = self.layer.compute_output_shape(
            (None,) + tuple(input_shape[2:])
        )
        return tuple(input_shape[:2]) + tuple(frame_shape[1:])
