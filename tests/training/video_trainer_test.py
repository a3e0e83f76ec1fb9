"""What every trainer shares through `VideoTrainer`: `.keras` round trips
(dtype policy kept, configs saved before the base load), `from_logits`
checked against the compiled loss, and serving that exports the wrapped
model. Backend-neutral but for the export (TensorFlow)."""

import json
import os
import warnings

import keras
import numpy as np
import pytest
from absl.testing import parameterized
from keras import ops
from keras.src import testing

from keras_cbm.training import CoherenceModel
from keras_cbm.training import FrameTargets
from keras_cbm.training import StreamingBPTT
from keras_cbm.training import TruncatedBPTT
from keras_cbm.training import VideoTrainer
from tests.training.truncated_bptt_test import lstm_model
from tests.training.truncated_bptt_test import random

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make(kind, net, **kwargs):
    """A trainer of `kind` around `net` and an input batch it takes."""
    if kind == "coherence":
        alignment = np.array([[[0, 1, 2, 3], [2, 3, 4, -1]]] * 2)
        inputs = {"clips": random((2, 2, 4, 3)), "alignment": alignment}
        return CoherenceModel(net, state_handover="donor", **kwargs), inputs
    if kind == "truncated":
        trainer = TruncatedBPTT(net, 2, targets=FrameTargets(last=3), **kwargs)
        return trainer, random((2, 6, 3))
    inputs = {"video": random((2, 3, 3)), "new_video": np.array([True, True])}
    return StreamingBPTT(net, **kwargs), inputs


def outputs_of(trainer, inputs):
    outputs = trainer(inputs)
    if isinstance(outputs, dict):
        outputs = outputs["probabilities"]
    return ops.convert_to_numpy(outputs)


TRAINERS = ("coherence", "truncated", "streaming")


def as_json(config):
    # JSON has no tuples: a restored model's config holds lists.
    return json.loads(json.dumps(config))


class VideoTrainerTest(testing.TestCase):
    @parameterized.product(kind=TRAINERS, dtype=(None, "mixed_float16"))
    def test_keras_file_round_trip(self, kind, dtype):
        trainer, inputs = make(kind, lstm_model(), dtype=dtype)
        expected = outputs_of(trainer, inputs)
        path = os.path.join(self.get_temp_dir(), f"{kind}.keras")
        trainer.compile("adam", LOSS)
        trainer.save(path)
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "error", message="`compile\\(\\)` was not called"
            )
            restored = keras.saving.load_model(path)
        self.assertTrue(restored.compiled)
        self.assertEqual(type(restored.optimizer), type(trainer.optimizer))
        self.assertIs(type(restored), type(trainer))
        self.assertEqual(
            as_json(restored.get_config()), as_json(trainer.get_config())
        )
        self.assertEqual(
            restored.dtype_policy.name,
            dtype or keras.config.dtype_policy().name,
        )
        if kind == "streaming":
            # The rows' states are saved: the restored stream continues.
            inputs = dict(inputs, new_video=np.array([False, False]))
            expected = outputs_of(trainer, inputs)
        self.assertAllClose(outputs_of(restored, inputs), expected, atol=1e-6)

    def test_configs_saved_before_the_base_load(self):
        # As `get_config` wrote them on main at 17ad424.
        model = keras.saving.serialize_keras_object(lstm_model())
        old = {"name": "old", "trainable": True, "model": model}
        for name, config, check in (
            (
                "CoherenceModel",
                {
                    "coherence_weight": 0.5,
                    "state_handover": True,
                    "symmetric": False,
                    "aggregation": "mean",
                    "from_logits": True,
                },
                lambda t: t.state_handover == "donor",
            ),
            (
                "TruncatedBPTT",
                {
                    "chunk_length": 2,
                    "targets": ["last", 2],
                    "rematerialize": True,
                    "from_logits": True,
                },
                lambda t: t.targets == FrameTargets(last=2),
            ),
            (
                "StreamingBPTT",
                {"chunk_length": None, "rematerialize": False},
                lambda t: t.chunk_length is None,
            ),
        ):
            trainer = keras.saving.deserialize_keras_object(
                {
                    "module": "keras_cbm.training",
                    "class_name": name,
                    "config": dict(old, **config),
                    "registered_name": f"keras_cbm>{name}",
                }
            )
            self.assertIsInstance(trainer, VideoTrainer)
            self.assertTrue(check(trainer))

    def test_targets_round_trip_through_json(self):
        trainer = TruncatedBPTT(lstm_model(), 2, targets=("from", 1))
        config = json.dumps(keras.saving.serialize_keras_object(trainer))
        again = keras.saving.deserialize_keras_object(json.loads(config))
        self.assertEqual(again.targets, FrameTargets(start=1))

    @parameterized.parameters(*TRAINERS)
    def test_from_logits_must_agree_with_the_compiled_loss(self, kind):
        trainer, _ = make(kind, lstm_model())
        for loss in (
            keras.losses.SparseCategoricalCrossentropy(),
            "sparse_categorical_crossentropy",
        ):
            with self.assertRaisesRegex(
                ValueError,
                r"`from_logits` must be the compiled loss's \(False .*"
                r"Received: from_logits=True",
            ):
                trainer.compile("sgd", loss)
        trainer.compile("sgd", LOSS)
        trainer.compile("sgd", "mse")  # Nothing to agree on.


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="export needs the TensorFlow backend",
)
class TrainerExportTest(testing.TestCase):
    @parameterized.parameters(*TRAINERS)
    def test_every_trainer_exports_its_model(self, kind):
        import tensorflow as tf

        from keras_cbm.serving import LiteRTStep
        from keras_cbm.serving import export
        from keras_cbm.serving import export_step

        net = lstm_model()
        trainer, _ = make(kind, net)
        video = np.random.default_rng(0).integers(0, 255, (1, 4, 3), "uint8")
        logits = net(video / 255)
        expected = ops.convert_to_numpy(ops.softmax(logits))

        served = tf.saved_model.load(export(trainer, self.get_temp_dir()))
        self.assertAllClose(
            served.signatures["classify"](frames=video)["probabilities"],
            ops.softmax(ops.mean(logits, axis=1)),
            atol=1e-5,
        )
        step = LiteRTStep(
            export_step(trainer, os.path.join(self.get_temp_dir(), "s.tflite"))
        )
        states = step.zero_states(1)
        for t in range(4):
            probabilities, states = step(video[:, t], states)
            self.assertAllClose(probabilities, expected[:, t], atol=1e-5)
