import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras.src import testing

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.distribute needs the TensorFlow backend",
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


class MirroredStrategyTest(testing.TestCase):
    @pytest.mark.slow
    def test_two_replicas_train_as_one_device(self):
        self.check_two_replicas_train_as_one_device([])

    @pytest.mark.slow
    def test_two_replicas_hand_states_over_as_one_device(self):
        # `RecurrentStates` runs in both replica threads at once.
        self.check_two_replicas_train_as_one_device(["handover"])

    def check_two_replicas_train_as_one_device(self, arguments):
        path = os.path.join(self.get_temp_dir(), "runs.npz")
        subprocess.run(
            [sys.executable, "-m", "tests.training.mirrored_fit", path]
            + arguments,
            cwd=ROOT,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            check=True,
            timeout=300,
        )
        runs = np.load(path)
        # loss, task_loss, coherence_loss, accuracy for 5 steps.
        self.assertEqual(runs["single_losses"].shape, (4, 5))
        self.assertGreater(runs["single_losses"][1].min(), 0.0)
        if not arguments:
            # With handover, a clip that starts inside its donor repeats the
            # donor's outputs on their overlap: coherence is 0 there.
            self.assertGreater(runs["single_losses"][2].min(), 0.0)
        self.assertAllClose(
            runs["mirrored_losses"], runs["single_losses"], atol=1e-4
        )
        weights = sorted(k for k in runs.files if k.startswith("single_"))
        for key in weights:
            other = key.replace("single_", "mirrored_")
            self.assertAllClose(runs[other], runs[key], atol=1e-4)
        self.assertTrue(weights)
        # A stream's rows keep their states in variables of the whole batch.
        self.assertIn(
            "`StreamingBPTT` must run on one replica",
            str(runs["streaming_error"]),
        )
        self.assertIn(
            "MirroredStrategy with 2 replicas", str(runs["streaming_error"])
        )
