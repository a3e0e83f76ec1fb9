import itertools

import numpy as np
import pytest

from keras_cbm.data import padded_window_batch
from keras_cbm.data import uniform_clips
from tests.data.videos import assert_frames_match_alignment
from tests.data.videos import clip_frames
from tests.data.videos import collect
from tests.data.videos import counting_videos

LENGTHS = [1, 7, 8, 9, 16, 17, 40, 101]


@pytest.mark.parametrize("stride", [1, 3, 8])
@pytest.mark.parametrize("frame_stride", [1, 2])
def test_windows_cover_every_frame_and_overlap_by_length_minus_stride(
    stride, frame_stride
):
    clip_length = 8
    windows = uniform_clips(
        counting_videos(LENGTHS), clip_length, stride, frame_stride
    )
    for (inputs, label), num_frames in zip(
        collect(windows), LENGTHS, strict=True
    ):
        assert label == num_frames
        assert_frames_match_alignment(inputs)
        frames = [clip_frames(row) for row in inputs["alignment"]]
        assert set().union(*frames) == set(range(0, num_frames, frame_stride))
        for previous, current in itertools.pairwise(frames):
            assert len(previous & current) == clip_length - stride
        # No window more than needed: all but the last end inside the video.
        assert inputs["mask"][:-1].all()
        starts = inputs["alignment"][:, 0]
        np.testing.assert_array_equal(np.diff(starts), stride * frame_stride)


def test_video_id_is_the_id_feature_or_the_position():
    by_position = collect(uniform_clips(counting_videos([5, 9]), 4, 2))
    assert [inputs["video_id"] for inputs, _ in by_position] == [0, 1]
    by_feature = collect(
        uniform_clips(counting_videos([5, 9], ids=["a", "b"]), 4, 2)
    )
    assert [inputs["video_id"] for inputs, _ in by_feature] == [b"a", b"b"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            dict(clip_length=0),
            "`clip_length` must be an integer >= 1; received clip_length=0",
        ),
        (
            dict(stride=9),
            "`stride` must be an integer in [1, 8 (clip_length)]; "
            "received stride=9",
        ),
        (
            dict(stride=0),
            "`stride` must be an integer in [1, 8 (clip_length)]; "
            "received stride=0",
        ),
        (
            dict(frame_stride=0),
            "`frame_stride` must be an integer >= 1; received frame_stride=0",
        ),
        (
            dict(label_key="class"),
            "`label_key` must name a feature of `dataset`, one of "
            "['label', 'video']; received label_key='class'",
        ),
    ],
)
def test_invalid_arguments_raise_naming_them(arguments, message):
    valid = dict(clip_length=8, stride=4)
    with pytest.raises(ValueError) as error:
        uniform_clips(counting_videos([10]), **{**valid, **arguments})
    assert message in str(error.value)


def test_padded_window_batch_masks_the_padding_windows():
    videos = counting_videos([5, 40])
    windows = uniform_clips(videos, 8, 4)
    ((inputs, labels),) = collect(padded_window_batch(windows, 2))
    unbatched = collect(windows)
    assert inputs["alignment"].shape == (2, 9, 8)
    # The short video's windows come first; the rest is masked padding.
    count = len(unbatched[0][0]["alignment"])
    np.testing.assert_array_equal(
        inputs["alignment"][0, :count], unbatched[0][0]["alignment"]
    )
    assert (inputs["alignment"][0, count:] == -1).all()
    assert not inputs["mask"][0, count:].any()
    assert (inputs["clips"][0, count:] == 0).all()
    np.testing.assert_array_equal(labels, [5, 40])
    with pytest.raises(ValueError, match="`batch_size` must be an integer"):
        padded_window_batch(windows, 0)
