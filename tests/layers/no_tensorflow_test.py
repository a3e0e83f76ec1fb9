import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

# Each test runs its own process with the backend it names: once, from the
# TensorFlow part of the suite.
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="runs its own process; run once, from the TensorFlow part",
)

# Makes the packages in `BLOCKED` unimportable in the process that runs it.
WITHOUT_TENSORFLOW = textwrap.dedent(
    """
    import sys

    BLOCKED = {"tensorflow"}

    class Blocked:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name.split('.')[0]} is not installed here")

    sys.meta_path.insert(0, Blocked())
    """
)

# A device: `keras_cbm.serving`'s runtimes run an exported step (its path
# in argv) with neither Keras nor TensorFlow, then what
# `keras_cbm/__init__.py` says runs on every backend: the layers run and a
# model builds.
SCRIPT = WITHOUT_TENSORFLOW + textwrap.dedent(
    """
    import json

    import numpy as np

    BLOCKED.add("keras")
    from keras_cbm.serving import OnnxStep, StreamServer

    step = OnnxStep(sys.argv[1])
    server = StreamServer(step)
    server.add("door")
    server.push("door", np.full((4, 4, 1), 7, "uint8"))
    print(json.dumps(server.read("door").tolist()))
    assert not any(
        m.split(".")[0] in ("keras", "tensorflow") for m in sys.modules
    )
    try:
        from keras_cbm.serving import export_step
    except ImportError:
        pass
    else:
        raise AssertionError("export_step loaded without Keras")
    BLOCKED.remove("keras")

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
def test_backend_neutral_packages_run_without_tensorflow(tmp_path):
    from keras_cbm.serving import OnnxStep
    from keras_cbm.serving import export_step

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, 4, 4, 1)),
            keras.layers.TimeDistributed(keras.layers.Flatten()),
            keras.layers.GRU(2, return_sequences=True),
            keras.layers.Dense(3),
        ]
    )
    path = export_step(model, str(tmp_path / "step.onnx"), format="onnx")
    step = OnnxStep(path)
    expected, _ = step(np.full((1, 4, 4, 1), 7, "uint8"), step.zero_states(1))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, path],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served, *shapes = result.stdout.splitlines()
    np.testing.assert_allclose(json.loads(served), expected[0], atol=1e-6)
    assert " ".join(shapes).split() == [
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
