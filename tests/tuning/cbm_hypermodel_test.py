import contextlib
import doctest
import importlib
import io

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

from keras_cbm import data
from keras_cbm.tuning import CBMHyperModel

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="CoherenceModel trains with the TensorFlow backend",
)

FRAME_SHAPE = (16, 16, 3)


def backbone():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input(FRAME_SHAPE), keras.layers.Conv2D(4, 3, strides=2)]
    )


def videos(count=4, frames=16):
    """Videos whose class (0 or 1) is their brightness."""
    rng = np.random.default_rng(0)
    labels = np.arange(count) % 2
    video = rng.random((count, frames) + FRAME_SHAPE).astype("float32")
    video = 0.5 * video + 0.5 * labels[:, None, None, None, None]
    return tf.data.Dataset.from_tensor_slices({"video": video, "label": labels})


def small_space():
    """Tiny models that still change depth and wiring between trials."""
    hp = keras_tuner.HyperParameters()
    hp.Int("depth", 1, 4)
    hp.Fixed("filters", 4)
    return hp


class CBMHyperModelTest(testing.TestCase):
    @pytest.mark.slow
    def test_random_search(self):
        hypermodel = CBMHyperModel(backbone(), num_classes=2, head_units=4)
        tuner = keras_tuner.RandomSearch(
            hypermodel,
            objective="val_loss",
            max_trials=3,
            hyperparameters=small_space(),
            seed=1,
            directory=self.get_temp_dir(),
            project_name="random",
        )
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            tuner.search_space_summary()
        for name in (
            "depth",
            "filters",
            "jump_stride",
            "temporal_dropout",
            "merge",
            "coherence_weight",
            "learning_rate",
        ):
            self.assertIn(f"{name} (", summary.getvalue())

        epochs = []
        record = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: epochs.append(logs)
        )
        train = data.overlapping_clips(videos(), 2, 4, 8, seed=0).batch(2)
        validation = data.uniform_clips(videos(), 8, 8).batch(2)
        tuner.search(
            train,
            validation_data=validation,
            epochs=1,
            callbacks=[record],
            verbose=0,
        )

        trials = tuner.oracle.get_best_trials(3)
        self.assertEqual(len(trials), 3)
        # The tuner's callbacks (and ours) reached every trial's fit.
        self.assertEqual(len(epochs), 3)
        self.assertTrue(all("val_loss" in logs for logs in epochs))
        best = tuner.get_best_models(1)[0]
        inputs, _ = next(iter(validation))
        predictions = best.predict(inputs, verbose=0)
        self.assertEqual(predictions["probabilities"].shape, (2, 2))
        self.assertAllClose(
            best.evaluate(validation, verbose=0)[0],
            trials[0].score,
            atol=1e-5,
        )

    def test_every_depth_keeps_per_frame_outputs(self):
        hypermodel = CBMHyperModel(backbone(), num_classes=3, head_units=4)
        frames = np.random.rand(2, 5, *FRAME_SHAPE).astype("float32")
        for depth, jump_stride, merge in (
            (1, 1, "multiply"),
            (2, 4, "add"),
            (5, 2, "concat"),
            (8, 3, "multiply"),
        ):
            hp = keras_tuner.HyperParameters()
            hp.Fixed("depth", depth)
            hp.Fixed("filters", 4)
            hp.Fixed("jump_stride", jump_stride)
            hp.Fixed("merge", merge)
            trainer = hypermodel.build(hp)
            stack = trainer.model.get_layer("deep_cbm")
            self.assertEqual(stack.depth, depth)
            self.assertEqual(stack.shortcut_count, depth // jump_stride)
            self.assertEqual(tuple(trainer.model(frames).shape), (2, 5, 3))

    def test_fixed_stack_arguments_reach_every_trial(self):
        hypermodel = CBMHyperModel(
            backbone(), num_classes=2, head_units=4, activation="relu"
        )
        stack = hypermodel.build(keras_tuner.HyperParameters()).model
        stack = stack.get_layer("deep_cbm")
        self.assertEqual(
            [layer.cell.activation for layer in stack.recurrent_layers],
            [keras.activations.relu] * stack.depth,
        )

    def test_temporal_unit_is_gated_by_default_and_can_be_the_papers(self):
        hypermodel = CBMHyperModel(backbone(), num_classes=2, head_units=4)
        for unit, gate, activation in (
            ("gated", "recurrent", "tanh"),
            ("paper", None, "sigmoid"),
        ):
            hp = keras_tuner.HyperParameters()
            if unit == "paper":
                hp.Fixed("temporal_unit", "paper")
            stack = hypermodel.build(hp).model.get_layer("deep_cbm")
            self.assertEqual(hp.get("temporal_unit"), unit)
            for layer in stack.recurrent_layers:
                self.assertEqual(layer.cell.temporal_gate, gate)
                self.assertEqual(
                    keras.activations.serialize(
                        layer.cell.recurrent_activation
                    ),
                    activation,
                )
        with self.assertRaisesRegex(ValueError, "temporal_gate"):
            CBMHyperModel(backbone(), 2, temporal_gate=None)

    def test_trials_get_their_own_backbone_copy(self):
        cnn = backbone()
        hypermodel = CBMHyperModel(cnn, num_classes=2, head_units=4)
        first = hypermodel.build(keras_tuner.HyperParameters())
        second = hypermodel.build(keras_tuner.HyperParameters())
        copies = [m.model.get_layer("backbone").layer for m in (first, second)]
        self.assertIsNot(copies[0], copies[1])
        self.assertIsNot(copies[0], cnn)
        for copy in copies:
            for mine, theirs in zip(copy.weights, cnn.weights, strict=True):
                self.assertIsNot(mine, theirs)
                self.assertAllEqual(mine, theirs)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "depth"):
            CBMHyperModel(backbone(), 2, depth=3)
        with self.assertRaisesRegex(ValueError, "backbone=None"):
            CBMHyperModel(None, 2)

    def test_docstring_examples_run(self):
        failures, tried = doctest.testmod(
            importlib.import_module("keras_cbm.tuning.cbm_hypermodel"),
            extraglobs={"np": np, "keras": keras},
        )
        self.assertGreater(tried, 0)
        self.assertEqual(failures, 0)
