import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

from keras_cbm import models
from keras_cbm.layers import DeepCBM

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="model builders are tested on the TensorFlow backend",
)


@pytest.fixture(autouse=True)
def seeded():
    # Initial weights, dropout draws and shuffling would vary run to run.
    keras.utils.set_random_seed(0)


def tiny_cnn(frame_shape=(16, 16, 3)):
    return keras.Sequential(
        [
            keras.Input(frame_shape),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
        ],
        name="tiny_cnn",
    )


def labelled_videos(frame_shape, videos=16, steps=3, seed=0):
    """Videos whose class (0 or 1) is their brightness; per-frame labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(videos) % 2
    frames = rng.random((videos, steps) + frame_shape).astype("float32")
    frames = 0.5 * frames + 0.5 * labels[:, None, None, None, None]
    return frames, np.repeat(labels[:, None], steps, axis=1)


def summary_text(model):
    lines = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    return "\n".join(lines)


class BuilderContractMixin:
    """fit lowers the loss; the summary names the parts; `.keras` round
    trips to identical predictions."""

    parts = ()

    def check_contract(self, model, x, y, loss, epochs=8):
        model.compile(keras.optimizers.Adam(1e-2, clipvalue=5.0), loss)
        history = model.fit(x, y, batch_size=8, epochs=epochs, verbose=0)
        losses = history.history["loss"]
        self.assertLess(losses[-1], 0.8 * losses[0])
        text = summary_text(model)
        for part in self.parts:
            self.assertIn(part, text)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        self.assertAllClose(
            loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=0
        )


class BackboneClassifierTest(testing.TestCase, BuilderContractMixin):
    parts = ("backbone", "deep_cbm", "head")

    def build(self, **kwargs):
        return models.backbone_classifier(
            tiny_cnn(),
            num_classes=2,
            depth=3,
            filters=4,
            jump_stride=3,
            pool_after=(3,),
            head_units=8,
            **kwargs,
        )

    @pytest.mark.slow
    def test_trains_summarises_and_round_trips(self):
        x, y = labelled_videos((16, 16, 3))
        model = self.build()
        self.assertEqual(tuple(model.output.shape), (None, None, 2))
        backbone = model.get_layer("backbone").layer
        self.assertFalse(backbone.trainable)
        trainable = {id(w) for w in model.trainable_weights}
        self.assertFalse(any(id(w) in trainable for w in backbone.weights))
        self.check_contract(
            model,
            x,
            y,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )

    def test_convlstm_baseline_has_the_same_layout(self):
        model = self.build(layer_type="convlstm")
        stack = model.get_layer("deep_cbm")
        self.assertTrue(
            all(
                isinstance(r, keras.layers.ConvLSTM2D)
                for r in stack.recurrent_layers
            )
        )
        x, _ = labelled_videos((16, 16, 3), videos=2)
        self.assertEqual(tuple(model(x).shape), (2, 3, 2))

    def test_backbone_weights_path_and_trainable(self):
        source = tiny_cnn()
        path = os.path.join(self.get_temp_dir(), "cnn.weights.h5")
        source.save_weights(path)
        target = tiny_cnn()
        model = models.backbone_classifier(
            target,
            num_classes=2,
            depth=1,
            filters=2,
            weights=path,
            trainable_backbone=True,
            pool_after=(),
        )
        for got, expected in zip(
            target.get_weights(), source.get_weights(), strict=True
        ):
            self.assertAllClose(got, expected)
        self.assertTrue(model.get_layer("backbone").layer.trainable)
        # Conv; CBM kernels and bias; its two batch norms; the head's two
        # Dense.
        self.assertLen(model.trainable_weights, 2 + 3 + 2 * 2 + 2 * 2)

    def test_default_vgg19_backbone(self):
        model = models.backbone_classifier(
            num_classes=2,
            depth=1,
            filters=2,
            frame_shape=(32, 32, 3),
            pool_after=(),
            jump_stride=None,
        )
        backbone = model.get_layer("backbone").layer
        self.assertEqual(backbone.name, "vgg19")
        self.assertEqual(
            model.get_layer("deep_cbm").input.shape, (None, None, 1, 1, 512)
        )
        x = np.zeros((1, 2, 32, 32, 3), "float32")
        self.assertEqual(tuple(model(x).shape), (1, 2, 2))

    @pytest.mark.slow
    def test_traced_with_dynamic_batch_and_time_and_exported(self):
        model = self.build()
        traced = tf.function(
            model, input_signature=[tf.TensorSpec((None, None, 16, 16, 3))]
        )
        path = os.path.join(self.get_temp_dir(), "classifier")
        model.export(path)
        served = tf.saved_model.load(path)
        for shape in [(2, 5, 16, 16, 3), (3, 1, 16, 16, 3)]:
            x = np.random.default_rng(0).random(shape, "float32")
            expected = model(x)
            self.assertEqual(tuple(expected.shape), shape[:2] + (2,))
            self.assertAllClose(traced(x), expected, atol=1e-5)
            self.assertAllClose(served.serve(x), expected, atol=1e-5)

    def test_backbone_must_output_a_feature_map(self):
        flat = keras.Sequential(
            [
                keras.Input((16, 16, 3)),
                keras.layers.GlobalAveragePooling2D(),
            ]
        )
        with self.assertRaisesRegex(
            ValueError, r"`backbone` must output one 4-D.*Received.*\(None, 3\)"
        ):
            models.backbone_classifier(flat)
        with self.assertRaisesRegex(ValueError, "`backbone` must be a Keras"):
            models.backbone_classifier(keras.layers.Conv2D(4, 3))


class StandaloneClassifierTest(testing.TestCase, BuilderContractMixin):
    parts = ("deep_cbm", "head")

    @pytest.mark.slow
    def test_trains_summarises_and_round_trips(self):
        x, y = labelled_videos((16, 16, 3))
        model = models.standalone_classifier(
            2, frame_shape=(16, 16, 3), stage_filters=(2, 4), blocks_per_stage=1
        )
        stack = model.get_layer("deep_cbm")
        self.assertEqual(stack.depth, 5)
        self.assertEqual(stack.shortcut_count, 2)
        self.assertEqual(stack.strides, [2, 1, 1, 2, 1])
        self.check_contract(
            model,
            x,
            y,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )

    def test_paper_widths_give_resnet18_resolutions(self):
        model = models.standalone_classifier(
            2, frame_shape=(32, 32, 3), stage_filters=(1, 1, 1, 1)
        )
        config = model.get_layer("deep_cbm").get_config()
        config["filters"] = [64] * 5 + [128] * 4 + [256] * 4 + [512] * 4
        stack = DeepCBM.from_config(config)
        self.assertEqual(stack.depth, 17)
        self.assertEqual(
            stack.compute_output_shape((None, None, 224, 224, 3)),
            (None, None, 7, 7, 512),
        )


class FutureFramePredictorTest(testing.TestCase, BuilderContractMixin):
    parts = ("encoder", "deep_cbm", "decoder")

    def build(self):
        return models.future_frame_predictor(
            frame_shape=(16, 16, 1),
            input_frames=3,
            output_frames=2,
            encoder_filters=(4, 8),
            depth=2,
            filters=8,
            jump_stride=2,
        )

    def clips(self, videos=16):
        # Bright squares moving one pixel per frame.
        clips = np.zeros((videos, 5, 16, 16, 1), "float32")
        rng = np.random.default_rng(0)
        for video, (row, col) in enumerate(rng.integers(0, 8, (videos, 2))):
            for t in range(5):
                clips[video, t, row : row + 4, col + t : col + t + 4] = 1.0
        return clips

    @pytest.mark.slow
    def test_trains_summarises_and_round_trips(self):
        clips = self.clips()
        self.check_contract(self.build(), clips, clips[:, 3:], "mse")

    def test_teacher_forcing_in_training_feedback_at_inference(self):
        model = self.build()
        clips = self.clips(videos=2)
        changed = clips.copy()
        changed[:, 3] = 0.5  # The first target frame.
        for training, should_change in [(True, True), (False, False)]:
            before = model(clips, training=training)
            after = model(changed, training=training)
            # The first prediction sees the context only.
            self.assertAllClose(before[:, 0], after[:, 0])
            if should_change:
                self.assertNotAllClose(before[:, 1], after[:, 1])
            else:
                self.assertAllClose(before[:, 1], after[:, 1])
        # Inference reads the context frames only.
        self.assertAllClose(
            model(clips[:, :3], training=False),
            model(clips, training=False),
        )

    def test_metrics_in_compile(self):
        from keras_cbm import metrics

        model = self.build()
        model.compile(
            "adam",
            "mse",
            metrics=[metrics.PSNR(), metrics.SSIM(), metrics.FrameSumMSE()],
        )
        clips = self.clips(videos=4)
        results = model.evaluate(
            clips, clips[:, 3:], verbose=0, return_dict=True
        )
        self.assertEqual(
            set(results), {"loss", "psnr", "ssim", "frame_sum_mse"}
        )

    def test_bad_arguments(self):
        with self.assertRaisesRegex(
            ValueError, "`frame_shape` must .*Received"
        ):
            models.future_frame_predictor(frame_shape=(18, 16, 1))
        with self.assertRaisesRegex(
            ValueError, "`output_frames` must .*Received"
        ):
            models.future_frame_predictor(output_frames=0)


def test_paper_presets_name_builder_arguments():
    import inspect

    for builder, preset in models.PAPER_PRESETS.items():
        arguments = inspect.signature(getattr(models, builder)).parameters
        assert set(preset) <= set(arguments), builder

BUILDERS = [
    lambda **kwargs: models.standalone_classifier(
        2, (16, 16, 1), stage_filters=(2,), blocks_per_stage=1, **kwargs
    ),
    lambda **kwargs: models.backbone_classifier(
        tiny_cnn(), 2, depth=2, filters=2, pool_after=(), **kwargs
    ),
    lambda **kwargs: models.future_frame_predictor(
        depth=2, filters=2, jump_stride=2, **kwargs
    ),
]


@pytest.mark.parametrize(
    "build", BUILDERS, ids=["standalone", "backbone", "future_frame"]
)
@pytest.mark.parametrize("temporal_gate", [None, "input", "recurrent"])
def test_builders_give_every_cbm_layer_the_temporal_gate(build, temporal_gate):
    stack = build(temporal_gate=temporal_gate).get_layer("deep_cbm")
    assert [layer.temporal_gate for layer in stack.recurrent_layers] == [
        temporal_gate
    ] * stack.depth



@pytest.mark.parametrize(
    "build", BUILDERS, ids=["standalone", "backbone", "future_frame"]
)
def test_builders_default_to_the_layers_initializers(build):
    # One source: the builders' CBM layers start as a `DeepCBM` at its
    # defaults does (studies/defaults.py chose Keras' initializers).
    stack = build().get_layer("deep_cbm")
    defaults = DeepCBM(depth=1, filters=1)
    for name in ("kernel_initializer", "recurrent_initializer"):
        assert type(getattr(stack, name)) is type(getattr(defaults, name))
