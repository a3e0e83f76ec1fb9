import os

import keras
import pytest
from keras.src import testing

# Registers FrameWise, which the saved builder model holds.
from keras_cbm import models  # noqa: F401
from keras_cbm.training import CoherenceModel
from tests.training import killed_fit
from tests.training.killed_fit import arrays
from tests.training.killed_fit import straight_and_resumed

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="CoherenceModel's training step is TensorFlow's",
)


class ResumeTest(testing.TestCase):
    @pytest.mark.slow
    def test_killed_fit_resumes_to_the_uninterrupted_weights(self):
        _, killed = straight_and_resumed(
            self, "tests.training.resumable_fit", self.get_temp_dir()
        )
        epochs = killed_fit.epochs(killed)
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
