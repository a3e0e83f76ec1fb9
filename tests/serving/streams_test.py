import os
import tempfile
import threading

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from keras.src import testing

from keras_cbm.layers import ConvCBM2D
from keras_cbm.serving import LiteRTStep
from keras_cbm.serving import StreamServer
from keras_cbm.serving import export_step

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="serving needs the TensorFlow backend",
)

FRAME_SHAPE = (8, 8, 1)
STREAMS = ("a", "b", "c", "d")
FRAMES = 12


class CountingStep:
    """A step that records the batch size of every call."""

    def __init__(self, step):
        self.step = step
        self.frame_spec = step.frame_spec
        self.state_specs = step.state_specs
        self.zero_states = step.zero_states
        self.batches = []

    def __call__(self, frames, states):
        self.batches.append(len(frames))
        return self.step(frames, states)


class FailingStep(CountingStep):
    """A step whose next call fails once `fail` is set."""

    fail = False

    def __call__(self, frames, states):
        if self.fail:
            self.fail = False
            raise RuntimeError("the runtime failed")
        return super().__call__(frames, states)


class StreamServerTest(testing.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((None,) + FRAME_SHAPE),
                ConvCBM2D(
                    2,
                    3,
                    padding="same",
                    return_sequences=True,
                    temporal_gate="recurrent",
                    recurrent_activation="tanh",
                    merge="add",
                ),
                keras.layers.ConvLSTM2D(
                    2, 3, padding="same", return_sequences=True
                ),
                keras.layers.TimeDistributed(
                    keras.layers.GlobalAveragePooling2D()
                ),
                keras.layers.Dense(3),
            ]
        )
        path = os.path.join(tempfile.mkdtemp(), "step.tflite")
        cls.step = LiteRTStep(export_step(model, path))
        rng = np.random.default_rng(0)
        # A different video per stream, so that a leaked state shows.
        cls.videos = {
            stream: rng.integers(0, 256, (FRAMES,) + FRAME_SHAPE, "uint8")
            for stream in STREAMS
        }
        # Each stream alone, from zero states: the probabilities after
        # each of its frames.
        cls.alone = {}
        for stream, video in cls.videos.items():
            states = cls.step.zero_states(1)
            probabilities = []
            for frame in video:
                frame_probabilities, states = cls.step(frame[None], states)
                probabilities.append(frame_probabilities[0])
            cls.alone[stream] = np.stack(probabilities)

    def assertAsAlone(self, server, stream, frames):
        """`stream`, after `frames` frames since it was added, reads as
        that stream run alone."""
        self.assertAllClose(
            server.read(stream),
            self.alone[stream][frames - 1],
            atol=1e-6,
            msg=f"{stream} after {frames} frames",
        )

    def test_streams_that_start_late_and_come_back_do_not_leak(self):
        step = CountingStep(self.step)
        server = StreamServer(step)
        pushed = {}

        def push(*streams):
            for stream in streams:
                server.push(stream, self.videos[stream][pushed.get(stream, 0)])
                pushed[stream] = pushed.get(stream, 0) + 1

        server.add("a")
        push("a")
        push("a")
        server.add("b")
        push("a", "b")
        # a's three frames: three rounds, the first with b's frame.
        self.assertEqual(server.flush(), 3)
        self.assertEqual(step.batches, [2, 1, 1])
        self.assertAsAlone(server, "a", 3)
        self.assertAsAlone(server, "b", 1)
        server.add("c")
        self.assertIsNone(server.read("c"))
        push("c", "b", "a", "c")
        server.drop("a")  # its queued frame goes with it
        del pushed["a"]
        self.assertAsAlone(server, "b", 2)
        self.assertAsAlone(server, "c", 2)
        self.assertEqual(sorted(server.streams), ["b", "c"])
        server.add("a")  # again: from zero states, its video from the start
        push("a", "a", "b", "c")
        self.assertAsAlone(server, "a", 2)
        self.assertAsAlone(server, "b", 3)
        self.assertAsAlone(server, "c", 3)
        with self.assertRaisesRegex(ValueError, "must be live.*stream='e'"):
            server.push("e", self.videos["a"][0])
        with self.assertRaisesRegex(ValueError, "live already.*stream='b'"):
            server.add("b")
        server.drop("b")
        with self.assertRaisesRegex(ValueError, "stream='b'"):
            server.read("b")

    @settings(derandomize=True, max_examples=30, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["add", "push", "read", "drop", "flush"]),
                st.sampled_from(STREAMS),
            ),
            max_size=40,
        )
    )
    def test_any_schedule_reads_each_stream_as_alone(self, schedule):
        server = StreamServer(self.step)
        pushed = {}
        for operation, stream in schedule:
            live = stream in pushed
            if operation == "add" and not live:
                server.add(stream)
                pushed[stream] = 0
            elif operation == "push" and live and pushed[stream] < FRAMES:
                server.push(stream, self.videos[stream][pushed[stream]])
                pushed[stream] += 1
            elif operation == "read" and live:
                if pushed[stream] == 0:
                    self.assertIsNone(server.read(stream))
                else:
                    self.assertAsAlone(server, stream, pushed[stream])
            elif operation == "drop" and live:
                server.drop(stream)
                del pushed[stream]
            elif operation == "flush":
                server.flush()
            elif operation == "add":
                with self.assertRaisesRegex(ValueError, "live already"):
                    server.add(stream)
            elif not live:
                with self.assertRaisesRegex(ValueError, "must be live"):
                    if operation == "push":
                        server.push(stream, self.videos[stream][0])
                    else:
                        getattr(server, operation)(stream)
        self.assertEqual(sorted(server.streams), sorted(pushed))
        for stream, frames in pushed.items():
            if frames:
                self.assertAsAlone(server, stream, frames)

    def test_threads_push_and_read_their_own_streams(self):
        server = StreamServer(self.step)
        errors = []

        def follow(stream):
            try:
                server.add(stream)
                for t, frame in enumerate(self.videos[stream]):
                    server.push(stream, frame)
                    if t % 3 == 2:
                        self.assertAsAlone(server, stream, t + 1)
                self.assertAsAlone(server, stream, FRAMES)
            except Exception as error:  # reported by the main thread
                errors.append(error)

        threads = [
            threading.Thread(target=follow, args=(stream,))
            for stream in STREAMS
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])

    def test_bad_frames_and_a_failing_step_lose_no_good_frame(self):
        step = FailingStep(self.step)
        server = StreamServer(step)
        for stream in STREAMS:
            server.add(stream)
        frame = self.videos["a"][0]
        bad_frames = [
            frame.astype("float32") / 255,  # a video scaled to [0, 1]
            frame.astype("int64"),
            np.zeros((16, 16, 1), "uint8"),
            np.zeros((8, 8, 3), "uint8"),
            frame[None],
        ]
        for t in range(FRAMES):
            for k, stream in enumerate(STREAMS):
                bad = bad_frames[(t + k) % len(bad_frames)]
                with self.assertRaisesRegex(
                    ValueError, r"`frame` must be uint8 of shape \(8, 8, 1\)"
                ):
                    server.push(stream, bad)
                server.push(stream, self.videos[stream][t])
            if t == FRAMES // 2:
                step.fail = True
                with self.assertRaisesRegex(RuntimeError, "runtime failed"):
                    server.flush()
            if t % 3 == 0:
                server.flush()
        for stream in STREAMS:
            self.assertAsAlone(server, stream, FRAMES)
