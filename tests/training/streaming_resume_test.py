"""A streaming `fit` killed by SIGKILL mid-epoch and started again ends
with the weights (and rows' states) of one never stopped: the restored
epoch skips the batches its backup had trained, and later epochs are
whole."""

import pytest
from keras.src import testing

from tests.training.killed_fit import epochs
from tests.training.killed_fit import straight_and_resumed


class StreamingResumeTest(testing.TestCase):
    @pytest.mark.slow
    def test_killed_fit_resumes_to_the_uninterrupted_weights(self):
        straight, killed = straight_and_resumed(
            self, "tests.training.streaming_fit", self.get_temp_dir()
        )
        self.assertEqual(
            [(e["epoch"], e["batches"]) for e in epochs(straight)],
            [(1, 8), (2, 8)],
        )
        # Killed after 5 batches of epoch 1, its backup after 4: the
        # restarted epoch trains the other 4, epoch 2 all 8.
        self.assertEqual(
            [(e["epoch"], e["batches"]) for e in epochs(killed)],
            [(1, 4), (2, 8)],
        )
        self.assertAllClose(
            epochs(killed)[-1]["loss"], epochs(straight)[-1]["loss"], atol=1e-6
        )
