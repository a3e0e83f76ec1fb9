"""The standalone deep CBM classifier: a ResNet-18-like stack of CBM
layers from pixels, no pretrained backbone."""

import keras

from keras_cbm.layers.deep_cbm import DeepCBM
from keras_cbm.models.classification_head import classification_head


def standalone_classifier(
    num_classes=10,
    frame_shape=(64, 64, 3),
    stage_filters=(8, 16, 32, 64),
    blocks_per_stage=2,
    temporal_dropout=0.0,
    merge="add",
    activation="relu",
    batch_norm=True,
    layer_type="cbm",
    temporal_gate="auto",
    recurrent_activation="auto",
    kernel_initializer="glorot_uniform",
    recurrent_initializer="orthogonal",
    name="standalone_classifier",
):
    """Builds the standalone deep CBM video classifier.

    The `"deep_cbm"` stack has ResNet-18's layout with every convolution a
    recurrent layer: a 7x7 stride-2 stem layer and a 2x2 max-pool, then
    stages of `blocks_per_stage` two-layer residual blocks (identity
    shortcuts, or a strided 1x1 convolution where a stage starts), every
    stage after the first halving the resolution with stride 2. The
    `"head"` averages each frame over space into per-frame logits. The
    defaults are small; `PAPER_PRESETS["standalone_classifier"]` holds
    ResNet-18's widths (17 layers). The reference trains with SGD
    (momentum 0.9, learning rate 1e-4, weight decay 1e-4) and clips
    gradient values to +-5: `keras.optimizers.SGD(1e-4, momentum=0.9,
    weight_decay=1e-4, clipvalue=5.0)`.

    Args:
        num_classes: Positive integer, the number of classes.
        frame_shape: `(rows, cols, channels)` of the frames.
        stage_filters: Filters of each stage.
        blocks_per_stage: Positive integer, residual blocks per stage.
        temporal_dropout, merge, activation, batch_norm: The `DeepCBM`
            stack's arguments.
        layer_type, temporal_gate, recurrent_activation: The `DeepCBM`
            stack's arguments.
        kernel_initializer, recurrent_initializer: The `DeepCBM` stack's
            arguments (`recurrent_initializer=None`: `kernel_initializer`).
            Keras' (the layers' defaults); the reference's gain-3
            Xavier-normal, `keras_cbm.layers.deep_cbm.REFERENCE_INITIALIZER`
            for both, holds the gated T back (docs/design_decisions.md).
        name: The model's name.

    Returns:
        A functional `keras.Model` from frames `(batch, time) + frame_shape`
        to logits `(batch, time, num_classes)`.

    Example:

    >>> model = standalone_classifier(3, frame_shape=(32, 32, 3),
    ...                               stage_filters=(2, 4),
    ...                               blocks_per_stage=1)
    >>> model.get_layer("deep_cbm").depth
    5
    >>> tuple(model(np.zeros((2, 5, 32, 32, 3))).shape)
    (2, 5, 3)
    """
    filters = [stage_filters[0]]
    strides = [2]
    for stage, stage_width in enumerate(stage_filters):
        for layer in range(2 * blocks_per_stage):
            filters.append(stage_width)
            strides.append(2 if stage > 0 and layer == 0 else 1)
    depth = len(filters)

    frames = keras.Input((None,) + tuple(frame_shape), name="frames")
    features = DeepCBM(
        depth=depth,
        filters=filters,
        kernel_size=[7] + [3] * (depth - 1),
        strides=strides,
        jump_stride=2,
        pool_after=(1,),
        temporal_dropout=temporal_dropout,
        merge=merge,
        activation=activation,
        batch_norm=batch_norm,
        layer_type=layer_type,
        temporal_gate=temporal_gate,
        recurrent_activation=recurrent_activation,
        kernel_initializer=kernel_initializer,
        recurrent_initializer=recurrent_initializer or kernel_initializer,
        name="deep_cbm",
    )(frames)
    logits = classification_head(num_classes)(features)
    return keras.Model(frames, logits, name=name)
