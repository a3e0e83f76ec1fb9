"""Generated videos for the clip pipeline tests."""

import numpy as np
import tensorflow as tf

FRAME_SHAPE = (3, 2, 1)


def counting_videos(lengths, ids=None, dtype="uint8"):
    """A dataset of videos whose frame i has every pixel equal to i.

    Args:
        lengths: The frames of each video.
        ids: Optional string ids, stored as the `"video_id"` feature.
        dtype: The frames' dtype.

    Returns:
        A `tf.data.Dataset` of `{"video", "label"[, "video_id"]}` dicts;
        the label of a video is its length.
    """
    features = {"length": tf.constant(lengths, "int64")}
    if ids is not None:
        features["video_id"] = tf.constant(ids)

    def video(element):
        frame_index = tf.range(element.pop("length"))
        element["label"] = tf.size(frame_index, out_type="int64")
        element["video"] = tf.broadcast_to(
            tf.cast(frame_index, dtype)[:, None, None, None],
            tf.concat([tf.shape(frame_index), FRAME_SHAPE], 0),
        )
        return element

    return tf.data.Dataset.from_tensor_slices(features).map(video)


def collect(dataset):
    """All elements of a clip dataset as numpy: a list of (inputs, label)."""
    return list(dataset.as_numpy_iterator())


def clip_frames(alignment_row):
    """The absolute frames of one clip, padding dropped."""
    return set(alignment_row[alignment_row >= 0].tolist())


def assert_frames_match_alignment(inputs):
    """Acceptance 1 on one element: every step shows the frame its
    alignment names, padding is masked, -1 and zero."""
    clips, mask, alignment = (
        inputs["clips"],
        inputs["mask"],
        inputs["alignment"],
    )
    assert alignment.dtype == np.int32
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, alignment >= 0)
    expected = np.where(mask, alignment, 0)
    frame_axes = tuple(range(2, clips.ndim))
    np.testing.assert_array_equal(clips.min(axis=frame_axes), expected)
    np.testing.assert_array_equal(clips.max(axis=frame_axes), expected)
    # Steps are a prefix of the clip: padding only at the end.
    lengths = mask.sum(axis=1)
    np.testing.assert_array_equal(
        mask, np.arange(mask.shape[1])[None, :] < lengths[:, None]
    )
