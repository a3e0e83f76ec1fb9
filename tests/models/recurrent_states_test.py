"""`RecurrentStates`: pieces equal one run, nesting, threads (the
`MirroredStrategy` case is in tests/training/distributed_test.py)."""

import threading

import keras
import numpy as np
import pytest
from keras import ops
from keras.src import testing

from keras_cbm.layers import CBM
from keras_cbm.layers import ConvCBM2D
from keras_cbm.models import RecurrentStates
from keras_cbm.models.recurrent_states import call_with_mask
from keras_cbm.training import TruncatedBPTT


def lstm_model(units=3, features=4, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((None, features)),
            keras.layers.LSTM(units, return_sequences=True),
            keras.layers.Dense(2),
        ]
    )


def frames(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def lstm_states(batch, units=3, seed=2):
    return [[frames((batch, units), seed), frames((batch, units), seed + 1)]]


def shadowed(model):
    """Names of the methods shadowed on any layer of `model`."""
    return [
        (layer.name, name)
        for layer in model._flatten_layers()
        for name in ("call", "inner_loop")
        if name in vars(layer)
    ]


class RecurrentStatesTest(testing.TestCase):
    def test_pieces_from_handed_states_equal_one_run(self):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((None, 6, 6, 2)),
                ConvCBM2D(3, 3, padding="same", return_sequences=True),
                keras.layers.ConvLSTM2D(
                    2, 3, padding="same", return_sequences=True
                ),
                keras.layers.TimeDistributed(keras.layers.Flatten()),
                keras.layers.LSTM(3, return_sequences=True),
            ]
        )
        run = RecurrentStates(model)
        video = frames((2, 7, 6, 6, 2))
        first, states = run(video[:, :3])
        second, last = run(video[:, 3:], initial_states=states)
        self.assertEqual([len(s) for s in states], [1, 2, 2])
        self.assertAllClose(
            np.concatenate([first, second], axis=1), model(video), atol=1e-5
        )
        _, whole = run(video)
        for got, expected in zip(
            keras.tree.flatten(last), keras.tree.flatten(whole), strict=False
        ):
            self.assertAllClose(got, expected, atol=1e-5)
        self.assertEqual(shadowed(model), [])

    def test_masked_frames_keep_the_states(self):
        model = lstm_model()
        run = RecurrentStates(model)
        video = frames((2, 5, 4))
        mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
        _, masked = run(video, mask=mask)
        _, first_three = run(video[:, :3])
        _, whole = run(video)
        for got, short, full in zip(
            keras.tree.flatten(masked),
            keras.tree.flatten(first_three),
            keras.tree.flatten(whole),
            strict=False,
        ):
            self.assertAllClose(got[0], short[0], atol=1e-6)
            self.assertAllClose(got[1], full[1], atol=1e-6)

    def test_layers_that_see_a_mask_hand_over_their_last_output(self):
        # One run repeats each recurrent layer's last output at a masked
        # frame; a piece starting on one takes it from the states.
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((None, 4)),
                keras.layers.Masking(0.0),
                CBM(3, return_sequences=True),
                keras.layers.LSTM(2, return_sequences=True),
                keras.layers.GRU(
                    2, return_sequences=True, zero_output_for_mask=True
                ),
                keras.layers.Dense(2),
            ]
        )
        run = RecurrentStates(model)
        video = frames((2, 6, 4))
        video[0, [1, 3, 4]] = 0
        video[1, [0, 3]] = 0
        first, states = run(video[:, :3])
        # [c, output], [h, c, output]; the GRU outputs zeros where masked.
        self.assertEqual([len(s) for s in states], [2, 3, 1])
        second, _ = run(video[:, 3:], initial_states=states)
        self.assertAllClose(
            np.concatenate([first, second], axis=1), model(video), atol=1e-5
        )
        with self.assertRaisesRegex(
            ValueError, r"'cbm.*' must be a list of 2 tensors \(its states, "
        ):
            run(video, initial_states=[states[0][:1]] + states[1:])

    def test_nested_runs_each_take_their_own_states(self):
        inner = lstm_model(units=3, features=4, seed=0)
        inner_run = RecurrentStates(inner)
        inner_states = lstm_states(2, seed=10)
        # The outer model runs the inner one, from its own handed states,
        # inside its call (a frozen recurrent encoder).
        encode = keras.layers.Lambda(
            lambda x: inner_run(x, initial_states=inner_states)[0],
            output_shape=(None, 2),
        )
        keras.utils.set_random_seed(1)
        lstm = keras.layers.LSTM(3, return_sequences=True)
        outer = keras.Sequential([keras.Input((None, 4)), encode, lstm])
        outer_run = RecurrentStates(outer)
        self.assertEqual(outer_run.layers, [lstm])
        video = frames((2, 5, 4))
        outer_states = lstm_states(2, seed=20)

        outputs, states = outer_run(video, initial_states=outer_states)

        encoded, _ = inner_run(video, initial_states=inner_states)
        reference = keras.Sequential([keras.Input((None, 2)), lstm])
        expected, expected_states = RecurrentStates(reference)(
            encoded, initial_states=outer_states
        )
        self.assertAllClose(outputs, expected, atol=1e-6)
        self.assertAllClose(states[0][0], expected_states[0][0], atol=1e-6)
        self.assertNotAllClose(outputs, reference(encoded))
        self.assertEqual(shadowed(outer) + shadowed(inner), [])

    def test_a_run_inside_a_run_of_the_same_layers(self):
        net = lstm_model()

        class Halves(keras.Model):
            """Runs `net` over each half of a video, states handed on."""

            def __init__(self):
                super().__init__()
                self.net = net
                self.run = RecurrentStates(net)

            def call(self, video):
                first, states = self.run(video[:, :2])
                second, _ = self.run(video[:, 2:], initial_states=states)
                return ops.concatenate([first, second], axis=1)

        halves = Halves()
        video = frames((2, 5, 4))
        mask = np.ones((2, 5), bool)
        # The inner runs take the layer; the outer call's mask (all
        # frames) does not undo their states.
        self.assertAllClose(
            call_with_mask(halves, video, mask), net(video), atol=1e-5
        )
        # An outer run whose layers all ran inside inner runs has no
        # states of its own to return.
        with self.assertRaisesRegex(ValueError, "did not run in a call"):
            RecurrentStates(halves)(video)
        self.assertEqual(shadowed(net), [])
        self.assertAllClose(halves(video), net(video), atol=1e-5)

    def test_threads_running_one_model_keep_their_own_states(self):
        model = lstm_model()
        run = RecurrentStates(model)
        videos = [frames((2, 6, 4), seed) for seed in range(4)]
        handed = [lstm_states(2, seed=10 * k) for k in range(4)]
        expected = [
            run(v, initial_states=s)
            for v, s in zip(videos, handed, strict=True)
        ]
        plain_expected = model(videos[0])
        results, errors = {}, []
        barrier = threading.Barrier(5)

        def handing_over(k):
            try:
                barrier.wait()
                for _ in range(5):
                    results[k] = run(videos[k], initial_states=handed[k])
            except Exception as error:  # Reported by the main thread.
                errors.append(error)

        def plain():
            try:
                barrier.wait()
                for _ in range(5):
                    results["plain"] = model(videos[0])
            except Exception as error:
                errors.append(error)

        threads = [
            threading.Thread(target=handing_over, args=(k,)) for k in range(4)
        ] + [threading.Thread(target=plain)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        for k in range(4):
            self.assertAllClose(results[k][0], expected[k][0], atol=1e-6)
            for got, want in zip(
                keras.tree.flatten(results[k][1]),
                keras.tree.flatten(expected[k][1]),
                strict=False,
            ):
                self.assertAllClose(got, want, atol=1e-6)
        # A thread without a run is untouched by the others' runs.
        self.assertAllClose(results["plain"], plain_expected, atol=1e-6)
        self.assertFalse(model.layers[0].return_state)
        self.assertEqual(shadowed(model), [])

    def test_a_layer_run_twice_is_refused(self):
        lstm = keras.layers.LSTM(3, return_sequences=True)
        inputs = keras.Input((None, 3))
        model = keras.Model(inputs, lstm(lstm(inputs)))
        with self.assertRaisesRegex(ValueError, "'lstm.*' ran twice"):
            RecurrentStates(model)(frames((1, 2, 3)))
        self.assertEqual(shadowed(model), [])

    def test_wrong_number_of_states_is_refused(self):
        run = RecurrentStates(lstm_model())
        with self.assertRaisesRegex(ValueError, "one list of states per"):
            run(frames((1, 2, 4)), initial_states=[])

    def test_stacked_cells_run_in_pieces_and_train_in_chunks(self):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((None, 4)),
                keras.layers.RNN(
                    [keras.layers.LSTMCell(3), keras.layers.GRUCell(5)],
                    return_sequences=True,
                ),
                keras.layers.Dense(2),
            ]
        )
        run = RecurrentStates(model)
        video = frames((2, 6, 4))
        first, states = run(video[:, :4])
        # One flat list for the layer: the cells' states one after another.
        self.assertEqual(
            [[tuple(state.shape) for state in states[0]]],
            [[(2, 3), (2, 3), (2, 5)]],
        )
        second, _ = run(video[:, 4:], initial_states=states)
        self.assertAllClose(
            np.concatenate([first, second], axis=1), model(video), atol=1e-5
        )
        with self.assertRaisesRegex(ValueError, "'rnn.*' must be a list of 3"):
            run(video, initial_states=[states[0][:2]])
        trainer = TruncatedBPTT(model, 2)
        trainer.compile(
            "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        history = trainer.fit(video, np.array([0, 1]), epochs=1, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"]).all())
        self.assertEqual(shadowed(model), [])


class SlowLSTM(keras.layers.LSTM):
    """An LSTM whose calls in the thread named "unrolled" wait inside the
    call (after `RecurrentStates` set `unroll`) until released or 2 s."""

    inside = threading.Event()
    release = threading.Event()

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if threading.current_thread().name == "unrolled":
            self.inside.set()
            self.release.wait(2.0)
        return super().call(
            sequences, initial_state=initial_state, mask=mask, training=training
        )


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="Traces a sequence of unknown length with tf.function.",
)
def test_an_unrolled_run_leaves_other_threads_their_own_unroll():
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, 4)),
            SlowLSTM(3, return_sequences=True),
            keras.layers.Dense(2),
        ]
    )
    x = frames((2, 5, 4))
    expected = model(x)
    step_outputs = []
    unrolled = threading.Thread(
        name="unrolled",
        target=lambda: step_outputs.append(
            RecurrentStates(model)(x[:, :1], unroll=True)[0]
        ),
    )
    unrolled.start()
    assert SlowLSTM.inside.wait(10.0)
    # An unrolled loop needs a known length: had this call seen the other
    # thread's `unroll`, tracing it would raise.
    traced = tf.function(
        model, input_signature=[tf.TensorSpec((None, None, 4))]
    )
    outputs = traced(x)
    SlowLSTM.release.set()
    unrolled.join()
    np.testing.assert_allclose(outputs, expected, atol=1e-6)
    np.testing.assert_allclose(step_outputs[0], expected[:, :1], atol=1e-6)
    assert model.layers[0].unroll is False
