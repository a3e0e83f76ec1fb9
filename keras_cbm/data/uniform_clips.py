"""Sliding windows over whole videos, for evaluation."""

import tensorflow as tf

from keras_cbm.data.arguments import check_features
from keras_cbm.data.arguments import check_integer
from keras_cbm.data.clip_inputs import clip_inputs
from keras_cbm.data.clip_inputs import video_id
from keras_cbm.data.overlapping_clips import check_targets_and_past
from keras_cbm.data.overlapping_clips import target_and_past_inputs


def uniform_clips(
    dataset,
    clip_length,
    stride,
    frame_stride=1,
    video_key="video",
    label_key="label",
    id_key="video_id",
    num_parallel_calls=tf.data.AUTOTUNE,
    targets=None,
    past_length=None,
):
    """Cuts every video into sliding windows that cover all its frames.

    Like PyTorchVideo's `UniformClipSampler`: windows of `clip_length`
    steps start at steps `0, stride, 2 * stride, ...` until one reaches the
    last step, so consecutive windows overlap by exactly `clip_length -
    stride` steps; the last window is padded with `mask` False where it runs
    past the video. A video of `N` frames read every `frame_stride` frames
    has `M = ceil(N / frame_stride)` steps (frames `0, f, 2f, ...`) and
    gives `W = 1 + max(0, ceil((M - clip_length) / stride))` windows. With
    the alignment indices, per-window predictions can be averaged per video
    (multi-view testing) or the windows fed in order with the state handed
    over at the right frame.

    Args:
        dataset: A `tf.data.Dataset` of dicts, one per video, holding
            `video_key` (`(N, *frame_shape)`, any dtype), `label_key` and
            optionally `id_key`.
        clip_length: Integer >= 1, the steps of a window.
        stride: Integer in `[1, clip_length]`, the steps between the starts
            of consecutive windows (a larger stride would skip frames).
        frame_stride: Integer >= 1, the distance in frames between two
            steps of a window.
        video_key: The feature holding the frames.
        label_key: The feature holding the label.
        id_key: The feature holding the video's id; when the dataset has no
            such feature the id is the video's position in `dataset`.
        num_parallel_calls: Passed to `Dataset.map`.
        targets: Optional frame targets, as in `overlapping_clips`: adds
            `"frame_weights"` `(W, clip_length)`.
        past_length: Optional integer >= 1, as in `overlapping_clips`: adds
            `"past"` and `"past_alignment"`, the frames before the last
            window's start (what `state_handover="whole_past"` runs over).

    Returns:
        A `tf.data.Dataset` of pairs `(inputs, label)`, one per video, with
        the structure of `overlapping_clips`' output and `W` windows in
        place of its `K` clips: `"clips"` `(W, clip_length, *frame_shape)`,
        `"mask"` and `"alignment"` `(W, clip_length)`, `"video_id"`, and
        what `targets` and `past_length` add. `W`
        varies with the video's length: batch one video at a time, or with
        `padded_window_batch`.

    Example:

    >>> import tensorflow as tf
    >>> videos = tf.data.Dataset.from_tensors(
    ...     {"video": tf.zeros((40, 8, 8, 3), "uint8"), "label": 3}
    ... )
    >>> inputs, label = next(iter(uniform_clips(videos, 16, 8)))
    >>> inputs["clips"].shape
    TensorShape([4, 16, 8, 8, 3])
    """
    clip_length = check_integer("clip_length", clip_length, 1)
    stride = check_integer(
        "stride", stride, 1, clip_length, bound_name="clip_length"
    )
    frame_stride = check_integer("frame_stride", frame_stride, 1)
    check_features(dataset, video_key=video_key, label_key=label_key)
    past_length = check_targets_and_past(dataset, targets, past_length)

    def cut(index, element):
        video = element[video_key]
        alignment = uniform_alignment(
            tf.shape(video)[0], clip_length, stride, frame_stride
        )
        identity = video_id(element, index, id_key)
        inputs = clip_inputs(video, alignment, identity)
        inputs.update(
            target_and_past_inputs(
                element, alignment, identity, video_key, targets,
                past_length, frame_stride,
            )
        )
        return inputs, element[label_key]

    return dataset.enumerate().map(cut, num_parallel_calls=num_parallel_calls)


def uniform_alignment(num_frames, clip_length, stride, frame_stride):
    """The alignment indices `(W, clip_length)` of `uniform_clips`' windows
    over a video of `num_frames` frames, -1 on padding."""
    steps = (num_frames + frame_stride - 1) // frame_stride
    beyond_first = tf.maximum(steps - clip_length, 0)
    windows = 1 + (beyond_first + stride - 1) // stride
    step = tf.range(windows)[:, None] * stride + tf.range(clip_length)[None, :]
    return tf.where(step < steps, step * frame_stride, -1)


def padded_window_batch(dataset, batch_size):
    """Batches `uniform_clips`' output, padding videos to the most windows.

    Padding windows are masked (`mask` False, `alignment` -1, zero frames),
    so per-video evaluation ignores them.

    Args:
        dataset: The output of `uniform_clips`.
        batch_size: Videos per batch.

    Returns:
        A `tf.data.Dataset` of `(inputs, label)` batches.

    Example:

    >>> import tensorflow as tf
    >>> videos = tf.data.Dataset.from_tensor_slices(
    ...     {"video": tf.zeros((2, 40, 4, 4, 1), "uint8"), "label": [0, 1]}
    ... ).map(lambda e: dict(e, video=e["video"][: 20 + 20 * e["label"]]))
    >>> inputs, _ = next(iter(padded_window_batch(
    ...     uniform_clips(videos, 16, 8), 2)))
    >>> inputs["mask"].shape, int(inputs["alignment"][0, -1, 0])
    (TensorShape([2, 4, 16]), -1)
    """
    batch_size = check_integer("batch_size", batch_size, 1)
    padding = tf.nest.map_structure(
        lambda spec: tf.zeros((), spec.dtype), dataset.element_spec
    )
    alignment_dtype = dataset.element_spec[0]["alignment"].dtype
    padding[0]["alignment"] = tf.constant(-1, alignment_dtype)
    return dataset.padded_batch(batch_size, padding_values=padding)
