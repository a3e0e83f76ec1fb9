"""The per-frame classifier on top of a deep CBM stack."""

import keras

from keras_cbm.models.frame_wise import FrameWise


def classification_head(num_classes, hidden_units=None, dropout=0.0):
    """Per-frame logits from per-frame feature maps.

    Each frame's features are averaged over space (the reference flattens a
    1x1 map, the same thing), then `Dense -> ReLU -> Dropout -> Dense` when
    `hidden_units` is given (the backbone-supported reference), else one
    `Dense` (the standalone reference).

    Args:
        num_classes: Positive integer, the number of classes.
        hidden_units: Optional positive integer, the hidden layer's width.
        dropout: Float in [0, 1), the dropout rate after the hidden layer.

    Returns:
        A `FrameWise` layer named `"head"`: `(batch, time, rows, cols,
        channels)` -> `(batch, time, num_classes)` logits.
    """
    parts = [keras.layers.GlobalAveragePooling2D()]
    if hidden_units is not None:
        parts += [
            keras.layers.Dense(hidden_units, activation="relu"),
            keras.layers.Dropout(dropout),
        ]
    parts.append(keras.layers.Dense(num_classes))
    return FrameWise(keras.Sequential(parts, name="classifier"), name="head")
