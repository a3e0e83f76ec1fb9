import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras.src import testing

from tests.training.backend_fit import fit_fixed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="runs the JAX fits in their own process once, from the TF suite",
)


def fit_on_jax(work_dir):
    """`fit_fixed` on JAX, on one device and data parallel on two."""
    path = os.path.join(work_dir, "jax.npz")
    subprocess.run(
        [sys.executable, "-m", "tests.training.backend_fit", path],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        check=True,
        timeout=600,
    )
    with np.load(path) as saved:
        runs = {"jax": {}, "jax on 2 devices": {}}
        for name, value in saved.items():
            prefix, key = name.split("/")
            runs["jax" if prefix == "single" else "jax on 2 devices"][key] = (
                value
            )
        return runs


class BackendsTest(testing.TestCase):
    @pytest.mark.slow
    def test_tensorflow_jax_and_jax_data_parallel_train_the_same_weights(self):
        reference = fit_fixed()
        runs = fit_on_jax(self.get_temp_dir())
        # 3 steps of 2 videos of 3 clips, with overlaps to cohere.
        self.assertEqual(reference["loss"].shape, (1,))
        self.assertGreater(float(reference["coherence_loss"][0]), 0.0)
        for name, run in runs.items():
            self.assertEqual(sorted(run), sorted(reference), msg=name)
            for key, value in reference.items():
                self.assertAllClose(
                    run[key], value, atol=1e-4, msg=f"{name}: {key}"
                )
