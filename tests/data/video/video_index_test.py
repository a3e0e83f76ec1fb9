"""Property-based tests of when a file's timestamps identify its frames:
any reordering within groups of pictures is trusted; timestamps that
restart or repeat are not."""

import numpy as np
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_cbm.data.video.video_index import timestamp_fault

SETTINGS = dict(derandomize=True, deadline=None, database=None)


@st.composite
def decode_order(draw):
    """Timestamps in decode order as encoders write them, with each
    frame's `(is_keyframe, pts, dts)`: groups of pictures, each a keyframe
    then its other frames in any order; an open group's leading frames are
    shown before its keyframe, after the previous group's."""
    sizes = draw(st.lists(st.integers(1, 8), min_size=1, max_size=6))
    timestamps, keyframe_flags, start = [], [], 0
    for size in sizes:
        shown = list(range(start, start + size))
        leading = draw(st.integers(0, size - 1)) if timestamps else 0
        others = shown[:leading] + shown[leading + 1 :]
        order = draw(st.permutations(others))
        timestamps += [shown[leading], *order]
        keyframe_flags += [1] + [0] * len(order)
        start += size
    timestamps = np.array(timestamps, "int64") * 512
    packets = np.stack(
        [np.array(keyframe_flags), timestamps, timestamps], axis=1
    )
    return timestamps, packets


@settings(max_examples=60, **SETTINGS)
@given(decode_order())
def test_reordering_within_groups_is_trusted(file):
    assert timestamp_fault(*file) == ""


@settings(max_examples=60, **SETTINGS)
@given(decode_order(), decode_order())
def test_recordings_concatenated_restart(first, second):
    timestamps = np.concatenate([first[0], second[0]])
    packets = np.concatenate([first[1], second[1]])
    # A one-frame first recording shows the second's keyframe time again.
    expected = "restart" if len(first[0]) > 1 else "repeat"
    assert timestamp_fault(timestamps, packets) == f"its timestamps {expected}"


@settings(max_examples=60, **SETTINGS)
@given(decode_order(), st.data())
def test_a_repeated_or_missing_timestamp_is_not_trusted(file, data):
    timestamps, packets = file
    if len(timestamps) < 2:
        return
    position = data.draw(st.integers(1, len(timestamps) - 1))
    repeated = timestamps.copy()
    repeated[position] = repeated[data.draw(st.integers(0, position - 1))]
    assert timestamp_fault(repeated, packets) in (
        "its timestamps repeat",
        "its timestamps restart",
    )
    missing = timestamps.copy()
    missing[position] = -1
    assert timestamp_fault(missing, packets) == "some frames have no timestamp"
