"""Which files a directory dataset reads, and the errors its arguments
get: regular files only, a report by file with reasons, `file_paths`
exactly the files used, Keras-style argument errors."""

import os
import pathlib
import threading
import warnings

import numpy as np
import pytest

from keras_cbm.data import video_clips_from_directory
from keras_cbm.data import video_dataset_from_directory
from keras_cbm.data.video.decode_errors import DecodeErrors
from keras_cbm.data.video.decoding_processes import DecodingProcesses
from keras_cbm.data.video.video_index import VideoFileError
from tests.data.video.index_videos import write_video


@pytest.fixture(autouse=True)
def index_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@pytest.fixture()
def video_dir(tmp_path):
    root = tmp_path / "videos"
    for name in ("a/1.mp4", "a/2.avi", "b/3.mp4", "b/4.avi"):
        write_video(str(root / name), 6)
    return root


def test_a_named_pipe_with_a_video_name_is_reported_not_opened(video_dir):
    os.mkfifo(video_dir / "a" / "pipe.mp4")
    result = {}

    def make():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result["videos"] = video_dataset_from_directory(
                str(video_dir), on_error="skip", shuffle=False
            )
        result["messages"] = [str(warning.message) for warning in caught]

    # Opening a pipe blocks until a writer comes: run where a hang shows.
    thread = threading.Thread(target=make, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "dataset creation hung on a named pipe"
    (message,) = result["messages"]
    assert "Skipped 1 of 5" in message
    pipe = f"{video_dir / 'a' / 'pipe.mp4'} (not a regular file: a named pipe)"
    assert pipe in message
    assert "pipe.mp4" not in " ".join(result["videos"].file_paths)
    with pytest.raises(ValueError, match="a named pipe"):
        video_dataset_from_directory(str(video_dir))


def test_file_paths_are_the_files_used_and_the_report_names_each(
    video_dir,
):
    (video_dir / "a" / "5.mp4").write_bytes(b"\xff\xd8 not a video")
    (video_dir / "b" / "6.mkv").write_bytes(b"")
    with pytest.warns(UserWarning) as caught:
        clips = video_clips_from_directory(
            str(video_dir), 2, 2, 3, on_error="skip", shuffle=False
        )
    (message,) = [str(warning.message) for warning in caught]
    assert message.startswith("Skipped 2 of 6 video files")
    assert str(video_dir / "a" / "5.mp4") + " (" in message
    assert str(video_dir / "b" / "6.mkv") + " (" in message
    assert [os.path.relpath(p, video_dir) for p in clips.file_paths] == [
        "a/1.mp4",
        "a/2.avi",
        "b/3.mp4",
        "b/4.avi",
    ]


def test_a_split_too_small_for_one_validation_file_says_so(video_dir):
    with pytest.raises(ValueError) as error:
        video_dataset_from_directory(
            str(video_dir), validation_split=0.2, subset="both", seed=1
        )
    message = str(error.value)
    assert "`validation_split` must leave at least one file" in message
    assert "0.2 of 4 readable file(s)" in message
    assert "Received: validation_split=0.2" in message


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            {"labels": np.array([0.5, 1, 0, 1])},
            '`labels` must be "inferred" or a list, tuple or 1-D array of '
            "integer labels",
        ),
        ({"labels": "folders"}, "`labels` must be"),
        ({"seed": "abc"}, "`seed` must be None or an integer. Received: "),
        ({"class_names": ["a", "a"]}, "`class_names` must name each class"),
        ({"class_names": "ab"}, "`class_names` must be None or a list"),
        ({"validation_split": "0.5", "subset": "both", "seed": 1}, "float"),
        ({"frame_size": (True, 4)}, "`frame_size` must be None or"),
        ({"on_error": ["skip"]}, "`on_error` must be one of"),
    ],
)
def test_bad_arguments_are_named_with_what_was_received(
    video_dir, arguments, message
):
    with pytest.raises(ValueError) as error:
        video_dataset_from_directory(str(video_dir), **arguments)
    assert message in str(error.value)
    assert "Received:" in str(error.value)


def test_a_bytes_directory_is_refused_and_a_path_object_read(video_dir):
    with pytest.raises(ValueError, match="`directory` must be the path"):
        video_dataset_from_directory(os.fsencode(video_dir))
    videos = video_dataset_from_directory(
        pathlib.Path(video_dir), shuffle=False
    )
    assert videos.file_paths[0] == str(video_dir / "a" / "1.mp4")


def test_labels_as_an_array_and_numpy_seeds_are_accepted(video_dir):
    videos = video_dataset_from_directory(
        str(video_dir), labels=np.array([3, 2, 1, 0]), seed=np.int64(4)
    )
    labels = {
        os.path.basename(videos.file_paths[e["video_id"]]): int(e["label"])
        for e in videos.as_numpy_iterator()
    }
    assert labels == {"1.mp4": 3, "2.avi": 2, "3.mp4": 1, "4.avi": 0}


@pytest.mark.parametrize(
    "failure",
    [
        TimeoutError("did not answer"),
        RuntimeError("ended during a call"),
        ValueError("all input arrays must have the same shape"),
    ],
)
def test_any_decoding_failure_names_the_file_or_is_skipped_once(failure):
    def read(path):
        raise failure

    with pytest.raises(VideoFileError, match=r"'x\.mp4'.*" + str(failure)):
        DecodeErrors("raise", 3).guard(read)(b"x.mp4")
    errors = DecodeErrors("skip", 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in (b"x.mp4", b"y.mp4", b"x.mp4", b"x.mp4"):
            assert errors.guard(read)(path).shape == (0, 1, 1, 3)
    assert errors.skipped == {"x.mp4", "y.mp4"}
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 2
    assert "'x.mp4' (1 so far" in messages[0]
    assert "'y.mp4' (2 so far" in messages[1]


def test_a_hung_decoding_process_is_stopped_and_replaced():
    processes = DecodingProcesses(size=1)
    first = processes.run(os.getpid)
    # Short only for the call that hangs: a loaded machine may take longer
    # to start a worker.
    processes.timeout = 0.5
    with pytest.raises(TimeoutError, match="did not answer a call of sleep"):
        processes.run(__import__("time").sleep, 30)
    processes.timeout = 600
    second = processes.run(os.getpid)
    assert second != first


def test_the_pool_has_one_process_per_cpu_this_process_may_use(
    monkeypatch,
):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5}, False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert DecodingProcesses().size == 2
