import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras.src import testing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="runs each backend in its own process once, from the TF suite",
)


def fit(work_dir, backend, devices=1):
    path = os.path.join(work_dir, f"{backend}_{devices}.npz")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.training.backend_fit",
            backend,
            path,
            str(devices),
        ],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        check=True,
        timeout=600,
    )
    with np.load(path) as saved:
        return dict(saved)


class BackendsTest(testing.TestCase):
    def test_tensorflow_jax_and_jax_data_parallel_train_the_same_weights(self):
        work_dir = self.get_temp_dir()
        runs = {
            "tensorflow": fit(work_dir, "tensorflow"),
            "jax": fit(work_dir, "jax"),
            "jax on 2 devices": fit(work_dir, "jax", devices=2),
        }
        reference = runs["tensorflow"]
        # 3 steps of 2 videos of 3 clips, with overlaps to cohere.
        self.assertEqual(reference["loss"].shape, (1,))
        self.assertGreater(float(reference["coherence_loss"][0]), 0.0)
        for name, run in runs.items():
            for key, value in reference.items():
                self.assertAllClose(
                    run[key], value, atol=1e-4, msg=f"{name}: {key}"
                )
