"""The backbone-supported deep CBM classifier: CNN features per frame, a
deep CBM stack over them, per-frame logits."""

import keras

from keras_cbm.layers.deep_cbm import DeepCBM
from keras_cbm.models.classification_head import classification_head
from keras_cbm.models.frame_wise import FrameWise


def _feature_shape(backbone):
    """The backbone's frame shape and output shape; checks it is a CNN."""
    if not isinstance(backbone, keras.Model) or not isinstance(
        getattr(backbone, "input_shape", None), tuple
    ):
        raise ValueError(
            "`backbone` must be a Keras model with one defined input, "
            "(batch, rows, cols, channels). Received: "
            f"backbone={backbone!r}"
        )
    frame_shape = tuple(backbone.input_shape[1:])
    output_shape = backbone.compute_output_shape((None,) + frame_shape)
    if not isinstance(output_shape, tuple) or len(output_shape) != 4:
        raise ValueError(
            "`backbone` must output one 4-D feature map, (batch, rows, "
            "cols, channels), e.g. a `keras.applications` model with "
            "`include_top=False`. Received: a backbone with output shape "
            f"{output_shape}"
        )
    return frame_shape


def backbone_classifier(
    backbone=None,
    num_classes=10,
    depth=15,
    filters=64,
    frame_shape=(112, 112, 3),
    weights=None,
    trainable_backbone=False,
    jump_stride=5,
    shortcut="conv",
    pool_after=(5, 10, 15),
    temporal_dropout=1.0,
    merge="add",
    activation="tanh",
    batch_norm=True,
    layer_type="cbm",
    temporal_gate="auto",
    recurrent_activation="auto",
    kernel_initializer="glorot_uniform",
    recurrent_initializer="orthogonal",
    head_units=256,
    head_dropout=0.5,
    name="backbone_classifier",
):
    """Builds the backbone-supported deep CBM video classifier.

    A per-frame CNN (`"backbone"`, frozen by default) extracts feature maps,
    a `DeepCBM` stack (`"deep_cbm"`) runs over them, and a per-frame
    classifier (`"head"`: spatial mean, `Dense -> ReLU -> Dropout ->
    Dense`) gives per-frame logits. `FrameAggregation` turns those into a
    video prediction; training usually repeats the video label per frame.
    The defaults are small; `PAPER_PRESETS["backbone_classifier"]` holds
    the paper's layout (VGG19 at 224x224, 15 x 512 filters). The reference
    trains with Adam (learning rate 1e-4, weight decay 1e-4) and clips
    gradient values to +-5: `keras.optimizers.AdamW(1e-4,
    weight_decay=1e-4, clipvalue=5.0)`.

    Args:
        backbone: A Keras model from frames `(batch, rows, cols,
            channels)` to feature maps `(batch, rows', cols', channels')`,
            such as a `keras.applications` model with `include_top=False`.
            Defaults to `keras.applications.VGG19(include_top=False,
            weights=weights, input_shape=frame_shape)`; ImageNet weights
            must be a local file here. Its `trainable` is set to
            `trainable_backbone`.
        num_classes: Positive integer, the number of classes.
        depth, filters, jump_stride, shortcut, pool_after: The `DeepCBM`
            stack's arguments.
        temporal_dropout, merge, activation, batch_norm: The `DeepCBM`
            stack's arguments.
        layer_type, temporal_gate, recurrent_activation: The `DeepCBM`
            stack's arguments.
        kernel_initializer, recurrent_initializer: The `DeepCBM` stack's
            arguments: Keras' (the layers' defaults);
            `keras_cbm.layers.deep_cbm.REFERENCE_INITIALIZER` for both is
            the reference's Xavier-normal of gain 3.0.
        frame_shape: The frame shape of the default backbone (a given
            backbone's own input shape is used instead).
        weights: Optional path of backbone weights to load.
        trainable_backbone: Whether the backbone trains with the rest.
        head_units: Width of the head's hidden layer.
        head_dropout: Dropout rate of the head.
        name: The model's name.

    Returns:
        A functional `keras.Model` from frames `(batch, time) + frame_shape`
        to logits `(batch, time, num_classes)`.

    Example:

    >>> cnn = keras.Sequential([keras.Input((16, 16, 3)),
    ...                         keras.layers.Conv2D(4, 3, strides=2)])
    >>> model = backbone_classifier(cnn, num_classes=3, depth=2, filters=4,
    ...                             jump_stride=2, pool_after=(2,))
    >>> tuple(model(np.zeros((2, 5, 16, 16, 3))).shape)
    (2, 5, 3)
    """
    if backbone is None:
        backbone = keras.applications.VGG19(
            include_top=False, weights=weights, input_shape=frame_shape
        )
    elif weights is not None:
        backbone.load_weights(weights)
    frame_shape = _feature_shape(backbone)
    backbone.trainable = trainable_backbone

    frames = keras.Input((None,) + frame_shape, name="frames")
    features = FrameWise(backbone, name="backbone")(frames)
    features = DeepCBM(
        depth=depth,
        filters=filters,
        jump_stride=jump_stride,
        shortcut=shortcut,
        pool_after=pool_after,
        temporal_dropout=temporal_dropout,
        merge=merge,
        activation=activation,
        batch_norm=batch_norm,
        layer_type=layer_type,
        temporal_gate=temporal_gate,
        recurrent_activation=recurrent_activation,
        kernel_initializer=kernel_initializer,
        recurrent_initializer=recurrent_initializer,
        name="deep_cbm",
    )(features)
    logits = classification_head(num_classes, head_units, head_dropout)(
        features
    )
    return keras.Model(frames, logits, name=name)
