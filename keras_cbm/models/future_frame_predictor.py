"""Video future prediction: a convolutional encoder, a deep CBM stack and a
transposed-convolution decoder, rolled forward frame by frame."""

import keras

from keras_cbm.layers.deep_cbm import DeepCBM
from keras_cbm.models.frame_wise import FrameWise


@keras.saving.register_keras_serializable(package="keras_cbm")
class TeacherForcing(keras.layers.Layer):
    """The next input frame of a rollout: the true frame in training, the
    model's own prediction otherwise.

    Args:
        index: Integer, the time index of the true frame in `frames`.
        **kwargs: Base layer arguments (`name`, ...).

    Call arguments:
        inputs: `[frames, prediction]`: the whole clip `(batch, time, ...)`
            and the last prediction `(batch, 1, ...)`.
        training: Python boolean, whether to return the true frame.

    Returns:
        `frames[:, index:index + 1]` in training, else `prediction`.
    """

    def __init__(self, index, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, inputs, training=None):
        frames, prediction = inputs
        if training:
            return frames[:, self.index : self.index + 1]
        return prediction

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        return {**super().get_config(), "index": self.index}


def future_frame_predictor(
    frame_shape=(16, 16, 1),
    input_frames=5,
    output_frames=5,
    encoder_filters=(8, 16),
    depth=5,
    filters=16,
    jump_stride=5,
    temporal_dropout=0.5,
    merge="add",
    activation="relu",
    batch_norm=False,
    layer_type="cbm",
    temporal_gate="auto",
    recurrent_activation="auto",
    kernel_initializer="glorot_uniform",
    recurrent_initializer="orthogonal",
    name="future_frame_predictor",
):
    """Builds a deep CBM model that predicts the next frames of a video.

    An `"encoder"` of stride-2 convolutions maps each frame to a feature
    map, a `DeepCBM` stack (`"deep_cbm"`) runs over the `input_frames`
    context frames, and a `"decoder"` of stride-2 transposed convolutions
    (sigmoid output, pixels in [0, 1]) turns the last output into the next
    frame. The stack then steps one frame at a time from its states, fed
    the true next frame in training (teacher forcing) and its own
    prediction otherwise, until `output_frames` frames are predicted.

    Feed it whole clips of `input_frames + output_frames` frames with the
    last `output_frames` as targets: training reads the clip's frames up to
    the second last, inference only the first `input_frames` (so it also
    takes the context frames alone). The defaults are small;
    `PAPER_PRESETS["future_frame_predictor"]` holds the paper's KTH layout.
    `keras_cbm.metrics` has PSNR, SSIM and OpenSTL's per-frame-sum MSE/MAE.

    Args:
        frame_shape: `(rows, cols, channels)`; rows and cols must divide by
            `2 ** len(encoder_filters)`.
        input_frames: Positive integer, the context frames seen.
        output_frames: Positive integer, the frames predicted.
        encoder_filters: Filters of the encoder's convolutions (the
            decoder mirrors them).
        depth, filters, jump_stride, temporal_dropout, merge: The
            `DeepCBM` stack's arguments.
        activation, batch_norm, layer_type, temporal_gate: The `DeepCBM`
            stack's arguments.
        recurrent_activation, kernel_initializer, recurrent_initializer:
            The `DeepCBM` stack's arguments.
        name: The model's name.

    Returns:
        A functional `keras.Model` from frames `(batch, time) + frame_shape`
        (`time >= input_frames`) to predictions `(batch, output_frames) +
        frame_shape`.

    Example:

    >>> model = future_frame_predictor(input_frames=3, output_frames=2,
    ...                                depth=2, filters=4, jump_stride=2)
    >>> clip = np.random.rand(4, 5, 16, 16, 1).astype("float32")
    >>> model.compile("adam", "mse")
    >>> history = model.fit(clip, clip[:, 3:], verbose=0)
    >>> tuple(model.predict(clip[:, :3], verbose=0).shape)
    (4, 2, 16, 16, 1)
    """
    scale = 2 ** len(encoder_filters)
    rows, cols, channels = frame_shape
    if rows % scale or cols % scale:
        raise ValueError(
            f"`frame_shape` must have rows and cols divisible by {scale} "
            f"(2 ** len(encoder_filters)). Received: frame_shape={frame_shape}"
        )
    for argument, value in (
        ("input_frames", input_frames),
        ("output_frames", output_frames),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(
                f"`{argument}` must be a positive integer. "
                f"Received: {argument}={value!r}"
            )
    encoder = FrameWise(
        keras.Sequential(
            [
                keras.layers.Conv2D(f, 3, 2, "same", activation="relu")
                for f in encoder_filters
            ],
            name="encoder_convs",
        ),
        name="encoder",
    )
    decoder = FrameWise(
        keras.Sequential(
            [
                keras.layers.Conv2DTranspose(f, 3, 2, "same", activation="relu")
                for f in encoder_filters[-2::-1]
            ]
            + [
                keras.layers.Conv2DTranspose(
                    channels, 3, 2, "same", activation="sigmoid"
                )
            ],
            name="decoder_convs",
        ),
        name="decoder",
    )
    deep_cbm = DeepCBM(
        depth=depth,
        filters=filters,
        jump_stride=jump_stride,
        temporal_dropout=temporal_dropout,
        merge=merge,
        activation=activation,
        batch_norm=batch_norm,
        layer_type=layer_type,
        temporal_gate=temporal_gate,
        recurrent_activation=recurrent_activation,
        kernel_initializer=kernel_initializer,
        recurrent_initializer=recurrent_initializer,
        return_state=True,
        name="deep_cbm",
    )

    frames = keras.Input((None,) + tuple(frame_shape), name="frames")
    outputs, states = deep_cbm(encoder(frames[:, :input_frames]))
    predictions = [decoder(outputs[:, -1:])]
    for index in range(input_frames, input_frames + output_frames - 1):
        next_frame = TeacherForcing(index, name=f"next_frame_{index}")(
            [frames, predictions[-1]]
        )
        outputs, states = deep_cbm(encoder(next_frame), initial_state=states)
        predictions.append(decoder(outputs))
    if output_frames > 1:
        predictions = [
            keras.layers.Concatenate(axis=1, name="predictions")(predictions)
        ]
    return keras.Model(frames, predictions[0], name=name)
