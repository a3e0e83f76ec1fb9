"""`.keras` files saved before the gated T became the default load with the
cell they were saved with."""

import pathlib

import keras
import numpy as np

import keras_cbm.layers  # noqa: F401  (registers the layers)

DATA = pathlib.Path(__file__).parent / "data"


def test_file_saved_at_the_papers_defaults_loads_the_papers_cell():
    # Written by commit 3c2dfb6 (before the change) with its defaults:
    # ConvCBM2D, DeepCBM(depth=2) and CBM, none given a cell argument.
    model = keras.saving.load_model(DATA / "before_gated_default.keras")
    saved = np.load(DATA / "before_gated_default.npz")
    np.testing.assert_allclose(
        model.predict(saved["inputs"], verbose=0),
        saved["outputs"],
        rtol=1e-5,
        atol=1e-7,
    )
    cells = [model.layers[0].cell, model.layers[3].cell]
    cells += [layer.cell for layer in model.layers[1].recurrent_layers]
    for cell in cells:
        assert cell.temporal_gate is None
        assert cell.merge == "multiply"
        assert keras.activations.serialize(cell.recurrent_activation) == (
            "sigmoid"
        )
