"""`keras.layers.Masking` before the CBM layers: its mask has a position
axis per spatial dimension, and a padded frame must count as absent, as in
`keras.layers.ConvLSTM2D`."""

import keras
import numpy as np
import pytest

from keras_cbm.layers import CBM
from keras_cbm.layers import ConvCBM1D
from keras_cbm.layers import ConvCBM2D
from keras_cbm.layers import ConvCBM3D
from keras_cbm.layers import DeepCBM
from tests.layers.testing_utils import random_sequences

BATCH, STEPS, PADDED = 2, 3, 5


def masked_model(layer, frame):
    inputs = keras.Input((None,) + frame)
    return keras.Model(inputs, layer(keras.layers.Masking(0.0)(inputs)))


def padded(frame):
    """Sequences of `STEPS` frames padded with zero frames to `PADDED`."""
    x = np.zeros((BATCH, PADDED) + frame, "float32")
    x[:, :STEPS] = random_sequences((BATCH, STEPS) + frame)
    return x


@pytest.mark.parametrize(
    "layer, frame",
    [
        (CBM(4), (3,)),
        (ConvCBM1D(4, 3, padding="same"), (6, 3)),
        (ConvCBM2D(4, 3, padding="same", strides=2), (6, 6, 3)),
        (ConvCBM3D(4, 2, padding="valid"), (3, 3, 3, 2)),
    ],
    ids=["CBM", "ConvCBM1D", "ConvCBM2D", "ConvCBM3D"],
)
def test_padded_frames_give_the_unpadded_result(layer, frame):
    model = masked_model(layer, frame)
    x = padded(frame)
    np.testing.assert_allclose(
        model.predict(x, verbose=0),
        model.predict(x[:, :STEPS], verbose=0),
        atol=1e-6,
    )


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="Keras' JAX loop refuses ConvLSTM2D with Masking's mask of "
    "(batch, time, rows, cols) (a broadcasting error, Keras 3.15).",
)
def test_same_as_conv_lstm_for_padded_frames():
    """What ConvLSTM2D does with the mask of `Masking`: the padded steps
    keep the state, so the last output is the unpadded sequence's."""
    frame = (5, 5, 3)
    x = padded(frame)
    for layer in (
        keras.layers.ConvLSTM2D(4, 3, padding="same"),
        ConvCBM2D(4, 3, padding="same"),
    ):
        model = masked_model(layer, frame)
        np.testing.assert_allclose(
            model.predict(x, verbose=0),
            model.predict(x[:, :STEPS], verbose=0),
            atol=1e-6,
        )


def test_output_mask_is_a_step_mask():
    layer = ConvCBM2D(4, 3, padding="same", return_sequences=True)
    x = padded((4, 4, 2))
    spatial_mask = keras.layers.Masking(0.0).compute_mask(x)
    step_mask = layer.compute_mask(x, spatial_mask)
    np.testing.assert_array_equal(
        step_mask, np.arange(PADDED)[None].repeat(BATCH, 0) < STEPS
    )


def test_deep_cbm_after_masking():
    frame = (6, 6, 3)
    model = masked_model(DeepCBM(2, 4), frame)
    x = padded(frame)
    full = model.predict(x, verbose=0)
    unpadded = model.predict(x[:, :STEPS], verbose=0)
    # The padded steps repeat the last unpadded output.
    np.testing.assert_allclose(full[:, :STEPS], unpadded, atol=1e-5)
    np.testing.assert_allclose(
        full[:, STEPS:],
        np.repeat(unpadded[:, -1:], PADDED - STEPS, axis=1),
        atol=1e-5,
    )
