"""Tiny video models of every kind `CoherenceModel` trains and
`serving.export` takes: the README's `Sequential` example made per-frame, a
functional mix of keras_cbm and Keras recurrent layers, a subclassed model
around `keras.layers.RNN(cell)`, a `standalone_classifier` (a `DeepCBM`) and
a future-frame predictor."""

import keras
import numpy as np

from keras_cbm import models
from keras_cbm.layers import ConvCBM2D
from keras_cbm.layers import ConvCBMCell

FRAME_SHAPE = (16, 16, 3)
CLASSES = 3


def sequential(activation=None):
    """Per-frame logits, or probabilities with `activation="softmax"`."""
    return keras.Sequential(
        [
            keras.Input((None,) + FRAME_SHAPE),
            ConvCBM2D(4, 3, padding="same", return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D()),
            keras.layers.Dense(CLASSES, activation=activation),
        ]
    )


def softmax(logits):
    """NumPy softmax over the last axis, for hand computations."""
    exp = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def functional():
    frames = keras.Input((None,) + FRAME_SHAPE)
    x = ConvCBM2D(4, 3, padding="same", return_sequences=True)(frames)
    x = keras.layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True)(x)
    x = keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D())(x)
    x = keras.layers.GRU(4, return_sequences=True)(x)
    return keras.Model(frames, keras.layers.Dense(CLASSES)(x))


class CellModel(keras.Model):
    """`keras.layers.RNN` with a conv cell runs only eagerly in Keras 3.15
    (its shape inference takes vector states), so it lives in a subclassed
    model."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rnn = keras.layers.RNN(
            ConvCBMCell(2, 4, 3, padding="same"), return_sequences=True
        )
        self.pool = keras.layers.TimeDistributed(
            keras.layers.GlobalAveragePooling2D()
        )
        self.head = keras.layers.Dense(CLASSES)

    def call(self, frames, training=None):
        return self.head(self.pool(self.rnn(frames)))


def cell():
    model = CellModel()
    model(keras.ops.zeros((1, 1) + FRAME_SHAPE))  # Builds it.
    return model


def standalone():
    model = models.standalone_classifier(
        CLASSES, frame_shape=FRAME_SHAPE, stage_filters=(4,), blocks_per_stage=1
    )
    # Moving statistics away from their initial values, so that the
    # comparisons see the inference-mode normalisation.
    for weight in model.non_trainable_weights:
        weight.assign(np.random.uniform(0.5, 1.5, weight.shape))
    return model


def predictor():
    return models.future_frame_predictor(
        frame_shape=FRAME_SHAPE,
        input_frames=3,
        output_frames=2,
        encoder_filters=(4,),
        depth=2,
        filters=4,
        jump_stride=2,
    )


CLASSIFIERS = {
    "sequential": sequential,
    "functional": functional,
    "cell": cell,
    "standalone": standalone,
}


def build(kind, seed=0):
    keras.utils.set_random_seed(seed)
    return {**CLASSIFIERS, "predictor": predictor}[kind]()


def videos(count=2, frames=32, seed=0):
    """Random uint8 videos `(count, frames, 16, 16, 3)`."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, frames) + FRAME_SHAPE, "uint8")
