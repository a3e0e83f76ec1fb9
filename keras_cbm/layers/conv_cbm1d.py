import keras

from keras_cbm.layers.conv_cbm import ConvCBM


@keras.saving.register_keras_serializable(package="keras_cbm")
class ConvCBM1D(ConvCBM):
    """1D convolutional Context Bridge Module (CBM) layer.

    `ConvCBM2D` with 1D convolutions: the same equations, arguments,
    weight layout and Temporal Dropout, with `kernel_size`, `strides` and
    `dilation_rate` of 1 integers.

    Args:
        filters: Positive integer, the channels of `r` and `c`.
        kernel_size: An integer or tuple of 1 integers.
        **kwargs: Every other argument of `ConvCBM2D`.

    Call arguments:
        sequences: A 4D tensor.
        initial_state: Optional list with one state tensor `c_0`.
        mask: Optional boolean tensor `(batch, time)`, or `(batch, time,
            *spatial)` as `keras.layers.Masking` gives it (a step counts
            where any of its positions does).
        training: Python boolean, whether dropout and Temporal Dropout apply.

    Input shape:
        `(batch, time, steps, channels)` (channels_last), or
        channels right after `time` (channels_first).

    Output shape:
        As `ConvCBM2D`'s, with 1 spatial dimensions (steps).

    Returns:
        The output, or `[output, state]` with `return_state=True`.

    Example:

    >>> frames = np.random.rand(2, 8, 16, 3).astype("float32")
    >>> layer = ConvCBM1D(4, 3, padding="same", return_sequences=True)
    >>> tuple(layer(frames).shape)
    (2, 8, 16, 4)
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(
            rank=1, filters=filters, kernel_size=kernel_size, **kwargs
        )
