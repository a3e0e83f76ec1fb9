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
    def test_two_replicas_train_as_one_device_with_and_without_handover(self):
        # One process for both runs: the logical devices need a fresh one.
        folder = self.get_temp_dir()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.training.mirrored_fit",
                folder,
            ],
            cwd=ROOT,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            check=True,
            timeout=300,
        )
        for state_handover, name in ((False, "plain"), (True, "handover")):
            with self.subTest(state_handover=state_handover):
                # With handover `RecurrentStates` runs in both replica
                # threads at once.
                runs = np.load(os.path.join(folder, f"{name}.npz"))
                self.check_two_replicas_trained_as_one_device(
                    runs, state_handover
                )

    def check_two_replicas_trained_as_one_device(self, runs, state_handover):
        # loss, task_loss, coherence_loss, accuracy for 5 steps.
        self.assertEqual(runs["single_losses"].shape, (4, 5))
        self.assertGreater(runs["single_losses"][1].min(), 0.0)
        if not state_handover:
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
