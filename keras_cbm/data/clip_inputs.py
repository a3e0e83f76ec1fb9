"""Turns alignment indices into the clips a model reads."""

import tensorflow as tf


def clip_inputs(video, alignment, video_id):
    """Cuts clips out of a video at absolute frame indices.

    Args:
        video: Tensor `(num_frames, *frame_shape)`, any dtype.
        alignment: int32 tensor `(num_clips, clip_steps)`, the absolute
            frame index of every clip step, -1 on padding steps.
        video_id: Scalar tensor identifying the video.

    Returns:
        A dict: `"clips"` `(num_clips, clip_steps, *frame_shape)` in the
        video's dtype, zero on padding steps; `"mask"` `(num_clips,
        clip_steps)` bool, True on frames; `"alignment"` as given;
        `"video_id"` as given.

    Example:

    >>> import tensorflow as tf
    >>> video = tf.reshape(tf.range(5), (5, 1))
    >>> inputs = clip_inputs(video, tf.constant([[3, 4, -1]]), 0)
    >>> inputs["clips"][0, :, 0].numpy().tolist()
    [3, 4, 0]
    """
    num_frames = tf.shape(video)[0]
    # tf.gather on an empty video fails with a message naming no video.
    check = tf.debugging.Assert(
        num_frames > 0, ["Video", video_id, "has no frames."]
    )
    with tf.control_dependencies([check]):
        frames = tf.gather(video, tf.maximum(alignment, 0))
    mask = alignment >= 0
    padding = tf.where(~mask)
    # Zeroing the few padding frames in place: a broadcast tf.where over
    # all frames is ~10x slower for uint8 (the pipeline's bottleneck).
    zero_frames = tf.zeros(
        tf.concat([tf.shape(padding)[:1], tf.shape(video)[1:]], 0),
        video.dtype,
    )
    return {
        "clips": tf.tensor_scatter_nd_update(frames, padding, zero_frames),
        "mask": mask,
        "alignment": alignment,
        "video_id": video_id,
    }


def video_id(element, index, id_key):
    """The id of a video: its `id_key` feature when the dataset has one,
    else its position in the dataset (int64)."""
    return element[id_key] if id_key in element else index
