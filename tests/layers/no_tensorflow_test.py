import os
import subprocess
import sys
import textwrap

import keras
import pytest

# Each test runs its own process with the backend it names: once, from the
# TensorFlow part of the suite.
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="runs its own process; run once, from the TensorFlow part",
)

# Makes TensorFlow unimportable in the process that runs it.
WITHOUT_TENSORFLOW = textwrap.dedent(
    """
    import sys

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError("TensorFlow is not installed here")

    sys.meta_path.insert(0, NoTensorFlow())
    """
)

# What `keras_cbm/__init__.py` says runs on every backend: the layers run
# and a model builds.
SCRIPT = WITHOUT_TENSORFLOW + textwrap.dedent(
    """
    import numpy as np

    import keras_cbm
    import keras_cbm.losses
    import keras_cbm.training
    from keras_cbm import models
    from keras_cbm.layers import CBM, ConvCBM2D

    frames = np.zeros((2, 3, 8, 8, 1), "float32")
    print(ConvCBM2D(4, 3, padding="same")(frames).shape)
    print(CBM(4)(np.zeros((2, 3, 5), "float32")).shape)
    print(models.standalone_classifier(2, (16, 16, 3), (2,), 1).output.shape)
    assert keras_cbm.training.CoherenceModel
    assert keras_cbm.losses.OverlapCoherence
    try:
        keras_cbm.training.MultiWorkerFit
    except ImportError:
        pass
    else:
        raise AssertionError("MultiWorkerFit loaded without TensorFlow")
    assert not any(m.split(".")[0] == "tensorflow" for m in sys.modules)
    """
)


@pytest.mark.slow
def test_backend_neutral_packages_run_without_tensorflow():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [
        "(2,",
        "8,",
        "8,",
        "4)",
        "(2,",
        "4)",
        "(None,",
        "None,",
        "2)",
    ]


def test_importing_the_layers_prints_nothing():
    result = subprocess.run(
        [sys.executable, "-c", "import keras_cbm.layers"],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.stdout, result.stderr) == ("", "")
