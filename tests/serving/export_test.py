import importlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

from keras_cbm import models
from keras_cbm.layers import FrameAggregation
from keras_cbm.serving import export
from keras_cbm.training import CoherenceModel

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="serving needs the TensorFlow backend",
)

FRAME_SHAPE = (16, 16, 3)
CLIENT = os.path.join(os.path.dirname(__file__), "serve.py")


def classifier(cell="cbm", seed=0):
    keras.utils.set_random_seed(seed)
    model = models.standalone_classifier(
        3,
        frame_shape=FRAME_SHAPE,
        stage_filters=(4,),
        blocks_per_stage=1,
        cell=cell,
    )
    # Moving statistics away from their initial values, so that the
    # comparison sees the inference-mode normalisation.
    for weight in model.non_trainable_weights:
        weight.assign(np.random.uniform(0.5, 1.5, weight.shape))
    return model


def videos(count=2, frames=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, frames) + FRAME_SHAPE, "uint8")


def serve(path, video, work_dir):
    """Runs the client in a fresh process away from the repository."""
    video_path = os.path.join(work_dir, "videos.npy")
    output_path = os.path.join(work_dir, "served.npz")
    np.save(video_path, video)
    subprocess.run(
        [sys.executable, CLIENT, path, video_path, output_path],
        cwd=work_dir,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        check=True,
        timeout=300,
    )
    return np.load(output_path)


class ExportTest(testing.TestCase):
    @pytest.mark.slow
    def test_fresh_process_serves_both_signatures(self):
        for cell, aggregation in (("cbm", "mean"), ("convlstm", "last")):
            model = classifier(cell)
            video = videos()
            path = export(
                model,
                os.path.join(self.get_temp_dir(), cell),
                aggregation=aggregation,
            )
            served = serve(path, video, self.get_temp_dir())

            self.assertFalse(served["imported_keras_cbm"])
            # As the signatures scale: `scale` in float32, then a product.
            frames = model(video.astype("float32") * np.float32(1 / 255))
            probabilities = keras.ops.softmax(frames, axis=-1)
            self.assertAllClose(
                served["video_probabilities"],
                FrameAggregation(aggregation)(probabilities),
                atol=1e-5,
            )
            self.assertAllClose(
                served["frame_probabilities"], probabilities, atol=1e-5
            )
            # Bad inputs were refused, naming the spec, and then served.
            self.assertAllClose(
                served["after_errors"], served["video_probabilities"]
            )
            self.assertErrors(served)

    def assertErrors(self, served):
        expected = {
            "classify_size": "to TensorSpec(shape=(None, None, 16, 16, 3), "
            "dtype=tf.uint8, name='frames')",
            "classify_dtype": "expected to be a uint8 tensor but is a float",
            "step_size": "to TensorSpec(shape=(None, 16, 16, 3), "
            "dtype=tf.uint8, name='frame')",
            "step_dtype": "expected to be a uint8 tensor but is a float",
            "step_fewer_states": "missing a required argument: 'state_",
            "step_more_states": "unexpected keyword argument 'state_99'",
        }
        for name, text in expected.items():
            message = str(served[f"error_{name}"])
            self.assertIn(text, message, msg=name)

    def test_coherence_model_defaults(self):
        model = classifier()
        trainer = CoherenceModel(model, aggregation="vote", from_logits=False)
        path = export(trainer, os.path.join(self.get_temp_dir(), "vote"))
        video = videos(count=1, frames=4)
        served = tf.saved_model.load(path)
        outputs = served.signatures["classify"](frames=video)
        expected = FrameAggregation("vote")(
            model(video.astype("float32") * np.float32(1 / 255))
        )
        self.assertAllClose(outputs["probabilities"], expected, atol=1e-6)

    def test_bad_arguments(self):
        path = self.get_temp_dir()
        with self.assertRaisesRegex(ValueError, "aggregation='max'"):
            export(classifier(), path, aggregation="max")
        with self.assertRaisesRegex(ValueError, "scale=0"):
            export(classifier(), path, scale=0)
        with self.assertRaisesRegex(ValueError, "`model` must be"):
            export(keras.Sequential([keras.layers.Dense(2)]), path)
        frames = keras.Input((None, None, None, 3))
        dynamic = keras.Model(frames, keras.layers.Dense(2)(frames[:, :, 0, 0]))
        with self.assertRaisesRegex(ValueError, "`model` must"):
            export(dynamic, path)

    def test_docstring_examples_run(self):
        import doctest

        failures, tried = doctest.testmod(
            importlib.import_module("keras_cbm.serving.export"),
            extraglobs={"np": np, "tf": tf},
        )
        self.assertGreater(tried, 0)
        self.assertEqual(failures, 0)
