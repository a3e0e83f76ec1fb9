"""Polygon-RNN with a deep CBM decoder: an object's outline traced one
vertex at a time on a coarse grid."""

import keras
from keras import layers
from keras import ops

from keras_cbm.layers.deep_cbm import DeepCBM
from keras_cbm.layers.per_frame import apply_per_frame


def end_token(grid_size):
    """The end token of a vertex sequence on a `grid_size` grid: the cells
    are tokens `0 .. grid_size ** 2 - 1` (`row * grid_size + col`)."""
    return grid_size**2


@keras.saving.register_keras_serializable(package="keras_cbm")
class PreviousVertices(layers.Layer):
    """The decoder's vertex inputs for every step after the first.

    Step `t >= 1` of a polygon predicts token `t` from tokens `t - 1`,
    `t - 2` (the end token, i.e. none, at `t = 1`) and `0` (the first
    vertex).

    Args:
        grid_size: Rows and columns of the vertex grid.
        **kwargs: Base layer arguments.

    Call arguments:
        tokens: Integer tensor `(batch, steps)`, `steps >= 2`: the true
            tokens (teacher forcing).

    Returns:
        Integer tensor `(batch, steps - 1, 3)`: `(t - 1, t - 2, 0)` per
        step `t = 1 .. steps - 1`.
    """

    def __init__(self, grid_size, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = grid_size

    def call(self, tokens):
        tokens = ops.cast(tokens, "int32")
        previous = tokens[:, :-1]
        none = ops.full_like(tokens[:, :1], end_token(self.grid_size))
        before = ops.concatenate([none, tokens[:, :-2]], axis=1)
        first = ops.broadcast_to(tokens[:, :1], ops.shape(previous))
        return ops.stack([previous, before, first], axis=-1)

    def compute_output_shape(self, tokens_shape):
        steps = None if tokens_shape[1] is None else tokens_shape[1] - 1
        return (tokens_shape[0], steps, 3)

    def compute_output_spec(self, tokens):
        shape = self.compute_output_shape(tokens.shape)
        return keras.KerasTensor(shape, dtype="int32")

    def get_config(self):
        return {**super().get_config(), "grid_size": self.grid_size}


@keras.saving.register_keras_serializable(package="keras_cbm")
class StepInputs(layers.Layer):
    """The decoder's input at every step: the image features beside the
    one-hot maps of the step's vertex inputs (the end token gives a map of
    zeros).

    Args:
        grid_size: Rows and columns of the vertex grid.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: `[features, vertex_inputs]`: `(batch, grid, grid,
            channels)` and integer `(batch, steps, k)`.

    Returns:
        `(batch, steps, grid, grid, channels + k)`.
    """

    def __init__(self, grid_size, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = grid_size

    def call(self, inputs):
        features, vertex_inputs = inputs
        grid = self.grid_size
        maps = ops.one_hot(
            ops.cast(vertex_inputs, "int32"),
            end_token(grid) + 1,
            dtype=features.dtype,
        )[..., :-1]
        shape = ops.shape(vertex_inputs)
        maps = ops.reshape(
            maps, (shape[0], shape[1], vertex_inputs.shape[2], grid, grid)
        )
        maps = ops.transpose(maps, (0, 1, 3, 4, 2))
        features = ops.broadcast_to(
            features[:, None],
            (shape[0], shape[1]) + tuple(features.shape[1:]),
        )
        return ops.concatenate([features, maps], axis=-1)

    def compute_output_shape(self, input_shape):
        features_shape, vertex_shape = input_shape
        return (
            vertex_shape[0],
            vertex_shape[1],
            *features_shape[1:3],
            features_shape[3] + vertex_shape[2],
        )

    def get_config(self):
        return {**super().get_config(), "grid_size": self.grid_size}


@keras.saving.register_keras_serializable(package="keras_cbm")
class VertexLogits(layers.Layer):
    """Per-step logits over the grid's cells and the end token.

    A 1x1 convolution gives each cell's logit; a dense layer on the
    spatially averaged features gives the end token's.

    Args:
        **kwargs: Base layer arguments.

    Call arguments:
        sequences: `(batch, steps, grid, grid, channels)`.

    Returns:
        `(batch, steps, grid * grid + 1)`: the cells in row-major order,
        then the end token.
    """

    def build(self, sequences_shape):
        frame_shape = (None,) + tuple(sequences_shape[2:])
        self.cells = layers.Conv2D(1, 1, name="cells", dtype=self.dtype_policy)
        self.cells.build(frame_shape)
        self.end = layers.Dense(1, name="end", dtype=self.dtype_policy)
        self.end.build((None, sequences_shape[-1]))

    def call(self, sequences):
        def logits(frames):
            cells = ops.reshape(
                self.cells(frames),
                (ops.shape(frames)[0], frames.shape[1] * frames.shape[2]),
            )
            end = self.end(ops.mean(frames, axis=(1, 2)))
            return ops.concatenate([cells, end], axis=-1)

        return apply_per_frame(logits, sequences)

    def compute_output_shape(self, sequences_shape):
        rows, cols = sequences_shape[2:4]
        return (*sequences_shape[:2], rows * cols + 1)


def polygon_rnn(
    image_size=64,
    grid_size=28,
    encoder_filters=(16, 32, 64),
    feature_channels=32,
    depth=5,
    filters=16,
    kernel_size=3,
    temporal_dropout=0.5,
    layer_type="cbm",
    jump_stride=None,
    seed=None,
    name="polygon_rnn",
    **deep_cbm_kwargs,
):
    """Builds Polygon-RNN with a deep recurrent decoder (a `DeepCBM`).

    The model traces an object's outline in the image one vertex at a time
    on a `grid_size x grid_size` grid:

    * `"encoder"`: stride-2 convolutions (one per `encoder_filters`), each
      stage's output resized to the grid (skip features at the grid's
      resolution), concatenated and mixed by a 1x1 convolution to
      `feature_channels`;
    * `"first_vertex"`: a `VertexLogits` head on the features, the first
      vertex's logits;
    * `"decoder"`: a functional model of the features and per-step vertex
      inputs `(batch, steps, 3)` (tokens `t - 1`, `t - 2`, `0`): their
      one-hot maps beside the features (`StepInputs`), a `DeepCBM` of
      `depth` conv layers of `filters` (`layer_type="convlstm"` for the
      ConvLSTM baseline of the same layout; no residual shortcuts and
      Temporal Dropout 0.5 as the reference's polygon model; the package's
      cell defaults otherwise), then `VertexLogits` per step.

    Tokens: cell `(row, col)` is `row * grid_size + col`, the end token is
    `grid_size ** 2`. In training the model is fed the true token sequence
    (teacher forcing: `keras_cbm.datasets.polygon_sequences` makes it);
    `keras_cbm.models.decode_polygons` decodes greedily from the images
    alone, or continues from given vertices, in one traced loop.

    Args:
        image_size: Rows and columns of the input images.
        grid_size: Rows and columns of the vertex grid.
        encoder_filters: Filters of the encoder's stride-2 convolutions.
        feature_channels: Channels of the features at the grid's
            resolution.
        depth, filters, kernel_size, jump_stride, seed: The `DeepCBM`
            decoder's arguments.
        temporal_dropout, layer_type: The `DeepCBM` decoder's arguments
            (`temporal_dropout` is ignored with `layer_type="convlstm"`,
            which has none).
        name: The model's name.
        **deep_cbm_kwargs: Other `DeepCBM` arguments (`merge`,
            `temporal_gate`, `batch_norm`, ...).

    Returns:
        A functional `keras.Model` from `{"image": (batch, image_size,
        image_size, 3) floats, "vertices": (batch, steps) int tokens}`
        (`steps >= 2`) to logits `(batch, steps, grid_size ** 2 + 1)`:
        step `t` predicts token `t`.

    Example:

    >>> model = polygon_rnn(image_size=32, grid_size=8, depth=2, filters=4,
    ...                     encoder_filters=(4, 8), feature_channels=4)
    >>> images = np.random.rand(2, 32, 32, 3).astype("float32")
    >>> tokens = np.array([[3, 20, 33, 64], [9, 10, 64, 64]])
    >>> tuple(model({"image": images, "vertices": tokens}).shape)
    (2, 4, 65)
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True))
    >>> history = model.fit({"image": images, "vertices": tokens}, tokens,
    ...                     verbose=0)
    """
    for argument, value, minimum in (
        ("image_size", image_size, 1),
        ("grid_size", grid_size, 2),
        ("feature_channels", feature_channels, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            value_ok = False
        else:
            value_ok = value >= minimum
        if not value_ok:
            raise ValueError(
                f"`{argument}` must be an integer >= {minimum}. "
                f"Received: {argument}={value!r}"
            )
    if image_size < 2 ** len(encoder_filters):
        raise ValueError(
            "`image_size` must be at least 2 ** len(encoder_filters) = "
            f"{2 ** len(encoder_filters)}. Received: image_size={image_size}"
        )
    if layer_type == "convlstm":
        temporal_dropout = 0.0
    image = keras.Input((image_size, image_size, 3), name="image")
    stages = []
    hidden = image
    for index, count in enumerate(encoder_filters):
        hidden = layers.Conv2D(
            count, 3, 2, "same", activation="relu", name=f"conv_{index + 1}"
        )(hidden)
        stages.append(
            layers.Resizing(grid_size, grid_size, name=f"skip_{index + 1}")(
                hidden
            )
        )
    skips = (
        layers.Concatenate(name="skips")(stages) if len(stages) > 1 else hidden
    )
    features = layers.Conv2D(
        feature_channels, 1, activation="relu", name="features"
    )(skips)
    encoder = keras.Model(image, features, name="encoder")

    grid_features = keras.Input(
        (grid_size, grid_size, feature_channels), name="features"
    )
    first = VertexLogits(name="first_vertex_logits")(grid_features[:, None])
    first_vertex = keras.Model(grid_features, first, name="first_vertex")

    vertex_inputs = keras.Input((None, 3), dtype="int32", name="step_vertices")
    steps = StepInputs(grid_size, name="step_inputs")(
        [grid_features, vertex_inputs]
    )
    outputs = DeepCBM(
        depth=depth,
        filters=filters,
        kernel_size=kernel_size,
        jump_stride=jump_stride,
        temporal_dropout=temporal_dropout,
        layer_type=layer_type,
        seed=seed,
        name="deep_cbm",
        **deep_cbm_kwargs,
    )(steps)
    logits = VertexLogits(name="vertex_logits")(outputs)
    decoder = keras.Model(
        [grid_features, vertex_inputs], logits, name="decoder"
    )

    images = keras.Input((image_size, image_size, 3), name="image")
    tokens = keras.Input((None,), dtype="int32", name="vertices")
    features = encoder(images)
    previous = PreviousVertices(grid_size, name="previous_vertices")(tokens)
    logits = layers.Concatenate(axis=1, name="logits")(
        [first_vertex(features), decoder([features, previous])]
    )
    return keras.Model({"image": images, "vertices": tokens}, logits, name=name)
