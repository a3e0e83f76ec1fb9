import concurrent.futures
import os
import sys

import numpy as np
import pytest

from keras_cbm.data.video.decoding_processes import DecodingProcesses
from keras_cbm.data.video.video_index import VideoFileError
from keras_cbm.data.video.video_reader import read_frames
from keras_cbm.data.video.video_reader import read_video
from tests.data.video.index_videos import write_video

# Evaluated in a worker: the modules of Keras and TensorFlow it imported.
HEAVY_MODULES = (
    "sorted(m for m in __import__('sys').modules"
    " if m.split('.')[0] in ('keras', 'tensorflow', 'jax'))"
)


@pytest.fixture(scope="module")
def processes():
    return DecodingProcesses(size=2)


def test_frames_decoded_in_a_worker_equal_frames_decoded_here(
    processes, tmp_path
):
    path = write_video(str(tmp_path / "a.mp4"), 20)
    indices = np.array([2, 3, 11, 19])
    np.testing.assert_array_equal(
        processes.run(read_frames, path, indices, "rgb"),
        read_frames(path, indices, "rgb"),
    )
    np.testing.assert_array_equal(
        processes.run(read_video, path, "grayscale"),
        read_video(path, "grayscale"),
    )


def test_workers_import_neither_keras_nor_tensorflow(processes, tmp_path):
    path = write_video(str(tmp_path / "a.mp4"), 4)
    processes.run(read_frames, path, np.array([1]), "rgb")
    assert processes.run(eval, HEAVY_MODULES) == []


def test_an_error_comes_back_with_the_file_and_the_reason(processes):
    with pytest.raises(VideoFileError, match="no_such_file.mp4") as error:
        processes.run(read_video, "no_such_file.mp4", "rgb")
    assert error.value.path == "no_such_file.mp4"
    assert "No such file" in error.value.reason
    assert processes.run(eval, "1 + 1") == 2  # The worker goes on.


def test_what_a_call_prints_does_not_disturb_its_reply(processes):
    assert processes.run(print, "a line a reader might print") is None
    assert processes.run(eval, "'still in step'") == "still in step"


def test_a_worker_that_dies_is_an_error_and_is_replaced():
    processes = DecodingProcesses(size=1)
    with pytest.raises(
        RuntimeError, match=r"ended during a call of _exit \(exit code 3\)"
    ):
        processes.run(os._exit, 3)
    assert processes.run(eval, "2 * 21") == 42


def test_calls_from_several_threads_run_in_separate_workers(processes):
    with concurrent.futures.ThreadPoolExecutor(4) as threads:
        pids = set(
            threads.map(
                lambda _: processes.run(eval, "__import__('os').getpid()"),
                range(40),
            )
        )
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= processes.size


def test_a_worker_that_cannot_start_leaves_its_place(monkeypatch):
    processes = DecodingProcesses(size=1)
    monkeypatch.setattr(sys, "executable", "/no/such/python")
    for _ in range(2):  # Not blocked by the failed start.
        with pytest.raises(OSError):
            processes.run(eval, "1")
    monkeypatch.undo()
    assert processes.run(eval, "1") == 1
