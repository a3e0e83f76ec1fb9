"""Property-based tests of the clip pipelines' integer arguments: Python
ints, NumPy integers, 0-d arrays and scalar tensors give the same clips;
anything else is refused at the call, naming the argument."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_cbm import data
from keras_cbm.data.arguments import check_integer

SETTINGS = dict(derandomize=True, deadline=None, database=None)
INTEGER_TYPES = [
    int,
    np.int8,
    np.int32,
    np.int64,
    np.uint16,
    np.array,
    lambda value: tf.constant(value, "int64"),
]


def videos(frames=(5, 9)):
    """Videos of `frames` frames whose pixel is their frame index."""
    dataset = None
    for label, count in enumerate(frames):
        video = tf.data.Dataset.from_tensors(
            {"video": tf.reshape(tf.range(count), (count, 1)), "label": label}
        )
        dataset = video if dataset is None else dataset.concatenate(video)
    return dataset


def first_clips(dataset):
    return [
        {key: value.numpy() for key, value in inputs.items()}
        for inputs, _ in dataset
    ]


@settings(max_examples=10, **SETTINGS)
@given(
    to_type=st.sampled_from(INTEGER_TYPES),
    clips_per_video=st.integers(1, 3),
    min_length=st.integers(1, 4),
    extra_length=st.integers(0, 3),
    frame_stride=st.integers(1, 2),
    draws=st.data(),
)
def test_overlapping_clips_take_any_integer_type(
    to_type, clips_per_video, min_length, extra_length, frame_stride, draws
):
    min_overlap = draws.draw(st.integers(0, min_length - 1))
    arguments = (clips_per_video, min_length, min_length + extra_length)
    options = dict(min_overlap=min_overlap, frame_stride=frame_stride)

    def clips(convert):
        return first_clips(
            data.overlapping_clips(
                videos(),
                *map(convert, arguments),
                **{key: convert(value) for key, value in options.items()},
                seed=0,
            )
        )

    for got, want in zip(clips(to_type), clips(int), strict=True):
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


@settings(max_examples=10, **SETTINGS)
@given(
    to_type=st.sampled_from(INTEGER_TYPES),
    clip_length=st.integers(1, 5),
    frame_stride=st.integers(1, 2),
    draws=st.data(),
)
def test_uniform_clips_take_any_integer_type(
    to_type, clip_length, frame_stride, draws
):
    stride = draws.draw(st.integers(1, clip_length))

    def clips(convert):
        return first_clips(
            data.uniform_clips(
                videos(),
                convert(clip_length),
                convert(stride),
                frame_stride=convert(frame_stride),
            )
        )

    for got, want in zip(clips(to_type), clips(int), strict=True):
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


@settings(max_examples=30, **SETTINGS)
@given(
    value=st.one_of(
        st.integers(-3, 3),
        st.floats(-3, 3),
        st.booleans(),
        st.text(max_size=2),
        st.none(),
    ),
    to_type=st.sampled_from(INTEGER_TYPES),
)
def test_check_integer_accepts_exactly_the_integers_in_bounds(value, to_type):
    if isinstance(value, int) and not isinstance(value, bool):
        value = to_type(value)
    is_integer = not isinstance(value, (bool, float, str, type(None)))
    if is_integer and 1 <= int(value) <= 2:
        result = check_integer("stride", value, 1, 2)
        assert result == int(value) and type(result) is int
    else:
        with pytest.raises(ValueError, match=r"`stride` must be an integer"):
            check_integer("stride", value, 1, 2)
