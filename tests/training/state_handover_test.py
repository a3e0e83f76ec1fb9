import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized
from keras.src import testing

from keras_cbm import models
from keras_cbm.training import CoherenceModel
from tests import video_models
from tests.training.tiny import FRAME_SHAPE
from tests.training.tiny import fixed_clips
from tests.training.tiny import tiny_model

# Differentiates with `tf.GradientTape` or counts `tf.function` graph nodes.
tensorflow_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="uses TensorFlow's gradient tape or graph",
)

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
# Clips of a 20-frame video, not in start order: clip 0 starts inside
# clip 2, clip 1 inside clip 0, clip 3 (padded) inside clip 1 and clip 2,
# and clip 4 overlaps no earlier clip.
SPANS = [(5, 13), (10, 18), (0, 8), (12, 15), (0, 3)]
STEPS = 8


def clip_batch(video):
    alignment = np.full((1, len(SPANS), STEPS), -1, "int32")
    for k, (start, end) in enumerate(SPANS):
        alignment[0, k, : end - start] = np.arange(start, end)
    mask = alignment >= 0
    clips = video[np.maximum(alignment, 0)] * mask[..., None, None, None]
    return {"clips": clips, "alignment": alignment}


class CountingLayer(keras.layers.Layer):
    """Counts its training calls: which runs update layer state."""

    def build(self, input_shape):
        self.training_calls = self.add_weight(
            shape=(), initializer="zeros", trainable=False
        )

    def call(self, inputs, training=None):
        if training:
            self.training_calls.assign(self.training_calls + 1.0)
        return inputs


class StateHandoverTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.video = rng.random((20,) + FRAME_SHAPE).astype("float32")
        self.inputs = clip_batch(self.video)

    def assert_handed_clips_equal_one_run(self, model):
        whole = np.asarray(model(self.video[None], training=False))[0]
        got = CoherenceModel(model, state_handover="donor").clip_outputs(
            self.inputs, training=False
        )
        cold = CoherenceModel(model).clip_outputs(self.inputs, training=False)
        for k, (start, end) in enumerate(SPANS):
            expected = whole[start:end]
            self.assertAllClose(
                np.asarray(got)[0, k, : end - start], expected, atol=1e-5
            )
            if start > 0:
                self.assertNotAllClose(
                    np.asarray(cold)[0, k, : end - start], expected, atol=1e-3
                )

    @parameterized.parameters("sequential", "functional", "cell")
    def test_any_model_trains_and_hands_states_over_exactly(self, kind):
        model = video_models.build(kind)
        for handover in (False, True):
            before = model.get_weights()
            trainer = CoherenceModel(model, state_handover=handover)
            trainer.compile(keras.optimizers.SGD(0.1), LOSS)
            history = trainer.fit(fixed_clips(), epochs=1, verbose=0)
            self.assertTrue(np.isfinite(history.history["loss"][0]))
            changed = [
                np.abs(a - b).max() > 0
                for a, b in zip(model.get_weights(), before, strict=True)
            ]
            self.assertTrue(all(changed))
        self.assert_handed_clips_equal_one_run(model)

    def test_batch_normalised_deep_cbm_hands_states_over_exactly(self):
        self.assert_handed_clips_equal_one_run(tiny_model(batch_norm=True))

    @tensorflow_only
    def test_no_gradient_reaches_earlier_clips_through_the_state(self):
        trainer = CoherenceModel(tiny_model(), state_handover="donor")
        clips = tf.constant(self.inputs["clips"])
        inputs = dict(self.inputs, clips=clips)
        for k in range(len(SPANS)):
            with tf.GradientTape() as tape:
                tape.watch(clips)
                outputs = trainer.clip_outputs(inputs, training=True)
                total = tf.reduce_sum(outputs[0, k] ** 2)
            gradient = tape.gradient(total, clips).numpy()[0]
            own = np.abs(gradient[k]).sum()
            others = np.abs(np.delete(gradient, k, axis=0)).sum()
            self.assertGreater(own, 0.0)
            self.assertEqual(others, 0.0)

    def test_donor_runs_are_inference_runs(self):
        # Only the clips' own run (all clips side by side, one call) may
        # update layer state (batch-norm statistics): the runs that compute
        # handed-over states must not.
        counter = CountingLayer()
        frames = keras.Input((None,) + FRAME_SHAPE)
        net = tiny_model()
        model = keras.Model(frames, net(counter(frames)))
        trainer = CoherenceModel(model, state_handover="donor")
        trainer.compile(keras.optimizers.SGD(0.0), LOSS)
        batch = {k: v for k, v in self.inputs.items()}
        trainer.fit(
            tf.data.Dataset.from_tensors((batch, np.array([1]))),
            epochs=1,
            verbose=0,
        )
        self.assertEqual(float(counter.training_calls.numpy()), 1.0)

    def test_dropout_and_batch_statistics_update_beside_the_loop(self):
        # The donor loop is inference only (JAX traces the loop's body even
        # eagerly: no variable may be assigned in it); the clips' own run
        # beside it updates every one.
        keras.utils.set_random_seed(0)
        model = models.standalone_classifier(
            2,
            frame_shape=FRAME_SHAPE,
            stage_filters=(4,),
            blocks_per_stage=1,
            batch_norm=True,
            temporal_dropout=0.5,
        )
        variables = model.non_trainable_variables
        before = [keras.ops.convert_to_numpy(v) for v in variables]
        trainer = CoherenceModel(model, state_handover="donor")
        outputs = trainer.clip_outputs(self.inputs, training=True)
        self.assertTrue(np.isfinite(keras.ops.convert_to_numpy(outputs)).all())
        self.assertNotEmpty(before)
        for variable, value in zip(variables, before, strict=True):
            self.assertNotAllClose(keras.ops.convert_to_numpy(variable), value)

    @tensorflow_only
    def test_traced_graph_does_not_grow_with_clips(self):
        # The clips run in a symbolic loop whose body is traced once.
        trainer = CoherenceModel(tiny_model(), state_handover="donor")

        def graph_size(count):
            spec = {
                "clips": tf.TensorSpec((2, count, 4) + FRAME_SHAPE),
                "alignment": tf.TensorSpec((2, count, 4), "int32"),
            }
            function = tf.function(lambda x: trainer(x, training=True))
            graph = function.get_concrete_function(spec).graph.as_graph_def()
            # The loop's body lives in the function library.
            return len(graph.node) + sum(
                len(function.node_def) for function in graph.library.function
            )

        self.assertEqual(graph_size(2), graph_size(6))

    def test_bidirectional_model_trains_on_clips_but_cannot_hand_over(self):
        frames = keras.Input((None,) + FRAME_SHAPE)
        x = keras.layers.TimeDistributed(keras.layers.Flatten())(frames)
        x = keras.layers.Bidirectional(
            keras.layers.LSTM(3, return_sequences=True), name="both_ways"
        )(x)
        model = keras.Model(frames, keras.layers.Dense(2)(x))
        trainer = CoherenceModel(model)
        trainer.compile(keras.optimizers.SGD(0.1), LOSS)
        history = trainer.fit(fixed_clips(), epochs=1, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        with self.assertRaisesRegex(
            ValueError, r"layer 'both_ways' \(Bidirectional\) cannot: it runs"
        ):
            CoherenceModel(model, state_handover="donor")
