"""`StreamingBPTT`: a stream of chunks equals whole-video runs (outputs) and
truncated BPTT (gradients), rows reset where a new video begins, `fit`
trains, and the wrong uses it refuses."""

import threading
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from keras.src import testing

from keras_cbm.data import streaming_chunks
from keras_cbm.training import StreamingBPTT
from keras_cbm.training import TruncatedBPTT
from keras_cbm.training import streaming_bptt
from tests.layers.testing_utils import layer_gradients
from tests.training import truncated_bptt_test as tbptt


def video_dataset(videos, labels=None):
    """A dataset of videos of any lengths, labelled 0, 1, 0, ..."""
    dataset = None
    for index, video in enumerate(videos):
        label = index % 2 if labels is None else labels[index]
        element = tf.data.Dataset.from_tensors({"video": video, "label": label})
        dataset = element if dataset is None else dataset.concatenate(element)
    return dataset


def batches(stream):
    return list(stream.as_numpy_iterator())


def stream_outputs(trainer, stream):
    """Each video's per-frame outputs over a stream, by video id."""
    outputs = {}
    for inputs, _ in batches(stream):
        chunk = ops.convert_to_numpy(trainer(inputs))
        for row, video_id in enumerate(inputs["video_id"].tolist()):
            if video_id < 0:  # An idle row.
                continue
            valid = inputs["frame_weights"][row] > 0
            outputs.setdefault(video_id, []).append(chunk[row, valid])
    return {key: np.concatenate(value) for key, value in outputs.items()}


def streaming_gradients(trainer, stream, cotangents):
    """The sum over a stream's batches of the gradients of
    `sum(outputs * cotangent)`, each batch from the states the last ended
    in."""
    elements = [inputs for inputs, _ in batches(stream)]
    trainer(elements[0])  # Builds the states.
    total = None
    if keras.backend.backend() == "jax":
        import jax

        weights = [v.value for v in trainer.trainable_variables]
        frozen = [v.value for v in trainer.non_trainable_variables]
        for inputs, cotangent in zip(elements, cotangents, strict=True):

            def loss(weights, frozen, inputs=inputs, cotangent=cotangent):
                outputs, frozen = trainer.stateless_call(
                    weights, frozen, inputs, training=True
                )
                return ops.sum(outputs * cotangent), frozen

            grads, frozen = jax.grad(loss, has_aux=True)(weights, frozen)
            total = (
                grads
                if total is None
                else [a + b for a, b in zip(total, grads, strict=True)]
            )
    else:
        for inputs, cotangent in zip(elements, cotangents, strict=True):
            with tf.GradientTape() as tape:
                loss = ops.sum(trainer(inputs, training=True) * cotangent)
            grads = tape.gradient(loss, trainer.trainable_variables)
            total = (
                grads
                if total is None
                else [a + b for a, b in zip(total, grads, strict=True)]
            )
    return [np.asarray(g) for g in total]


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compiled(trainer, metrics=()):
    trainer.compile(keras.optimizers.Adam(1e-2), LOSS, metrics=list(metrics))
    return trainer


class StreamingBPTTTest(testing.TestCase):
    def assertStreamEqualsOneRunOfEachVideo(self, net, videos):
        """A stream of `videos` in chunks of 3 on 2 rows: row 1 plays
        videos 1 and 2, its second video starting afresh."""
        stream = streaming_chunks(
            video_dataset(videos), 2, 3, drop_remainder=False
        )
        got = stream_outputs(StreamingBPTT(net), stream)
        self.assertEqual(sorted(got), [0, 1, 2])
        for video_id, video in enumerate(videos):
            self.assertAllClose(got[video_id], net(video[None])[0], atol=1e-5)

    def test_a_stream_equals_one_run_of_each_video(self):
        for net, frame in (
            (tbptt.conv_model(), (6, 6, 2)),
            (tbptt.lstm_model(), (3,)),
        ):
            self.assertStreamEqualsOneRunOfEachVideo(
                net,
                [
                    tbptt.random((length,) + frame, seed)
                    for seed, length in enumerate((6, 3, 4))
                ],
            )

    def test_masked_frames_output_as_in_one_run(self):
        videos = [
            tbptt.random((length, 3), seed)
            for seed, length in enumerate((6, 3, 4))
        ]
        # Masked at a chunk start (frame 3), inside a chunk, and at the
        # start of the video that follows another on its row.
        videos[0][[1, 3, 4]] = 0
        videos[2][0] = 0
        self.assertStreamEqualsOneRunOfEachVideo(tbptt.masked_model(), videos)

    def test_gradients_equal_truncated_bptt(self):
        net = tbptt.lstm_model()
        videos = tbptt.random((2, 6, 3))
        cotangent = tbptt.random((2, 6, 2), 2)
        _, expected = layer_gradients(
            TruncatedBPTT(net, 3), videos, cotangent, training=True
        )
        # Chunks of 3 frames as two batches, or one batch of 6 frames in
        # sub-chunks of 3.
        for trainer, chunk_length in (
            (StreamingBPTT(net), 3),
            (StreamingBPTT(net, chunk_length=3, rematerialize=True), 6),
        ):
            stream = streaming_chunks(video_dataset(videos), 2, chunk_length)
            cotangents = np.split(cotangent, 6 // chunk_length, axis=1)
            got = streaming_gradients(trainer, stream, cotangents)
            for g, e in zip(got, expected, strict=True):
                self.assertAllClose(g, e, atol=1e-5)

    def test_loss_weighs_every_frame_by_its_weight(self):
        net = tbptt.lstm_model()
        trainer = compiled(StreamingBPTT(net))
        inputs = {
            "video": tbptt.random((2, 3, 3)),
            "new_video": np.array([True, True]),
            "frame_weights": np.array([[1, 1, 0], [1, 0, 0]], "float32"),
        }
        labels = np.array([0, 1])
        logits = trainer(inputs)
        frame_losses = ops.convert_to_numpy(
            keras.losses.sparse_categorical_crossentropy(
                np.repeat(labels[:, None], 3, axis=1), logits, from_logits=True
            )
        )
        # Keras' reduction: the mean over the batch's frames, padding too.
        expected = (frame_losses * inputs["frame_weights"]).sum() / 6
        loss = trainer.compute_loss(inputs, labels, logits, training=True)
        self.assertAllClose(loss, expected, atol=1e-5)

    def test_fit_trains_and_keeps_each_rows_states(self):
        net = tbptt.conv_model()
        before = [w.copy() for w in net.get_weights()]
        videos = [tbptt.random((n, 6, 6, 2), n) for n in (5, 4, 6, 3)]
        stream = streaming_chunks(video_dataset(videos), 2, 2)
        trainer = compiled(StreamingBPTT(net), ["accuracy"])
        history = trainer.fit(stream, epochs=2, verbose=0)
        self.assertEqual(sorted(history.history), ["accuracy", "loss"])
        self.assertTrue(np.isfinite(history.history["loss"]).all())
        self.assertFalse(
            all(
                np.allclose(a, b)
                for a, b in zip(before, net.get_weights(), strict=True)
            )
        )
        # The rows' states are variables (saved with the weights).
        names = [v.name for v in trainer.non_trainable_variables]
        self.assertIn("conv_cbm2d_state_0", names)
        states = trainer.state_variables[0][0]
        self.assertEqual(tuple(states.shape), (2, 6, 6, 3))
        self.assertGreater(np.abs(ops.convert_to_numpy(states)).max(), 0)
        self.assertEqual(
            int(ops.convert_to_numpy(trainer.stream_batches)),
            int(stream.cardinality()),
        )

    def test_metrics_count_only_the_target_frames(self):
        net = tbptt.lstm_model()
        videos = video_dataset([tbptt.random((7, 3), n) for n in range(4)])
        stream = streaming_chunks(videos, 2, 3, targets=("last", 2))
        correct, weights = [], []
        reference = StreamingBPTT(net)
        for inputs, labels in batches(stream):
            predicted = np.argmax(ops.convert_to_numpy(reference(inputs)), -1)
            correct.append(predicted == labels[:, None])
            weights.append(inputs["frame_weights"])
        correct, weights = np.stack(correct), np.stack(weights)
        expected = (correct * weights).sum() / weights.sum()
        # Not the accuracy over every frame, padding and all.
        self.assertNotAllClose(expected, correct.mean(), atol=1e-3)
        trainer = StreamingBPTT(net)
        trainer.compile(keras.optimizers.SGD(0.0), LOSS, metrics=["accuracy"])
        history = trainer.fit(stream, epochs=1, verbose=0)
        self.assertAllClose(history.history["accuracy"][0], expected)

    def test_fit_takes_keras_arguments_and_one_guard_a_fit(self):
        videos = video_dataset([tbptt.random((4, 3), n) for n in range(4)])
        stream = streaming_chunks(videos, 2, 2)
        trainer = compiled(StreamingBPTT(tbptt.lstm_model()))
        # Keras' order: x, y, batch_size, epochs, verbose.
        history = trainer.fit(stream, None, None, 2, 0)
        self.assertLen(history.history["loss"], 2)
        history = keras.callbacks.History()
        callbacks = keras.callbacks.CallbackList([history], model=trainer)
        for _ in range(2):
            trainer.fit(stream, epochs=1, verbose=0, callbacks=callbacks)
        self.assertEqual(callbacks.callbacks, [history])

    def test_fit_reads_no_variable_a_batch(self):
        reads = []

        class CountingOps:
            def __getattr__(self, name):
                return getattr(ops, name)

            def convert_to_numpy(self, value):
                reads.append(value)
                return ops.convert_to_numpy(value)

        class Threads(keras.callbacks.Callback):
            async_safe = True
            threads = set()

            def on_train_batch_end(self, batch, logs=None):
                self.threads.add(threading.get_ident())

        counts = []
        trainer = compiled(StreamingBPTT(tbptt.lstm_model()))
        for count in (1, 3):
            videos = [tbptt.random((4, 3), n) for n in range(count)]
            stream = streaming_chunks(video_dataset(videos), 1, 2)
            del reads[:]
            with mock.patch.object(streaming_bptt, "ops", CountingOps()):
                trainer.fit(stream, epochs=1, verbose=0, callbacks=[Threads()])
            counts.append(len(reads))
        # 2 and 6 batches: the reads are per epoch.
        self.assertEqual(counts[0], counts[1])
        if keras.backend.backend() == "jax":
            # No hook of its own after a batch: Keras dispatches the batch
            # callbacks asynchronously (on JAX; TensorFlow never does).
            self.assertNotIn(threading.get_ident(), Threads.threads)

    def test_predict_and_evaluate_leave_the_training_rows_alone(self):
        def stream(seed):
            videos = [tbptt.random((4, 3), seed + n) for n in range(2)]
            return streaming_chunks(video_dataset(videos), 2, 3, False)

        trainer = compiled(StreamingBPTT(tbptt.lstm_model()))
        trainer.fit(stream(0), epochs=1, verbose=0)
        kept = trainer.non_trainable_variables
        before = [ops.convert_to_numpy(v) for v in kept]
        self.assertGreater(max(np.abs(b).max() for b in before), 0)
        trainer.evaluate(stream(10), verbose=0)
        trainer.predict(stream(20), verbose=0)
        for variable, value in zip(kept, before, strict=True):
            self.assertAllEqual(ops.convert_to_numpy(variable), value)

    def test_wrong_uses_are_refused(self):
        net = tbptt.lstm_model()
        with self.assertRaisesRegex(ValueError, "`chunk_length` must be"):
            StreamingBPTT(net, chunk_length=0)
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
                StreamingBPTT(bad)
        trainer = StreamingBPTT(net)
        with self.assertRaisesRegex(ValueError, r"\['video', 'new_video'\]"):
            trainer({"video": tbptt.random((2, 3, 3))})
        trainer({"video": tbptt.random((2, 3, 3)), "new_video": np.ones(2)})
        with self.assertRaisesRegex(ValueError, r"as many rows .* \(2;"):
            trainer({"video": tbptt.random((3, 3, 3)), "new_video": np.ones(3)})
        with self.assertRaisesRegex(ValueError, "at most the batches' length"):
            StreamingBPTT(net, chunk_length=4)(
                {"video": tbptt.random((1, 3, 3)), "new_video": np.ones(1)}
            )

        videos = video_dataset([tbptt.random((6, 3), n) for n in range(4)])
        stream = streaming_chunks(videos, 2, 2)
        with self.assertRaisesRegex(ValueError, "`steps_per_epoch` must be"):
            compiled(StreamingBPTT(net)).fit(stream, steps_per_epoch=2)
        shuffled = (
            stream.unbatch().shuffle(64, seed=1).batch(2, drop_remainder=True)
        )
        with self.assertRaisesRegex(ValueError, "chunks in order"):
            compiled(StreamingBPTT(net)).fit(shuffled, epochs=1, verbose=0)
