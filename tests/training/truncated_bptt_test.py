"""`TruncatedBPTT`: chunked runs equal whole runs, gradients equal full BPTT
for one chunk and a hand-written truncation for several, frame targets,
and the wrong uses it refuses."""

import keras
import numpy as np
from keras import ops
from keras.src import testing

from keras_cbm.layers import CBM
from keras_cbm.layers import ConvCBM2D
from keras_cbm.training import TruncatedBPTT
from keras_cbm.training import frame_weights as weights_of
from tests.layers.testing_utils import layer_gradients

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def conv_model(seed=0, masking=False):
    """With `masking`, a frame of zeros is masked (`keras.layers.Masking`)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((None, 6, 6, 2)),
            *([keras.layers.Masking(0.0)] if masking else []),
            ConvCBM2D(3, 3, padding="same", return_sequences=True),
            keras.layers.ConvLSTM2D(
                2, 3, padding="same", return_sequences=True
            ),
            keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D()),
            keras.layers.Dense(2),
        ]
    )


def lstm_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((None, 3)),
            keras.layers.LSTM(4, return_sequences=True),
            keras.layers.Dense(2),
        ]
    )


def masked_model(seed=0):
    """A frame of zeros is masked (`keras.layers.Masking`) before a CBM
    layer, an LSTM and a GRU: each repeats its last output there."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((None, 3)),
            keras.layers.Masking(0.0),
            CBM(4, return_sequences=True),
            keras.layers.LSTM(3, return_sequences=True),
            keras.layers.GRU(3, return_sequences=True),
            keras.layers.Dense(2),
        ]
    )


def random(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


class HandTruncated(keras.layers.Layer):
    """The LSTM model's truncated run written out: two chunks of 3 frames,
    the states handed over with their gradient stopped."""

    def __init__(self, net):
        super().__init__()
        lstm, dense = net.layers
        self.lstm = keras.layers.LSTM(
            4, return_sequences=True, return_state=True
        )
        self.dense = keras.layers.Dense(2)
        self.lstm.build((None, None, 3))
        self.dense.build((None, None, 4))
        self.lstm.set_weights(lstm.get_weights())
        self.dense.set_weights(dense.get_weights())
        self.built = True

    def call(self, video, training=False):
        first, h, c = self.lstm(video[:, :3], training=training)
        second, _, _ = self.lstm(
            video[:, 3:],
            initial_state=[ops.stop_gradient(h), ops.stop_gradient(c)],
            training=training,
        )
        return self.dense(ops.concatenate([first, second], axis=1))


class TruncatedBPTTTest(testing.TestCase):
    def test_chunked_inference_equals_one_run(self):
        for net, video, chunk_lengths in (
            (conv_model(), random((2, 5, 6, 6, 2)), (2,)),
            (lstm_model(), random((2, 7, 3)), (1, 3, 7)),
        ):
            for chunk_length in chunk_lengths:
                trainer = TruncatedBPTT(net, chunk_length)
                self.assertAllClose(trainer(video), net(video), atol=1e-5)

    def test_masked_frames_output_as_in_one_run(self):
        for net, video in (
            (masked_model(), random((2, 8, 3))),
            (conv_model(masking=True), random((2, 8, 6, 6, 2))),
        ):
            # Masked at chunk starts (3, 6 for chunks of 3), inside a
            # chunk and at the video's start.
            video[0, [1, 3, 4]] = 0
            video[1, [0, 6]] = 0
            for chunk_length in (1, 3):
                trainer = TruncatedBPTT(net, chunk_length)
                self.assertAllClose(trainer(video), net(video), atol=1e-5)

    def test_one_chunk_is_full_bptt(self):
        net = conv_model()
        video, cotangent = random((2, 5, 6, 6, 2)), random((2, 5, 2), 2)
        _, expected = layer_gradients(net, video, cotangent, training=True)
        _, got = layer_gradients(
            TruncatedBPTT(net, 5), video, cotangent, training=True
        )
        for g, e in zip(got, expected, strict=True):
            self.assertAllClose(g, e, atol=1e-5)

    def test_chunks_equal_a_hand_written_truncation(self):
        net = lstm_model()
        video, cotangent = random((2, 6, 3)), random((2, 6, 2), 2)
        _, expected = layer_gradients(
            HandTruncated(net), video, cotangent, training=True
        )
        _, full = layer_gradients(net, video, cotangent, training=True)
        for rematerialize in (True, False):
            _, got = layer_gradients(
                TruncatedBPTT(net, 3, rematerialize=rematerialize),
                video,
                cotangent,
                training=True,
            )
            for g, e in zip(got, expected, strict=True):
                self.assertAllClose(g, e, atol=1e-5)
        # The truncation matters: full BPTT's kernel gradient differs.
        self.assertNotAllClose(expected[0], full[0], atol=1e-4)

    def test_fit_trains_and_predicts_per_frame(self):
        net = conv_model()
        before = [w.copy() for w in net.get_weights()]
        trainer = TruncatedBPTT(net, 2)
        trainer.compile(
            keras.optimizers.SGD(0.1),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        videos = random((4, 5, 6, 6, 2))
        history = trainer.fit(
            videos, np.array([0, 1, 0, 1]), batch_size=2, epochs=2, verbose=0
        )
        self.assertEqual(sorted(history.history), ["accuracy", "loss"])
        self.assertTrue(np.isfinite(history.history["loss"]).all())
        self.assertFalse(
            all(
                np.allclose(a, b)
                for a, b in zip(before, net.get_weights(), strict=True)
            )
        )
        self.assertEqual(trainer.predict(videos, verbose=0).shape, (4, 5, 2))

    def test_rematerialised_chunks_update_state_once(self):
        # Batch statistics and dropout seeds: a recomputed chunk must not
        # update them again (TensorFlow) nor leak them (JAX).
        results = []
        for rematerialize in (True, False):
            keras.utils.set_random_seed(0)
            net = keras.Sequential(
                [
                    keras.Input((None, 3)),
                    keras.layers.LSTM(4, return_sequences=True, dropout=0.5),
                    keras.layers.BatchNormalization(momentum=0.5),
                    keras.layers.Dense(2),
                ]
            )
            trainer = TruncatedBPTT(net, 3, rematerialize=rematerialize)
            trainer.compile(
                keras.optimizers.SGD(0.0),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            trainer.fit(
                random((2, 6, 3)), np.array([0, 1]), epochs=1, verbose=0
            )
            results.append(net.layers[1].moving_mean.numpy())
        self.assertAllClose(results[0], results[1], atol=1e-6)
        self.assertNotAllClose(results[0], np.zeros(4))

    def test_frame_targets_weight_the_loss(self):
        net = lstm_model()
        video, labels = random((2, 6, 3)), np.array([0, 1])
        logits = net(video)
        frame_losses = keras.losses.sparse_categorical_crossentropy(
            np.repeat(labels[:, None], 6, axis=1), logits, from_logits=True
        )
        given = np.array([[0, 1, 0, 1, 0, 0], [1, 1, 1, 1, 1, 1]], "float32")
        for targets, inputs, expected in (
            ("all", video, ops.mean(frame_losses)),
            (("last", 2), video, ops.mean(frame_losses[:, 4:])),
            (("from", 1), video, ops.mean(frame_losses[:, 1:])),
            (
                "given",
                {"video": video, "frame_weights": given},
                (
                    ops.mean(frame_losses[0, 1::2][:2])
                    + ops.mean(frame_losses[1])
                )
                / 2,
            ),
        ):
            trainer = TruncatedBPTT(net, 4, targets=targets)
            trainer.compile(
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True
                )
            )
            loss = trainer.compute_loss(
                inputs, labels, trainer(inputs), training=True
            )
            self.assertAllClose(loss, expected, atol=1e-5)

    def test_frame_weights_select_frames(self):
        index = np.arange(5)

        def frame_weights(*args):
            return ops.convert_to_numpy(weights_of(*args))

        self.assertEqual(frame_weights(index, 5).tolist(), [1.0] * 5)
        self.assertEqual(
            frame_weights(index, 5, ("last", 2)).tolist(), [0, 0, 0, 1, 1]
        )
        self.assertEqual(
            frame_weights(index, 5, ("from", 3)).tolist(), [0, 0, 0, 1, 1]
        )
        self.assertEqual(
            frame_weights(np.array([-1, 4]), 5, ("last", 9)).tolist(), [0, 1]
        )

    def test_losses_added_in_chunks_add_up_to_one_runs(self):
        net = lstm_model()
        regularized = keras.Sequential(
            net.layers[:-1] + [keras.layers.Dense(2, activity_regularizer="l2")]
        )
        regularized.layers[-1].build((None, None, 4))
        regularized.layers[-1].set_weights(net.layers[-1].get_weights())
        videos, labels = random((2, 6, 3)), np.array([0, 1])
        regularized(videos)
        expected = float(ops.convert_to_numpy(ops.sum(regularized.losses)))
        self.assertGreater(expected, 0.0)
        for chunk_length in (2, 6):
            losses = []
            for model in (regularized, net):
                trainer = TruncatedBPTT(model, chunk_length)
                trainer.compile(loss=LOSS)
                losses.append(trainer.evaluate(videos, labels, verbose=0))
            self.assertAllClose(losses[0] - losses[1], expected, atol=1e-5)

    def test_model_and_labels_must_be_per_frame_and_per_video(self):
        video_model = keras.Sequential(
            [
                keras.Input((None, 3)),
                keras.layers.LSTM(4),
                keras.layers.Dense(2),
            ]
        )
        with self.assertRaisesRegex(
            ValueError,
            r"`model` must output per-frame predictions \(batch, time, "
            r"classes\). Received: outputs of shape \('batch', 2\)",
        ):
            TruncatedBPTT(video_model, 2)
        trainer = TruncatedBPTT(lstm_model(), 2)
        trainer.compile("sgd", LOSS)
        with self.assertRaisesRegex(
            ValueError,
            r"`y` must hold one label per video, .* Received: labels of "
            r"shape \('batch', 6\)",
        ):
            trainer.fit(random((2, 6, 3)), np.zeros((2, 6), "int32"), verbose=0)

    def test_wrong_uses_are_refused(self):
        net = lstm_model()
        with self.assertRaisesRegex(ValueError, "`chunk_length` must be"):
            TruncatedBPTT(net, 0)
        with self.assertRaisesRegex(ValueError, "at most the videos' length"):
            TruncatedBPTT(net, 8)(random((1, 6, 3)))
        with self.assertRaisesRegex(ValueError, "`targets` must be"):
            TruncatedBPTT(net, 2, targets=("last", 0))
        with self.assertRaisesRegex(ValueError, "'frame_weights'"):
            trainer = TruncatedBPTT(net, 2, targets="given")
            trainer.frame_weights(random((1, 6, 3)), random((1, 6, 2)))
        for layer, reason in (
            (
                keras.layers.Bidirectional(
                    keras.layers.LSTM(2, return_sequences=True)
                ),
                "runs backwards",
            ),
            (
                keras.layers.LSTM(2, return_sequences=True, stateful=True),
                "is `stateful`",
            ),
        ):
            bad = keras.Sequential(
                [keras.Input((None, 3), batch_size=1), layer]
            )
            with self.assertRaisesRegex(ValueError, reason):
                TruncatedBPTT(bad, 2)


def hand_step(net, videos, labels, chunk_length, learning_rate):
    """The weights after one SGD step of truncated BPTT written out: a
    Python loop over chunks, each from the states the previous one ended
    in with their gradient stopped, the loss over all frames, one
    `GradientTape` (TensorFlow)."""
    import tensorflow as tf

    from keras_cbm.models import RecurrentStates

    run = RecurrentStates(net)
    with tf.GradientTape() as tape:
        states, outputs = None, []
        for start in range(0, videos.shape[1], chunk_length):
            if states is not None:
                states = keras.tree.map_structure(tf.stop_gradient, states)
            chunk_outputs, states = run(
                videos[:, start : start + chunk_length],
                initial_states=states,
                training=True,
            )
            outputs.append(chunk_outputs)
        outputs = tf.concat(outputs, axis=1)
        loss = LOSS(np.repeat(labels[:, None], outputs.shape[1], 1), outputs)
    gradients = tape.gradient(loss, net.trainable_variables)
    return [
        variable.numpy() - learning_rate * gradient.numpy()
        for variable, gradient in zip(
            net.trainable_variables, gradients, strict=True
        )
    ]


class SymbolicLoopTest(testing.TestCase):
    def test_train_step_equals_a_hand_written_chunk_loop(self):
        if keras.backend.backend() != "tensorflow":
            self.skipTest("The hand-written loop uses a GradientTape.")
        videos, labels = random((2, 11, 6, 6, 2)), np.array([0, 1])
        for rematerialize in (True, False):
            expected = hand_step(conv_model(), videos, labels, 3, 0.5)
            net = conv_model()
            trainer = TruncatedBPTT(net, 3, rematerialize=rematerialize)
            trainer.compile(keras.optimizers.SGD(0.5), LOSS)
            trainer.fit(videos, labels, batch_size=2, epochs=1, verbose=0)
            for got, want in zip(net.get_weights(), expected, strict=True):
                self.assertAllClose(got, want, atol=1e-5)

    def test_chunk_count_varies_without_retracing(self):
        if keras.backend.backend() != "tensorflow":
            self.skipTest("JAX traces each video length.")
        import tensorflow as tf

        traced = []

        class Counting(TruncatedBPTT):
            def call(self, inputs, training=None):
                traced.append(training)
                return super().call(inputs, training=training)

        lengths = (5, 11, 8)
        videos = [random((1, n, 3), seed=n) for n in lengths]
        dataset = tf.data.Dataset.from_generator(
            lambda: ((v, np.array([n % 2])) for v, n in zip(videos, lengths)),
            output_signature=(
                tf.TensorSpec((1, None, 3), "float32"),
                tf.TensorSpec((1,), "int32"),
            ),
        )
        net = lstm_model()
        trainer = Counting(net, 3)
        trainer.compile(keras.optimizers.SGD(0.1), LOSS)
        trainer.fit(dataset, epochs=2, verbose=0)
        self.assertEqual(traced.count(True), 1)
        # Each batch's step is that of a hand-written loop over its chunks.
        expected = hand_step(lstm_model(), videos[0], np.array([1]), 3, 0.1)
        net = lstm_model()
        trainer = Counting(net, 3)
        trainer.compile(keras.optimizers.SGD(0.1), LOSS)
        trainer.fit(dataset.take(1), epochs=1, verbose=0)
        for got, want in zip(net.get_weights(), expected, strict=True):
            self.assertAllClose(got, want, atol=1e-5)

    def test_traced_graph_does_not_grow_with_the_chunks(self):
        if keras.backend.backend() != "tensorflow":
            self.skipTest("Counts TensorFlow graph nodes.")
        import tensorflow as tf

        sizes = []
        for frames in (8, 64):
            net = lstm_model()
            trainer = TruncatedBPTT(net, 2)
            trainer.compile(keras.optimizers.SGD(0.1), LOSS)
            videos = tf.TensorSpec((2, frames, 3), "float32")
            labels = tf.TensorSpec((2,), "int32")
            trainer.make_train_function()
            step = tf.function(
                lambda x, y, trainer=trainer: trainer.train_step((x, y))
            )
            graph = step.get_concrete_function(videos, labels).graph
            sizes.append(
                len(graph.as_graph_def(add_shapes=False).node)
                + sum(
                    len(f.node_def)
                    for f in graph.as_graph_def().library.function
                )
            )
        self.assertEqual(sizes[0], sizes[1])
