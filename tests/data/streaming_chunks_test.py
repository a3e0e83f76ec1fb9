"""`streaming_chunks` and `video_chunks_from_directory`: each row plays its
videos one after another, chunk by chunk, in order; the padding, flags,
ids, skipping and planned count; the wrong uses they refuse."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_cbm.data import streaming_chunks
from keras_cbm.data import video_chunks_from_directory
from keras_cbm.data.stream_schedule import count_batches
from keras_cbm.data.stream_schedule import lane_schedule
from keras_cbm.data.video.video_reader import read_video
from tests.data.video.index_videos import frame_indices
from tests.data.video.index_videos import write_video
from tests.data.videos import collect
from tests.data.videos import counting_videos

LENGTHS = [5, 2, 3, 4]


def rows(batches):
    """Per row, the frames it played (padding dropped, the frame index
    from the pixel) with each chunk's flags, over all batches."""
    played = {}
    for inputs, labels in batches:
        for row in range(len(labels)):
            valid = inputs["frame_weights"][row] > 0
            played.setdefault(row, []).append(
                (
                    int(inputs["video_id"][row]),
                    int(inputs["chunk_index"][row]),
                    bool(inputs["new_video"][row]),
                    inputs["video"][row, valid, 0, 0, 0].tolist(),
                    int(labels[row]),
                )
            )
    return played


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_rows_play_their_videos_chunk_by_chunk(drop_remainder):
    batches = collect(
        streaming_chunks(
            counting_videos(LENGTHS), 2, 2, drop_remainder=drop_remainder
        )
    )
    # Row 0 plays video 0 (5 frames: 3 chunks); row 1 plays video 1 (one
    # chunk), then video 2 (2 chunks) and then wants another.
    expected = {
        0: [
            (0, 0, True, [0, 1], 5),
            (0, 1, False, [2, 3], 5),
            (0, 2, False, [4], 5),
        ],
        1: [
            (1, 0, True, [0, 1], 2),
            (2, 0, True, [0, 1], 3),
            (2, 1, False, [2], 3),
        ],
    }
    if not drop_remainder:
        # Video 3 goes to row 0 (free first); row 1 is idle meanwhile.
        expected[0] += [(3, 0, True, [0, 1], 4), (3, 1, False, [2, 3], 4)]
        expected[1] += [(-1, 0, True, [], 0), (-1, 0, True, [], 0)]
    assert rows(batches) == expected
    inputs, labels = batches[2]
    assert inputs["video"].shape == (2, 2, 3, 2, 1)
    # Padding: zero frames of weight 0.
    np.testing.assert_array_equal(inputs["frame_weights"], [[1, 0], [1, 0]])
    assert inputs["video"][:, 1].max() == 0
    assert inputs["new_video"].dtype == np.bool_
    assert inputs["chunk_index"].dtype == np.int32
    assert inputs["video_id"].dtype == np.int32


def test_planned_count_is_the_batches():
    for drop_remainder in (True, False):
        for batch_size, chunk_length in ((1, 1), (2, 2), (3, 2)):
            stream = streaming_chunks(
                counting_videos(LENGTHS),
                batch_size,
                chunk_length,
                drop_remainder=drop_remainder,
            )
            count = len(collect(stream))
            assert int(stream.cardinality()) == count
            assert (
                count_batches(LENGTHS, batch_size, chunk_length, drop_remainder)
                == count
            )


def test_lane_schedule_takes_videos_as_lanes_free():
    class Video:
        def __init__(self, length):
            self.length = length

    plan = lane_schedule([Video(n) for n in (2, 6, 2, 2)], 2, 2)
    assert [[(row[0].length, row[1]) for row in batch] for batch in plan] == [
        [(2, 0), (6, 0)],
        [(2, 0), (6, 2)],
        [(2, 0), (6, 4)],
    ]


def test_targets_weight_the_videos_last_frames():
    (first, _), (second, _) = collect(
        streaming_chunks(counting_videos([4]), 1, 2, targets=("last", 1))
    )
    np.testing.assert_array_equal(first["frame_weights"], [[0, 0]])
    np.testing.assert_array_equal(second["frame_weights"], [[0, 1]])


def test_a_pass_skips_the_batches_its_position_says():
    stream = streaming_chunks(counting_videos(LENGTHS), 2, 2)
    everything = collect(stream)
    stream.stream_position.skip_batches = 2
    skipped = collect(stream)
    assert len(skipped) == len(everything) - 2
    for (got, _), (expected, _) in zip(skipped, everything[2:], strict=True):
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])


def test_wrong_uses_are_named():
    videos = counting_videos(LENGTHS)
    with pytest.raises(ValueError, match="`chunk_length` must be an integer"):
        streaming_chunks(videos, 2, 0)
    with pytest.raises(ValueError, match="`batch_size` must be an integer"):
        streaming_chunks(videos, 0, 2)
    with pytest.raises(ValueError, match="`targets` must be"):
        streaming_chunks(videos, 2, 2, targets=("last", 0))
    with pytest.raises(ValueError, match="every video has 3 frames"):
        static = tf.data.Dataset.from_tensor_slices(
            {"video": np.zeros((2, 3, 1), "float32"), "label": [0, 1]}
        )
        streaming_chunks(static, 1, 4)
    # A video's length known only when it is read.
    with pytest.raises(Exception, match="video 1 has 2 frames"):
        collect(streaming_chunks(videos, 1, 3))


@pytest.fixture
def index_cache(tmp_path, monkeypatch):
    """Frame indices are cached in the test's own folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


FILES = {"a/1.mp4": 7, "a/2.avi": 4, "b/3.mp4": 9}


@pytest.fixture
def video_dir(tmp_path, index_cache):
    for name, num_frames in FILES.items():
        write_video(str(tmp_path / "videos" / name), num_frames)
    return str(tmp_path / "videos")


def test_files_stream_their_frames_in_order(video_dir):
    stream = video_chunks_from_directory(
        video_dir,
        2,
        3,
        drop_remainder=False,
        color_mode="grayscale",
        seed=0,
    )
    batches = collect(stream)
    assert int(stream.cardinality()) == len(batches)
    assert stream.class_names == ["a", "b"]
    inputs = batches[0][0]
    assert inputs["video"].shape == (2, 3, 32, 32, 1)
    assert inputs["video"].dtype == np.uint8
    played = {}  # video id -> its frames, in the order played.
    for inputs, labels in batches:
        for row in range(2):
            video_id = int(inputs["video_id"][row])
            if video_id < 0:
                continue
            valid = inputs["frame_weights"][row] > 0
            played.setdefault(video_id, []).append(inputs["video"][row, valid])
            name = os.path.relpath(stream.file_paths[video_id], video_dir)
            assert stream.class_names[labels[row]] == name.split(os.sep)[0]
    assert len(played) == len(FILES)
    for video_id, chunks in played.items():
        path = stream.file_paths[video_id]
        frames = np.concatenate(chunks)
        name = os.path.relpath(path, video_dir).replace(os.sep, "/")
        np.testing.assert_array_equal(
            frame_indices(frames), np.arange(FILES[name])
        )
        # The same pixels as one decode of the whole file.
        np.testing.assert_array_equal(frames, read_video(path, "grayscale"))


def test_files_play_one_order_per_epoch(video_dir):
    stream = video_chunks_from_directory(video_dir, 1, 4, seed=3)

    def order():
        ids = [int(inputs["video_id"][0]) for inputs, _ in collect(stream)]
        return list(dict.fromkeys(ids))

    first, second = order(), order()
    stream.stream_position.epoch = 0
    assert order() == first
    stream.stream_position.epoch = 1
    assert order() == second
    assert sorted(first) == [0, 1, 2]


def test_files_shorter_than_a_chunk_are_named(video_dir):
    with pytest.raises(ValueError, match=r"2.avi' \(4 frames\)"):
        video_chunks_from_directory(video_dir, 1, 5)
