"""Per-frame video models of every kind the training scheme takes: the
README's `Sequential` example, a functional mix of keras_cbm and Keras
recurrent layers, and a subclassed model around `keras.layers.RNN(cell)`."""

import keras

from keras_cbm.layers import ConvCBM2D
from keras_cbm.layers import ConvCBMCell
from tests.training.tiny import FRAME_SHAPE

CLASSES = 2


def sequential_model():
    return keras.Sequential(
        [
            keras.Input((None,) + FRAME_SHAPE),
            ConvCBM2D(4, 3, padding="same", return_sequences=True),
            ConvCBM2D(4, 3, padding="same", merge="add", return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D()),
            keras.layers.Dense(CLASSES),
        ]
    )


def functional_model():
    frames = keras.Input((None,) + FRAME_SHAPE)
    x = ConvCBM2D(4, 3, padding="same", return_sequences=True)(frames)
    x = keras.layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True)(x)
    x = keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D())(x)
    x = keras.layers.GRU(4, return_sequences=True)(x)
    return keras.Model(frames, keras.layers.Dense(CLASSES)(x))


@keras.saving.register_keras_serializable(package="keras_cbm_tests")
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
        self.lstm = keras.layers.LSTM(4, return_sequences=True)
        self.head = keras.layers.Dense(CLASSES)

    def call(self, frames, training=None):
        return self.head(self.lstm(self.pool(self.rnn(frames))))


MODELS = {
    "sequential": sequential_model,
    "functional": functional_model,
    "cell": CellModel,
}


def any_model(kind, seed=0):
    keras.utils.set_random_seed(seed)
    model = MODELS[kind]()
    model(keras.ops.zeros((1, 1) + FRAME_SHAPE))  # Builds the subclassed one.
    return model
