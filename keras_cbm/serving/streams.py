"""Many live video streams served by one frame-by-frame step: their frames
batched into one call, their states kept apart."""

import collections
import threading

import numpy as np

from keras_cbm.serving.step_runtimes import check_array


class StreamServer:
    """Follows many live videos with one step, a batch of frames per call.

    Holds the recurrent states of every live stream in one array per state
    (one row a stream, rows kept contiguous: a dropped stream's row takes
    the last stream), so that a call over every stream passes the arrays as
    they are. `push` queues a frame of a stream; `flush` steps every stream
    with a queued frame in one call of `step` (the oldest frame of each, as
    often as the longest queue needs); `read` flushes and returns a stream's
    latest probabilities. A stream starts from zero states when added, and
    nothing of a dropped stream remains. The methods may be called from
    several threads (one lock: a call of `step` runs while the lock is
    held).

    No frame is lost to another stream's mistake: `push` refuses a frame
    that is not the step's (`step.frame_spec`: uint8 `frame_shape`, no
    dtype converted) before queueing it, and `flush` takes a frame off its
    queue only once the step has run it (a step that raises leaves every
    queue as it was).

    Args:
        step: A step runtime, `keras_cbm.serving.LiteRTStep`, `OnnxStep` or
            `SavedModelStep`: `step(frames, states)` returns
            `(probabilities, next_states)`, `step.frame_spec`,
            `step.state_specs` and `step.zero_states(batch)` as they do.

    Example:

    >>> import os
    >>> import tempfile
    >>> from keras_cbm.layers import ConvCBM2D
    >>> from keras_cbm.serving import LiteRTStep
    >>> from keras_cbm.serving import export_step
    >>> model = keras.Sequential([
    ...     keras.Input((None, 8, 8, 1)),
    ...     ConvCBM2D(2, 3, padding="same", return_sequences=True),
    ...     keras.layers.TimeDistributed(
    ...         keras.layers.GlobalAveragePooling2D()),
    ...     keras.layers.Dense(3)])
    >>> path = export_step(
    ...     model, os.path.join(tempfile.mkdtemp(), "step.tflite"))
    >>> server = StreamServer(LiteRTStep(path))
    >>> server.add("door")
    >>> server.add("hall")
    >>> server.push("door", np.zeros((8, 8, 1), "uint8"))
    >>> server.push("hall", np.ones((8, 8, 1), "uint8"))
    >>> server.flush()  # both frames, one call
    1
    >>> server.read("door").shape
    (3,)
    >>> server.drop("door")
    >>> server.streams
    ['hall']
    """

    def __init__(self, step):
        self.step = step
        self._lock = threading.Lock()
        self._rows = {}  # stream -> its row in the state arrays
        self._order = []  # the stream of every row
        self._queues = {}
        self._latest = {}
        self._states = step.zero_states(0)

    @property
    def streams(self):
        """The live streams, in the order of their rows (the last stream
        takes a dropped stream's row)."""
        with self._lock:
            return list(self._order)

    def add(self, stream):
        """Starts `stream` (any hashable name) from zero states."""
        with self._lock:
            if stream in self._rows:
                raise ValueError(
                    f"`stream` must not be live already. Received: "
                    f"stream={stream!r}"
                )
            row = len(self._order)
            if self._states and row == len(self._states[0]):
                # Doubled, so that adding n streams copies O(n) rows.
                self._states = [
                    np.concatenate(
                        [
                            state,
                            np.zeros_like(
                                state, shape=(max(row, 1),) + state.shape[1:]
                            ),
                        ]
                    )
                    for state in self._states
                ]
            for state in self._states:
                state[row] = 0
            self._rows[stream] = row
            self._order.append(stream)
            self._queues[stream] = collections.deque()
            self._latest[stream] = None

    def push(self, stream, frame):
        """Queues `frame`, uint8 `frame_shape`, as the next of `stream`.

        Raises:
            ValueError: For a stream that is not live, or a frame of
                another dtype or shape (nothing is queued).
        """
        spec = self.step.frame_spec
        frame = check_array("frame", frame, spec._replace(shape=spec.shape[1:]))
        with self._lock:
            self._queue(stream).append(frame)

    def read(self, stream):
        """The probabilities `(classes,)` at the latest frame of `stream`
        (its queued frames stepped first), or `None` before its first."""
        with self._lock:
            if self._queue(stream):
                self._flush()
            return self._latest[stream]

    def drop(self, stream):
        """Ends `stream`: its states, queue and probabilities are gone."""
        with self._lock:
            self._queue(stream)
            row = self._rows.pop(stream)
            last = self._order.pop()
            if last != stream:
                for state in self._states:
                    state[row] = state[len(self._order)]
                self._order[row] = last
                self._rows[last] = row
            del self._queues[stream], self._latest[stream]

    def flush(self):
        """Steps every queued frame, one call per round over the streams
        with a frame left; returns the number of calls."""
        with self._lock:
            return self._flush()

    def _queue(self, stream):
        if stream not in self._queues:
            raise ValueError(
                f"`stream` must be live (added, not dropped). Received: "
                f"stream={stream!r}; live: {self._order}"
            )
        return self._queues[stream]

    def _flush(self):
        calls = 0
        while True:
            rows = [
                row
                for row, stream in enumerate(self._order)
                if self._queues[stream]
            ]
            if not rows:
                return calls
            queues = [self._queues[self._order[row]] for row in rows]
            frames = np.stack([queue[0] for queue in queues])
            # Every stream in its row order: the arrays themselves.
            picked = slice(0, len(rows)) if rows[-1] == len(rows) - 1 else rows
            probabilities, states = self.step(
                frames, [state[picked] for state in self._states]
            )
            for queue in queues:
                queue.popleft()
            for state, new in zip(self._states, states, strict=True):
                state[picked] = new
            for row, row_probabilities in zip(rows, probabilities, strict=True):
                self._latest[self._order[row]] = np.array(row_probabilities)
            calls += 1
