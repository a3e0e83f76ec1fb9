"""Runs the PyAV readers in worker processes.

PyAV holds Python's GIL for most of a decode, so the parallel calls of a
`tf.data` map decode one at a time, and worse: two threads read clips at
half the speed of one (measured on 2 cores, 32x32 H.264), while two
processes read them at twice the speed.

The workers are plain interpreters fed pickled calls through a pipe, not a
`multiprocessing` pool: those import the user's `__main__` in every worker
(and with it, as a rule, Keras and TensorFlow: 5 s and 800 MB each), or
fork a process full of TensorFlow's threads. A worker imports the readers'
modules without the packages' `__init__` files: about 0.2 s and 35 MB.
"""

import os
import pickle
import queue
import select
import subprocess
import sys
import weakref

import keras_cbm

# The worker's program. `keras_cbm`, `keras_cbm.data` and
# `keras_cbm.data.video` become bare packages, so that only the submodules a
# call names are imported.
_WORKER = """
import pickle, sys, types
for name, path in {packages!r}:
    package = types.ModuleType(name)
    package.__path__ = [path]
    sys.modules[name] = package
calls, replies = sys.stdin.buffer, sys.stdout.buffer
sys.stdout = sys.stderr  # What a call prints must not enter the replies.
while True:
    try:
        function, args = pickle.load(calls)
    except EOFError:
        break
    try:
        reply = (True, function(*args))
    except Exception as error:
        reply = (False, error)
    try:
        data = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
    except Exception:
        data = pickle.dumps((False, RuntimeError(repr(reply[1]))))
    replies.write(data)
    replies.flush()
"""


class DecodingProcesses:
    """Worker processes that run picklable calls, started as needed.

    A call takes an idle worker (or starts one, up to `size`), waits for
    its reply and gives it back; calls from several threads run in
    parallel. A worker that crashes, or does not answer within `timeout`
    seconds (a decoder stuck on a broken file), is stopped and replaced at
    the next call, and the call raises: a training loop never hangs on
    one. The workers end when the pool is collected or the program exits
    (and if it is killed: their pipe closes).

    Args:
        size: The most processes (default: one per CPU this process may
            run on, `os.sched_getaffinity`, which a container's or
            `taskset`'s CPU limit sets, where `os.cpu_count` counts the
            machine's).
        timeout: The most seconds a call may take.

    Example:

    >>> import operator
    >>> DecodingProcesses(size=1).run(operator.add, 1, 2)
    3
    """

    def __init__(self, size=None, timeout=600):
        self.size = size or usable_cpus()
        self.timeout = timeout
        # `None` stands for a worker not started yet.
        self._idle = queue.LifoQueue()
        for _ in range(self.size):
            self._idle.put(None)
        self._workers = set()
        weakref.finalize(self, _stop_workers, self._workers)

    def run(self, function, *args):
        """Returns `function(*args)` computed in a worker; what it raises
        is raised here. `function` must live in `keras_cbm.data` or
        outside `keras_cbm`, and it and `args` must pickle.

        Raises:
            RuntimeError: when the worker ended during the call.
            TimeoutError: when it did not answer within `timeout` seconds
                (it is stopped).
        """
        worker = self._idle.get()
        if worker is None:
            try:
                worker = _start_worker()
            except BaseException:
                self._idle.put(None)  # Its place stays for another try.
                raise
            self._workers.add(worker)
        try:
            worker.stdin.write(pickle.dumps((function, args)))
            worker.stdin.flush()
            # A reply, once it starts, comes whole: waiting for its first
            # byte bounds the call.
            answered, _, _ = select.select(
                [worker.stdout], [], [], self.timeout
            )
            if answered:
                succeeded, result = pickle.load(worker.stdout)
        except (OSError, EOFError, pickle.UnpicklingError) as error:
            try:  # Its pipe closed as it ended: it is about to exit.
                exit_code = worker.wait(timeout=1)
            except subprocess.TimeoutExpired:
                exit_code = None
            self._discard(worker)
            raise RuntimeError(
                f"A video decoding process ended during a call of "
                f"{function.__qualname__} (exit code {exit_code})."
            ) from error
        except BaseException:
            self._discard(worker)  # Interrupted mid-call: out of step.
            raise
        if not answered:
            self._discard(worker)
            raise TimeoutError(
                f"A video decoding process did not answer a call of "
                f"{function.__qualname__} within {self.timeout} s; it was "
                "stopped."
            )
        self._idle.put(worker)
        if not succeeded:
            raise result
        return result

    def _discard(self, worker):
        self._workers.discard(worker)
        _stop_workers([worker])
        self._idle.put(None)


def usable_cpus():
    """The CPUs this process may run on (`os.cpu_count` where the system
    cannot say)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # Not on Linux.
        return os.cpu_count() or 1


def _stop_workers(workers):
    for worker in workers:
        worker.kill()
        worker.wait()
        worker.stdin.close()
        worker.stdout.close()


def _start_worker():
    root = os.path.dirname(os.path.abspath(keras_cbm.__file__))
    packages = [
        ("keras_cbm", root),
        ("keras_cbm.data", os.path.join(root, "data")),
        ("keras_cbm.data.video", os.path.join(root, "data", "video")),
    ]
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER.format(packages=packages)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
