import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras.src import testing

# Registers FrameWise, which the saved builder model holds.
from keras_cbm import models  # noqa: F401
from keras_cbm.training import CoherenceModel

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="CoherenceModel's training step is TensorFlow's",
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def fit_process(work_dir, *flags):
    return subprocess.run(
        [sys.executable, "-m", "tests.training.resumable_fit", work_dir]
        + list(flags),
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        timeout=300,
    )


def arrays(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


class ResumeTest(testing.TestCase):
    def test_killed_fit_resumes_to_the_uninterrupted_weights(self):
        straight = os.path.join(self.get_temp_dir(), "straight")
        killed = os.path.join(self.get_temp_dir(), "killed")
        os.makedirs(straight)
        os.makedirs(killed)
        self.assertEqual(fit_process(straight).returncode, 0)

        first = fit_process(killed, "--kill")
        self.assertEqual(first.returncode, -signal.SIGKILL)
        self.assertFalse(os.path.exists(os.path.join(killed, "final.npz")))
        second = fit_process(killed)
        self.assertEqual(second.returncode, 0, second.stderr[-2000:])

        for got, expected in zip(
            arrays(os.path.join(killed, "final.npz")),
            arrays(os.path.join(straight, "final.npz")),
            strict=True,
        ):
            self.assertAllClose(got, expected, atol=1e-6)
        with open(os.path.join(killed, "epochs.jsonl")) as log:
            epochs = [json.loads(line) for line in log]
        # Epoch 1 before the kill, then epochs 2 and 3 after the restore.
        self.assertEqual([e["epoch"] for e in epochs], [1, 2, 3])

        best = min(epochs, key=lambda e: e["loss"])["epoch"]
        restored = keras.saving.load_model(os.path.join(killed, "best.keras"))
        self.assertIsInstance(restored, CoherenceModel)
        for got, expected in zip(
            restored.model.get_weights(),
            arrays(os.path.join(killed, f"epoch_{best}.npz")),
            strict=True,
        ):
            self.assertAllClose(got, expected, atol=1e-6)
