"""A saved trainer (what the main job writes as `model.keras`) loads in a
fresh process after `import keras_cbm` alone, as a saved model does."""

import os
import subprocess
import sys

import keras
import pytest

from keras_cbm.training import CoherenceModel
from keras_cbm.training import TruncatedBPTT
from tests.training.tiny import tiny_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
LOAD = """
import sys
import keras
import keras_cbm
loaded = keras.saving.load_model(sys.argv[1])
print(type(loaded).__name__, loaded.compiled)
"""


@pytest.mark.parametrize(
    "make_trainer",
    [CoherenceModel, lambda model: TruncatedBPTT(model, chunk_length=2)],
    ids=["CoherenceModel", "TruncatedBPTT"],
)
def test_saved_trainer_loads_after_importing_keras_cbm(tmp_path, make_trainer):
    trainer = make_trainer(tiny_model())
    trainer.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    path = str(tmp_path / "trainer.keras")
    trainer.save(path)
    result = subprocess.run(
        [sys.executable, "-c", LOAD, path],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [type(trainer).__name__, "True"]
