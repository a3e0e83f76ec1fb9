import doctest
import importlib

import keras
import numpy as np
import pytest

MODULES = [
    "keras_cbm.losses.overlap_coherence",
    "keras_cbm.models.recurrent_states",
    "keras_cbm.training.coherence_model",
    "keras_cbm.training.frame_targets",
    "keras_cbm.training.truncated_bptt",
]


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the training examples fit with the TensorFlow backend",
)
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    failures, tried = doctest.testmod(
        importlib.import_module(name), extraglobs={"np": np, "keras": keras}
    )
    assert tried > 0 and failures == 0
