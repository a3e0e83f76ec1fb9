"""Clips that see the whole past: `CoherenceModel(state_handover=
"whole_past")` and `keras_cbm.training.state_handover.whole_past_states`.
Backend-neutral (TensorFlow and JAX)."""

import warnings

import keras
import numpy as np
from absl.testing import parameterized
from keras import ops
from keras.src import testing

from keras_cbm import data
from keras_cbm.layers import ConvCBM2D
from keras_cbm.models import RecurrentStates
from keras_cbm.training import CoherenceModel
from keras_cbm.training.state_handover import clip_starts
from keras_cbm.training.state_handover import whole_past_states

FRAME_SHAPE = (6, 6, 2)
FRAMES = 14
STEPS = 4
# Per video, the clips' (start, end) frames: out of start order, a clip at
# the first frame, two clips with one start, starts inside a window of the
# pass and on its edge.
SPANS = [
    [(5, 9), (0, 4), (9, 13), (5, 8)],
    [(10, 14), (3, 7), (1, 5), (7, 11)],
]
PAST_STEPS = 12


def build(kind):
    keras.utils.set_random_seed(0)
    if kind == "conv":
        layers = [
            ConvCBM2D(3, 3, padding="same", return_sequences=True),
            keras.layers.ConvLSTM2D(
                3, 3, padding="same", return_sequences=True
            ),
            keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D()),
        ]
    else:
        layers = [
            keras.layers.TimeDistributed(keras.layers.Flatten()),
            keras.layers.LSTM(4, return_sequences=True),
        ]
    return keras.Sequential(
        [keras.Input((None,) + FRAME_SHAPE), *layers, keras.layers.Dense(2)]
    )


def clip_batch(videos):
    """Clips at `SPANS` and every video's past, as `overlapping_clips(...,
    past_length=PAST_STEPS)` batches them."""
    count = len(SPANS[0])
    alignment = np.full((len(SPANS), count, STEPS), -1, "int32")
    past_alignment = np.full((len(SPANS), PAST_STEPS), -1, "int32")
    for b, spans in enumerate(SPANS):
        for k, (start, end) in enumerate(spans):
            alignment[b, k, : end - start] = np.arange(start, end)
        last_start = max(start for start, _ in spans)
        past_alignment[b, :last_start] = np.arange(last_start)

    def frames(indices):
        taken = np.take_along_axis(
            videos,
            np.maximum(indices, 0).reshape(len(SPANS), -1, 1, 1, 1),
            axis=1,
        ).reshape(indices.shape + FRAME_SHAPE)
        return taken * (indices >= 0)[..., None, None, None]

    return {
        "clips": frames(alignment),
        "alignment": alignment,
        "past": frames(past_alignment),
        "past_alignment": past_alignment,
    }


def gradient(function, x):
    """The gradient of the scalar `function(x)` with respect to `x`."""
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.grad(function)(x))
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = function(x)
    result = tape.gradient(value, x)
    # None: `x` does not reach the value.
    return np.zeros(x.shape) if result is None else result.numpy()


class WholePastTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.videos = rng.random((len(SPANS), FRAMES) + FRAME_SHAPE).astype(
            "float32"
        )
        self.inputs = clip_batch(self.videos)

    @parameterized.parameters("conv", "lstm")
    def test_clips_start_from_the_states_of_a_run_over_their_past(self, kind):
        model = build(kind)
        run = RecurrentStates(model)
        states = whole_past_states(
            run,
            self.inputs["past"],
            self.inputs["past_alignment"],
            clip_starts(self.inputs["alignment"]),
            window=3,
        )
        for b, spans in enumerate(SPANS):
            for k, (start, _) in enumerate(spans):
                if start > 0:
                    _, expected = run(self.videos[b : b + 1, :start])
                for got_state, expected_state in zip(
                    [s[b : b + 1, k] for s in keras.tree.flatten(states)],
                    keras.tree.flatten(expected),
                    strict=True,
                ):
                    if start == 0:
                        expected_state = np.zeros(expected_state.shape)
                    self.assertAllClose(got_state, expected_state, atol=1e-5)

    def test_clips_equal_one_run_over_the_video(self):
        model = build("conv")
        whole = np.asarray(model(self.videos, training=False))
        trainer = CoherenceModel(model, state_handover="whole_past")
        outputs = np.asarray(trainer.clip_outputs(self.inputs, training=False))
        for b, spans in enumerate(SPANS):
            for k, (start, end) in enumerate(spans):
                self.assertAllClose(
                    outputs[b, k, : end - start], whole[b, start:end], atol=1e-5
                )

    def test_gradient_reaches_the_clips_and_not_the_past(self):
        trainer = CoherenceModel(build("conv"), state_handover="whole_past")

        def loss(name):
            def value(x):
                outputs = trainer.clip_outputs(
                    dict(self.inputs, **{name: x}), training=True
                )
                return ops.sum(outputs**2)

            return value

        clips = gradient(loss("clips"), self.inputs["clips"])
        past = gradient(loss("past"), self.inputs["past"])
        real = self.inputs["alignment"] >= 0
        self.assertTrue((np.abs(clips[real]).sum(axis=(1, 2, 3)) > 0).all())
        self.assertEqual(np.abs(past).sum(), 0.0)

    def test_fit_on_clips_with_their_past(self):
        import tensorflow as tf

        videos = tf.data.Dataset.from_tensor_slices(
            {"video": self.videos, "label": np.arange(len(SPANS)) % 2}
        )
        clips = data.overlapping_clips(
            videos, 3, 2, STEPS, seed=0, past_length=FRAMES
        ).batch(2)
        model = build("lstm")
        before = model.get_weights()
        trainer = CoherenceModel(model, state_handover="whole_past")
        trainer.compile(
            keras.optimizers.SGD(0.1),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        history = trainer.fit(clips, epochs=1, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        for after, start in zip(model.get_weights(), before, strict=True):
            self.assertGreater(np.abs(after - start).max(), 0.0)

    @parameterized.parameters("donor", "whole_past")
    def test_evaluation_windows_of_varying_count_equal_one_run(self, handover):
        # `padded_window_batch` pads each batch to its most windows, so the
        # number of clips differs between batches and is unknown to the
        # traced step: each window starts from its video's states there.
        import tensorflow as tf

        lengths = [FRAMES, 6, 9, 5]
        videos = tf.data.Dataset.from_tensor_slices(
            {"length": lengths, "label": [0, 1, 0, 1]}
        ).map(
            lambda e: {
                "video": tf.constant(self.videos[0])[: e["length"]],
                "label": e["label"],
            }
        )
        windows = data.padded_window_batch(
            data.uniform_clips(videos, STEPS, 2, past_length=FRAMES), 2
        )
        model = build("conv")
        whole = np.asarray(model(self.videos[:1], training=False))[0]
        trainer = CoherenceModel(model, state_handover=handover)
        trainer.compile(loss=keras.losses.SparseCategoricalCrossentropy(True))
        # One traced step serves both batches (6 and 4 windows): TensorFlow
        # retraces it with the number of windows unknown.
        outputs = [
            trainer.predict_on_batch(inputs)["clip_outputs"]
            for inputs, _ in windows.as_numpy_iterator()
        ]
        self.assertEqual([o.shape[1] for o in outputs], [6, 4])
        for b, length in enumerate(lengths):
            batch = np.asarray(outputs[b // 2][b % 2])
            for k in range(1 + -(-max(length - STEPS, 0) // 2)):
                frames = range(2 * k, min(2 * k + STEPS, length))
                self.assertAllClose(
                    batch[k, : len(frames)], whole[frames], atol=1e-5
                )
        self.assertTrue(np.isfinite(trainer.evaluate(windows, verbose=0)).all())

    @parameterized.parameters("donor", "whole_past")
    def test_handover_runs_layers_that_draw_dropout_masks(self, handover):
        # Keras' recurrent layers draw their dropout masks (a seed-generator
        # update) in inference too: the handover's loop threads the seed
        # state through its carry (on JAX an update inside the loop would
        # leak a tracer) and assigns it once.
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((None,) + FRAME_SHAPE),
                ConvCBM2D(
                    3, 3, padding="same", return_sequences=True, dropout=0.5
                ),
                keras.layers.TimeDistributed(keras.layers.Flatten()),
                keras.layers.Dense(2),
            ]
        )
        seeds = model.non_trainable_variables
        before = [ops.convert_to_numpy(v) for v in seeds]
        trainer = CoherenceModel(model, state_handover=handover)
        outputs = trainer.clip_outputs(self.inputs, training=True)
        self.assertTrue(np.isfinite(ops.convert_to_numpy(outputs)).all())
        self.assertNotEmpty(before)
        for variable, value in zip(seeds, before, strict=True):
            self.assertNotAllClose(ops.convert_to_numpy(variable), value)

    def test_losses_of_the_clips_runs_count_and_the_passes_do_not(self):
        # The handover's passes are inference runs: as in `predict`, the
        # losses their layers add train nothing; the clips' own runs add
        # theirs once.
        keras.utils.set_random_seed(0)
        plain = build("lstm")
        regularized = keras.Sequential(
            plain.layers[:-1]
            + [keras.layers.Dense(2, activity_regularizer="l2")]
        )
        regularized.layers[-1].build((None, None, 4))
        regularized.layers[-1].set_weights(plain.layers[-1].get_weights())
        labels = np.array([0, 1])
        losses = []
        for model in (regularized, plain):
            trainer = CoherenceModel(model, state_handover="whole_past")
            trainer.compile(
                loss=keras.losses.SparseCategoricalCrossentropy(True)
            )
            losses.append(trainer.evaluate(self.inputs, labels, verbose=0)[0])
        outputs = ops.convert_to_numpy(trainer.clip_outputs(self.inputs))
        clip_rows = outputs.shape[0] * outputs.shape[1]
        self.assertAllClose(
            losses[0] - losses[1],
            0.01 * np.square(outputs).sum() / clip_rows,
            atol=1e-5,
        )

    def test_whole_past_without_the_past_is_refused(self):
        trainer = CoherenceModel(build("lstm"), state_handover="whole_past")
        inputs = {k: self.inputs[k] for k in ("clips", "alignment")}
        with self.assertRaisesRegex(
            ValueError,
            r"must hold 'past' .* state_handover='whole_past', .*"
            r"past_length=.*Received: a dict with keys "
            r"\['alignment', 'clips'\]",
        ):
            trainer.clip_outputs(inputs)

    @parameterized.parameters("whole", 1, "none")
    def test_unknown_handover_is_refused(self, value):
        with self.assertRaisesRegex(
            ValueError,
            r"`state_handover` must be one of None, 'donor' or "
            rf"'whole_past'. Received: state_handover={value!r}",
        ):
            CoherenceModel(build("lstm"), state_handover=value)

    @parameterized.parameters(None, "donor", "whole_past")
    def test_handover_round_trips_through_the_config(self, value):
        trainer = CoherenceModel(build("lstm"), state_handover=value)
        config = trainer.get_config()
        self.assertIs(config["state_handover"], value)
        again = CoherenceModel.from_config(config)
        self.assertEqual(again.state_handover, value)
        self.assertEqual(again.recurrent_states is None, value is None)

    @parameterized.parameters((False, None), (True, "donor"))
    def test_old_booleans_warn_naming_the_new_value(self, old, new):
        with self.assertWarnsRegex(
            DeprecationWarning, rf"use `state_handover={new!r}`"
        ):
            trainer = CoherenceModel(build("lstm"), state_handover=old)
        self.assertEqual(trainer.state_handover, new)
        # A config saved before the change loads as the new value, quietly.
        config = dict(trainer.get_config(), state_handover=old)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            again = CoherenceModel.from_config(config)
        self.assertEqual(again.state_handover, new)
