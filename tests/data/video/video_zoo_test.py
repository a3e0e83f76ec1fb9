"""Every file of the generated zoo (`video_zoo`) gives exactly the frames of
its sequential decode, at random positions, in clips and whole, or is
refused when the dataset is made, named with its reason."""

import os
import shutil
import warnings

import numpy as np
import pytest

from keras_cbm.data import video_clips_from_directory
from keras_cbm.data import video_dataset_from_directory
from keras_cbm.data.video import video_reader
from keras_cbm.data.video.video_index import VideoFileError
from keras_cbm.data.video.video_index import frame_index
from keras_cbm.data.video.video_reader import read_frames
from keras_cbm.data.video.video_reader import read_video
from tests.data.video.video_zoo import NUM_FRAMES
from tests.data.video.video_zoo import ZOO
from tests.data.video.video_zoo import build_zoo
from tests.data.video.video_zoo import expected_frames
from tests.data.videos import collect

READABLE = sorted(name for name, video in ZOO.items() if not video.refused)
REFUSED = sorted(name for name, video in ZOO.items() if video.refused)
# Files whose timestamps cannot say the decode order, and why.
SEQUENTIAL = {
    "h264.avi": "out of timestamp order",
    "repeated_timestamps.mkv": "repeat",
    "repeated_timestamps.webm": "repeat",
    "restarting.mpg": "restart",
    "restarting.ts": "restart",
}
REASONS = {
    "truncated": "truncated|no video stream",
    "image": "still image",
    "empty": "Invalid data",
    "noise": "Invalid data",
    "audio": r"no video stream \(only audio\)",
}


@pytest.fixture(autouse=True)
def index_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """The zoo in one class folder, and every readable file's frames."""
    root = tmp_path_factory.mktemp("zoo")
    paths = build_zoo(str(root / "all"))
    expected = {
        name: expected_frames(paths[name], ZOO[name]) for name in READABLE
    }
    return str(root), paths, expected


def test_the_zoo_is_large_and_varied():
    assert len(ZOO) >= 30
    codecs = {video.codec for video in ZOO.values()}
    extensions = {name.rsplit(".", 1)[1] for name in ZOO}
    assert len(codecs) >= 8 and len(extensions) >= 8


@pytest.mark.parametrize("name", READABLE)
def test_frames_at_random_positions_are_the_sequential_decode(zoo, name):
    _, paths, expected = zoo
    frames = expected[name]
    assert len(frames) == frame_index(paths[name]).num_frames == NUM_FRAMES
    rng = np.random.default_rng(list(name.encode()))
    for _ in range(6):
        wanted = np.sort(
            rng.choice(NUM_FRAMES, rng.integers(1, 5), replace=False)
        )
        np.testing.assert_array_equal(
            read_frames(paths[name], wanted), frames[wanted], err_msg=name
        )
    np.testing.assert_array_equal(read_video(paths[name]), frames)


@pytest.mark.parametrize("name", READABLE)
def test_files_whose_timestamps_mislead_are_read_from_their_start(zoo, name):
    reason = frame_index(zoo[1][name]).sequential
    if name in SEQUENTIAL:
        assert SEQUENTIAL[name] in reason
    else:
        assert reason == ""


@pytest.mark.parametrize("name", REFUSED)
def test_refused_files_are_named_with_their_reason(zoo, name):
    with pytest.raises(VideoFileError, match=REASONS[ZOO[name].refused]):
        frame_index(zoo[1][name])


def test_clips_of_the_whole_zoo_show_the_sequential_decode(zoo):
    root, paths, expected = zoo
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips = video_clips_from_directory(
            root,
            clips_per_video=2,
            min_length=2,
            max_length=5,
            min_overlap=1,
            frame_stride=2,
            on_error="skip",
            seed=0,
        )
    messages = [str(warning.message) for warning in caught]
    skipped = next(m for m in messages if m.startswith("Skipped"))
    assert f"Skipped {len(REFUSED)} of {len(ZOO)}" in skipped
    for name in REFUSED:
        assert paths[name] in skipped
    sequential = next(m for m in messages if "from their start" in m)
    assert all(paths[name] in sequential for name in SEQUENTIAL)
    assert sorted(clips.file_paths) == sorted(paths[n] for n in READABLE)
    seen = set()
    for inputs, _ in collect(clips):
        name = os.path.basename(clips.file_paths[inputs["video_id"]])
        seen.add(name)
        mask, alignment = inputs["mask"], inputs["alignment"]
        np.testing.assert_array_equal(
            inputs["clips"][mask], expected[name][alignment[mask]], name
        )
    assert seen == set(READABLE)


def test_rotation_comes_before_frame_size_and_can_be_ignored(zoo, tmp_path):
    _, paths, expected = zoo
    shutil.copy(paths["portrait.mp4"], tmp_path / "portrait.mp4")
    os.makedirs(tmp_path / "ignored")
    (videos,) = collect(
        video_dataset_from_directory(
            str(tmp_path), labels=[0], frame_size=(32, 16)
        )
    )
    assert expected["portrait.mp4"].shape == (NUM_FRAMES, 32, 16, 3)
    np.testing.assert_array_equal(videos["video"], expected["portrait.mp4"])
    stored = read_video(paths["portrait.mp4"], apply_rotation=False)
    np.testing.assert_array_equal(
        np.rot90(stored, -1, axes=(1, 2)), expected["portrait.mp4"]
    )


def test_av1_seeks_decode_every_frame(zoo, monkeypatch):
    # libdav1d opened while skipping non-reference frames never outputs
    # one again: seeks into AV1 must not skip.
    monkeypatch.setattr(video_reader, "SEEK_AFTER_FRAMES", 0)
    _, paths, expected = zoo
    for name in ("av1.mp4", "av1.webm", "av1.mkv"):
        assert len(frame_index(paths[name]).keyframes) == 1
        for wanted in ([1, 2, 3], [5, 9], [10, 11]):
            np.testing.assert_array_equal(
                read_frames(paths[name], wanted), expected[name][wanted]
            )


def test_a_size_change_scales_to_the_first_frame_size(zoo):
    _, paths, expected = zoo
    for name in ("resized.webm", "resized.ts"):
        frames = read_video(paths[name])
        assert frames.shape == (NUM_FRAMES, 32, 32, 3)
        np.testing.assert_array_equal(frames, expected[name])
