"""Turns dataset elements into what `keras_cbm` models read."""

import tensorflow as tf


def future_frame_pairs(dataset, predicted_frames, video_key="video"):
    """Maps videos to `(frames, targets)` pairs for future-frame prediction.

    `keras_cbm.models.future_frame_predictor` trains on whole clips with
    the last `output_frames` frames as targets; this makes those pairs from
    `moving_digits` (or any dataset of dicts holding uint8 videos).

    Args:
        dataset: A `tf.data.Dataset` of dicts holding `video_key`, a uint8
            video `(frames, rows, cols, channels)`.
        predicted_frames: Integer >= 1, the frames to predict, last in each
            video.
        video_key: The feature holding the frames.

    Returns:
        A `tf.data.Dataset` of pairs `(frames, targets)`: `frames` float32
        `(frames, rows, cols, channels)` in `[0, 1]` (the whole video),
        `targets` its last `predicted_frames` frames.

    Example:

    >>> import tensorflow as tf
    >>> videos = tf.data.Dataset.from_tensors(
    ...     {"video": tf.fill((5, 4, 4, 1), tf.constant(255, "uint8"))}
    ... )
    >>> frames, targets = next(iter(future_frame_pairs(videos, 2)))
    >>> frames.shape, targets.shape, float(targets[0, 0, 0, 0])
    (TensorShape([5, 4, 4, 1]), TensorShape([2, 4, 4, 1]), 1.0)
    """
    if (
        isinstance(predicted_frames, bool)
        or not isinstance(predicted_frames, int)
        or predicted_frames < 1
    ):
        raise ValueError(
            "Argument `predicted_frames` must be an integer >= 1; received "
            f"predicted_frames={predicted_frames!r}."
        )

    def pair(element):
        frames = tf.cast(element[video_key], "float32") / 255.0
        return frames, frames[-predicted_frames:]

    return dataset.map(pair, num_parallel_calls=tf.data.AUTOTUNE)
