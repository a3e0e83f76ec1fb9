"""`overlapping_clips(..., placement="weighted")`: clip ends drawn by the
frames' target weights."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_cbm.data import overlapping_clips
from keras_cbm.training import FrameTargets


def videos(lengths, weights=None):
    elements = {
        "video": tf.ragged.constant(
            [np.zeros((n, 1), "uint8") for n in lengths], ragged_rank=1
        ),
        "label": list(range(len(lengths))),
    }
    if weights is not None:
        elements["frame_weights"] = tf.ragged.constant(weights)
    return tf.data.Dataset.from_tensor_slices(elements).map(
        lambda e: {k: v.to_tensor() if hasattr(v, "to_tensor") else v
                   for k, v in e.items()}
    )


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    length=st.integers(1, 60),
    clips=st.integers(1, 5),
    min_length=st.integers(2, 8),
    extra=st.integers(0, 8),
    last=st.integers(1, 10),
    seed=st.integers(0, 2**16),
)
def test_weighted_clips_end_on_target_frames(
    length, clips, min_length, extra, last, seed
):
    clipped = overlapping_clips(
        videos([length]),
        clips,
        min_length,
        min_length + extra,
        seed=seed,
        targets=FrameTargets(last=last),
        placement="weighted",
    )
    inputs, _ = next(iter(clipped))
    ends = inputs["alignment"].numpy().max(axis=1)
    assert (ends >= length - last).all(), (ends, length, last)
    # Every clip holds a target frame, so weights are where clips are.
    assert (inputs["frame_weights"].numpy().max(axis=1) == 1).all()


def test_uniform_placement_spreads_the_same_clips_anywhere():
    uniform = overlapping_clips(
        videos([60]), 5, 4, 8, seed=3, targets=FrameTargets(last=4)
    )
    inputs, _ = next(iter(uniform))
    # The default placement ignores the targets: most clips miss them.
    assert (inputs["alignment"].numpy().max(axis=1) < 56).any()


def test_equal_weights_give_the_uniform_placement():
    results = [
        next(iter(overlapping_clips(
            videos([50, 33]).map(lambda e: {**e, "frame_weights": tf.ones(
                tf.shape(e["video"])[:1])}),
            4, 3, 9, seed=5, targets=targets, placement=placement,
        ).batch(2)))[0]["alignment"].numpy()
        for targets, placement in (
            ("all", "uniform"), ("all", "weighted"), ("given", "weighted"),
        )
    ]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_given_weights_place_clip_ends():
    weights = np.zeros(40, "float32")
    weights[[10, 11, 30]] = 1.0
    dataset = videos([40]).map(
        lambda e: {**e, "frame_weights": tf.constant(weights)}
    )
    ends = np.concatenate([
        inputs["alignment"].numpy().max(axis=1)
        for seed in range(5)
        for inputs, _ in overlapping_clips(
            dataset, 3, 5, 5, min_overlap=4, seed=seed, targets="given",
            placement="weighted",
        ).take(1)
    ])
    assert set(ends.tolist()) <= {10, 11, 30}


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"placement": "last"}, r"`placement` must be one of \('uniform', "
         r"'weighted'\). Received: placement='last'"),
        ({"placement": "weighted"}, r"`targets` must be given .* "
         r"Received: targets=None"),
    ],
)
def test_placement_is_checked(arguments, message):
    with pytest.raises(ValueError, match=message):
        overlapping_clips(videos([10]), 2, 2, 4, **arguments)


def test_uniform_clips_take_targets_and_past():
    from keras_cbm.data import uniform_clips

    dataset = tf.data.Dataset.from_tensors(
        {"video": tf.reshape(tf.range(20, dtype="int32"), (20, 1)),
         "label": 0}
    )
    inputs, _ = next(iter(uniform_clips(
        dataset, 8, 6, targets=FrameTargets(last=5), past_length=16
    )))
    alignment = inputs["alignment"].numpy()
    assert alignment.shape == (3, 8)
    np.testing.assert_array_equal(
        inputs["frame_weights"].numpy(), alignment >= 15
    )
    # The past: every frame before the last window's start (12), padded.
    np.testing.assert_array_equal(
        inputs["past_alignment"].numpy(), list(range(12)) + [-1] * 4
    )
    np.testing.assert_array_equal(
        inputs["past"].numpy()[:12, 0], np.arange(12)
    )
    assert inputs["past"].shape == (16, 1)
