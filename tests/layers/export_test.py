import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras.src import testing

from keras_cbm.layers import ConvCBM2D

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="SavedModel export is a TensorFlow artifact",
)


class SavedModelTest(testing.TestCase):
    @pytest.mark.slow
    def test_exported_model_serves_the_same_in_a_fresh_process(self):
        x = np.random.default_rng(0).random((2, 6, 8, 8, 3), "float32")
        model = keras.Sequential(
            [
                keras.Input((None, 8, 8, 3)),
                ConvCBM2D(4, 3, padding="same", temporal_dropout=1.0),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(3),
            ]
        )
        directory = self.get_temp_dir()
        model.export(os.path.join(directory, "saved_model"))
        np.save(os.path.join(directory, "x.npy"), x)
        # The serving process never imports keras_cbm.
        serve = textwrap.dedent(
            """
            import sys, numpy as np, tensorflow as tf
            directory = sys.argv[1]
            served = tf.saved_model.load(directory + "/saved_model")
            x = np.load(directory + "/x.npy")
            np.save(directory + "/served.npy", served.serve(x).numpy())
            assert "keras_cbm" not in sys.modules
            """
        )
        subprocess.run(
            [sys.executable, "-c", serve, directory],
            check=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        served = np.load(os.path.join(directory, "served.npy"))
        self.assertAllClose(served, model.predict(x, verbose=0), atol=1e-6)
