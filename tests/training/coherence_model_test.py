import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized
from keras import ops
from keras.src import testing

from keras_cbm import data
from keras_cbm import layers
from keras_cbm.layers.deep_cbm import REFERENCE_INITIALIZER
from keras_cbm.losses import OverlapCoherence
from keras_cbm.training import CoherenceModel
from tests.training.tiny import FRAME_SHAPE
from tests.training.tiny import fixed_clips
from tests.training.tiny import tiny_model
from tests.training.tiny import videos

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the tests compute references with TensorFlow",
)


def deep_cbm_classifier():
    """A batch-normalised `DeepCBM` classifier with a projected shortcut
    (its batch normalisation lies outside the recurrent layers), seeded."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((None,) + FRAME_SHAPE),
            layers.DeepCBM(
                depth=3,
                filters=4,
                strides=[2, 1, 1],
                jump_stride=2,
                batch_norm=True,
            ),
            keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D()),
            keras.layers.Dense(2),
        ]
    )


def as_numpy(dataset):
    return list(dataset.as_numpy_iterator())


class CoherenceFitTest(testing.TestCase):
    @pytest.mark.slow
    def test_weight_zero_trains_as_plain_fit_on_the_clips(self):
        # Clips of fixed length: no padding, so plain fit sees the same
        # frames with no need for a mask.
        clips = fixed_clips(batch_size=2, clips=3, min_length=6, max_length=6)
        batches = as_numpy(clips)
        model = tiny_model()
        initial = model.get_weights()
        trainer = CoherenceModel(model, coherence_weight=0.0)
        trainer.compile(keras.optimizers.Adam(1e-2), LOSS)
        trainer.fit(clips, epochs=1, verbose=0)

        plain = tiny_model(seed=1)
        plain.set_weights(initial)
        plain.compile(keras.optimizers.Adam(1e-2), LOSS)
        for inputs, label in batches:
            x = inputs["clips"].reshape((-1,) + inputs["clips"].shape[2:])
            y = np.broadcast_to(label[:, None, None], inputs["mask"].shape)
            plain.train_on_batch(x, y.reshape(x.shape[:2]))
        for got, expected in zip(
            model.get_weights(), plain.get_weights(), strict=True
        ):
            self.assertAllClose(got, expected, atol=1e-5)
        self.assertNotAllClose(model.get_weights()[0], initial[0])

    def test_coherence_weight_adds_its_gradient_to_the_update(self):
        # With plain SGD an update is linear in the gradient: the update
        # with weight w minus the update with weight 0 is
        # -lr * w * d(coherence)/d(weights), computed here from the public
        # loss on the wrapped model's own per-clip predictions.
        clips = fixed_clips(batch_size=2, clips=3, min_length=6, max_length=6)
        inputs, _ = as_numpy(clips)[0]
        learning_rate, weight = 0.1, 0.5
        model = tiny_model()
        initial = model.get_weights()

        def update(coherence_weight):
            model.set_weights(initial)
            trainer = CoherenceModel(model, coherence_weight=coherence_weight)
            trainer.compile(keras.optimizers.SGD(learning_rate), LOSS)
            trainer.fit(clips.take(1), epochs=1, verbose=0)
            return [
                after - before
                for after, before in zip(
                    model.get_weights(), initial, strict=True
                )
            ]

        with_coherence, without = update(weight), update(0.0)
        model.set_weights(initial)
        batch, count, steps = inputs["mask"].shape
        with tf.GradientTape() as tape:
            logits = model(
                inputs["clips"].reshape((-1, steps) + FRAME_SHAPE),
                training=True,
            )
            probabilities = ops.softmax(
                ops.reshape(logits, (batch, count, steps, -1))
            )
            coherence = OverlapCoherence()(inputs["alignment"], probabilities)
        gradients = tape.gradient(coherence, model.trainable_weights)
        self.assertGreater(float(coherence), 0.0)
        expected = {
            id(variable): -learning_rate * weight * gradient.numpy()
            for variable, gradient in zip(
                model.trainable_weights, gradients, strict=True
            )
        }
        changed = 0
        for variable, got, base in zip(
            model.weights, with_coherence, without, strict=True
        ):
            difference = got - base
            self.assertAllClose(
                difference, expected[id(variable)], atol=1e-6, rtol=1e-3
            )
            changed += int(np.abs(difference).max() > 1e-7)
        self.assertGreater(changed, 0)

    def test_history_callbacks_validation_and_steps_per_epoch(self):
        trainer = CoherenceModel(tiny_model(), coherence_weight=0.5)
        trainer.compile(
            keras.optimizers.Adam(1e-2),
            LOSS,
            metrics=["accuracy"],
        )
        validation = data.uniform_clips(videos(2, seed=1), 8, 4).batch(1)
        batches = []
        history = trainer.fit(
            fixed_clips().repeat(),
            epochs=2,
            steps_per_epoch=3,
            validation_data=validation,
            callbacks=[
                keras.callbacks.LambdaCallback(
                    on_train_batch_end=lambda batch, logs: batches.append(logs)
                )
            ],
            verbose=0,
        )
        logs = history.history
        self.assertEqual(
            sorted(logs),
            sorted(
                f"{prefix}{name}"
                for prefix in ("", "val_")
                for name in ("loss", "task_loss", "coherence_loss", "accuracy")
            ),
        )
        self.assertLen(batches, 6)
        self.assertLen(logs["loss"], 2)
        for prefix in ("", "val_"):
            self.assertAllClose(
                logs[f"{prefix}loss"],
                np.add(
                    logs[f"{prefix}task_loss"],
                    0.5 * np.array(logs[f"{prefix}coherence_loss"]),
                ),
                atol=1e-5,
            )
        self.assertGreater(min(logs["coherence_loss"]), 0.0)

    def test_evaluate_measures_the_training_loss_and_predicts_videos(self):
        # The reference's large initial weights spread the logits, so the
        # two video predictions below differ.
        model = tiny_model(kernel_initializer=REFERENCE_INITIALIZER)
        trainer = CoherenceModel(model, coherence_weight=2.0)
        trainer.compile(loss=LOSS, metrics=["accuracy"])
        windows = data.uniform_clips(videos(3, frames=20), 8, 6).batch(1)
        result = trainer.evaluate(windows, verbose=0, return_dict=True)
        task, coherence, correct, videos_p = [], [], [], []
        for inputs, label in as_numpy(windows):
            logits = np.asarray(model(inputs["clips"][0]))
            mask = inputs["mask"][0]
            p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
            mean = logits[mask].mean(axis=0)
            video = np.exp(mean) / np.exp(mean).sum()
            # Differs from the mean of the probabilities, the option.
            self.assertNotAllClose(video, p[mask].mean(axis=0), atol=1e-4)
            videos_p.append(video)
            # The training task loss: each real frame's cross-entropy.
            task.append(-np.log(p[mask][:, label[0]]).mean())
            correct.append(video.argmax() == label[0])
            alignment = np.where(mask, inputs["alignment"][0], -1)
            coherence.append(
                float(OverlapCoherence()(alignment[None], p[None]))
            )
        self.assertAllClose(result["task_loss"], np.mean(task), atol=1e-5)
        self.assertAllClose(
            result["coherence_loss"], np.mean(coherence), atol=1e-6
        )
        self.assertAllClose(
            result["loss"], np.mean(task) + 2 * np.mean(coherence), atol=1e-5
        )
        self.assertAllClose(result["accuracy"], np.mean(correct))
        predicted = trainer.predict(windows, verbose=0)
        self.assertAllClose(predicted["probabilities"], videos_p, atol=1e-6)

    def test_windows_of_another_length_evaluate_after_the_first(self):
        # A second length retraces with an unknown time axis.
        model = tiny_model()
        trainer = CoherenceModel(model)
        trainer.compile(loss=LOSS, metrics=["accuracy"])
        for length in (8, 12):
            windows = data.uniform_clips(videos(2, frames=12), length, 4)
            result = trainer.evaluate(
                windows.batch(2), verbose=0, return_dict=True
            )
            predicted = trainer.predict(windows.batch(2), verbose=0)
            self.assertEqual(predicted["probabilities"].shape, (2, 2))
            self.assertTrue(np.isfinite(result["loss"]))

    def test_val_loss_is_the_loss_on_the_validation_data(self):
        # Nothing learns at rate 0 and the model runs alike in training and
        # inference: on the training clips, `val_loss` equals `loss`.
        clips = fixed_clips()
        trainer = CoherenceModel(tiny_model(), coherence_weight=0.5)
        trainer.compile(keras.optimizers.SGD(0.0), LOSS)
        history = trainer.fit(
            clips,
            epochs=3,
            validation_data=clips,
            callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=0)],
            verbose=0,
        ).history
        for name in ("loss", "task_loss", "coherence_loss"):
            self.assertAllClose(
                history[f"val_{name}"], history[name], atol=1e-5
            )
        # No improvement: stopped after the second epoch.
        self.assertLen(history["loss"], 2)

    def test_task_loss_is_a_mean_over_each_videos_real_frames(self):
        # Variable-length clips: padding frames must not count.
        clips = fixed_clips(batch_size=2, clips=3, min_length=3, max_length=8)
        inputs, labels = as_numpy(clips)[0]
        self.assertFalse(inputs["mask"].all())
        weights = np.array([0.25, 2.0], "float32")
        model = tiny_model()
        steps = inputs["mask"].shape[-1]
        logits = np.asarray(
            model(inputs["clips"].reshape((-1, steps) + FRAME_SHAPE))
        ).reshape(inputs["mask"].shape + (2,))
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        frame_loss = -np.take_along_axis(
            log_p,
            np.broadcast_to(
                labels[:, None, None, None], log_p.shape[:3] + (1,)
            ),
            -1,
        )[..., 0]
        # Frame targets: every other frame of each video.
        targets = (inputs["alignment"] % 2 == 1).astype("float32")
        for sample_weight, frame_weights in (
            (None, None),
            (weights, None),
            (None, targets),
        ):
            mask = inputs["mask"]
            dataset = (inputs, labels)
            per_video = np.ones(2) if sample_weight is None else weights
            if sample_weight is not None:
                dataset = dataset + (sample_weight,)
            if frame_weights is not None:
                dataset = (dict(inputs, frame_weights=frame_weights),)
                dataset += (labels,)
                mask = mask * frame_weights
            trainer = CoherenceModel(model, coherence_weight=0.0)
            trainer.compile(keras.optimizers.SGD(0.0), LOSS)
            history = trainer.fit(
                tf.data.Dataset.from_tensors(dataset), verbose=0
            )
            video_means = (frame_loss * mask).sum((1, 2)) / mask.sum((1, 2))
            expected = np.mean(video_means * per_video)
            self.assertAllClose(
                history.history["task_loss"][0], expected, atol=1e-5
            )

    @parameterized.parameters(None, "donor")
    def test_padding_does_not_reach_batch_statistics(self, state_handover):
        # In training mode batch normalisation takes its statistics from the
        # real frames only: more padding changes no real frame's output.
        clips = fixed_clips(batch_size=2, clips=3, min_length=3, max_length=8)
        inputs, _ = as_numpy(clips)[0]
        steps = inputs["alignment"].shape[-1]
        outputs = []
        for extra in (0, 6):
            # A fresh model each time: training-mode runs update the moving
            # statistics that state handover's donor runs read.
            trainer = CoherenceModel(
                deep_cbm_classifier(), state_handover=state_handover
            )
            padded = {
                "clips": np.pad(
                    inputs["clips"], [(0, 0), (0, 0), (0, extra)] + [(0, 0)] * 3
                ),
                "alignment": np.pad(
                    inputs["alignment"],
                    [(0, 0), (0, 0), (0, extra)],
                    constant_values=-1,
                ),
            }
            outputs.append(
                trainer.clip_outputs(padded, training=True)[:, :, :steps]
            )
        real = inputs["alignment"] >= 0
        self.assertAllClose(outputs[0][real], outputs[1][real], atol=1e-5)

    @parameterized.parameters("last", "vote")
    def test_video_prediction_reads_clips_in_frame_order(self, aggregation):
        # The clip holding the video's last frames comes first.
        alignment = np.array([[[6, 7, 8, 9], [0, 1, 2, 3], [3, 4, 5, 6]]])
        rng = np.random.default_rng(1)
        video = rng.random((10,) + FRAME_SHAPE).astype("float32")
        inputs = {"clips": video[alignment], "alignment": alignment}
        model = tiny_model()
        trainer = CoherenceModel(model, aggregation=aggregation)
        logits = np.asarray(model(inputs["clips"][0]))
        p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        frames = p[
            np.argsort(alignment[0], axis=None) // 4,
            np.argsort(alignment[0], axis=None) % 4,
        ]
        expected = layers.FrameAggregation(aggregation)(frames[None])
        self.assertAllClose(
            trainer(inputs)["probabilities"], expected, atol=1e-6
        )
        if aggregation == "last":
            self.assertAllClose(expected[0], p[0, -1], atol=1e-6)

    def test_mean_of_probabilities_is_an_option(self):
        clips = fixed_clips(batch_size=2, clips=3, min_length=3, max_length=8)
        inputs, _ = as_numpy(clips)[0]
        model = tiny_model()
        trainer = CoherenceModel(model, aggregation="mean_probabilities")
        steps = inputs["mask"].shape[-1]
        logits = np.asarray(
            model(inputs["clips"].reshape((-1, steps) + FRAME_SHAPE))
        ).reshape(inputs["mask"].shape + (2,))
        p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        real = inputs["alignment"] >= 0
        expected = [p[v][real[v]].mean(axis=0) for v in range(2)]
        self.assertAllClose(
            trainer(inputs)["probabilities"], expected, atol=1e-6
        )
        with self.assertRaisesRegex(ValueError, "aggregation='max'"):
            CoherenceModel(model, aggregation="max")


class CoherenceBadInputTest(testing.TestCase):
    def test_dataset_without_alignment_or_mask(self):
        model = tiny_model()
        before = model.get_weights()
        trainer = CoherenceModel(model)
        trainer.compile("adam", LOSS)
        for key in ("alignment", "clips"):
            dataset = fixed_clips().map(
                lambda inputs, label, key=key: (
                    {k: v for k, v in inputs.items() if k != key},
                    label,
                )
            )
            with self.assertRaisesRegex(
                ValueError, r"`inputs`.*'clips'.*Received: a dict with"
            ):
                trainer.fit(dataset, epochs=1, verbose=0)
        for got, expected in zip(model.get_weights(), before, strict=True):
            self.assertAllEqual(got, expected)

    def test_negative_coherence_weight(self):
        with self.assertRaisesRegex(
            ValueError, r"`coherence_weight` must be .*>= 0.*Received.*-0.5"
        ):
            CoherenceModel(tiny_model(), coherence_weight=-0.5)

    def test_model_without_per_frame_output(self):
        model = tiny_model()
        video_model = keras.Model(
            model.input, keras.layers.GlobalAveragePooling1D()(model.output)
        )
        with self.assertRaisesRegex(
            ValueError,
            r"`model` must output per-frame .*\(batch, time, classes\).*"
            r"Received.*\('batch', 2\) for model",
        ):
            CoherenceModel(video_model)
