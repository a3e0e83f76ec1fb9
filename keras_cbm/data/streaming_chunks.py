"""Streams of chunks for videos too long to hold: each row of a batch is a
lane that plays its videos one after another, a chunk of frames per batch,
so that consecutive batches hold consecutive chunks (what
`keras_cbm.training.StreamingBPTT` trains on). From a dataset of videos
(`streaming_chunks`) or from video files, decoded chunk by chunk in order
(`video_chunks_from_directory`)."""

import numpy as np
import tensorflow as tf

from keras_cbm.data.arguments import check_features
from keras_cbm.data.arguments import check_integer
from keras_cbm.data.stream_schedule import StreamPosition
from keras_cbm.data.stream_schedule import Video
from keras_cbm.data.stream_schedule import count_batches
from keras_cbm.data.stream_schedule import lane_schedule
from keras_cbm.frame_targets import check_targets
from keras_cbm.frame_targets import first_target_frame


def stream_row(video, start, chunk_length, targets):
    """The per-row features of a chunk, frames aside."""
    if video is None:  # An idle lane: nothing to train, a fresh start.
        return {
            "new_video": True,
            "frame_weights": np.zeros(chunk_length, "float32"),
            "chunk_index": 0,
            "video_id": -1,
        }
    index = start + np.arange(chunk_length)
    first = max(first_target_frame(video.length, targets), 0)
    weights = (index < video.length) & (index >= first)
    return {
        "new_video": start == 0,
        "frame_weights": weights.astype("float32"),
        "chunk_index": start // chunk_length,
        "video_id": video.video_id,
    }


def check_stream_arguments(batch_size, chunk_length, targets):
    batch_size = check_integer("batch_size", batch_size, 1)
    chunk_length = check_integer("chunk_length", chunk_length, 1)
    targets = "all" if targets is None else targets
    check_targets(targets)
    return batch_size, chunk_length, targets


def short_video_error(videos, chunk_length):
    """The error for videos (described with their frame counts) shorter
    than a chunk."""
    return ValueError(
        f"Argument `chunk_length` must be at most every video's length (a "
        f"stream's rows play whole chunks), but {videos}; "
        f"received chunk_length={chunk_length}."
    )


def finish_stream(
    rows, batch_size, chunk_length, drop_remainder, first_pass_lengths
):
    """Batches the rows of a stream (`rows(position)`, a dataset); sets
    its `stream_position` and its cardinality, the batches of the first
    pass planned from the lengths of its videos (`first_pass_lengths()`,
    computed when first asked)."""
    position = StreamPosition(
        lambda: count_batches(
            first_pass_lengths(), batch_size, chunk_length, drop_remainder
        )
    )
    dataset = (
        rows(position)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    # Keras reads it once, when `fit` begins, and then runs that many
    # steps an epoch: unknown, it would learn it from the first epoch,
    # which a restart shortens (see `StreamingBPTT`).
    dataset.cardinality = lambda: tf.constant(position.batches, tf.int64)
    dataset.stream_position = position
    return dataset


def stream_output(element):
    inputs = {
        key: element[key]
        for key in ("video", "new_video", "frame_weights", "chunk_index")
    }
    inputs["video_id"] = element["video_id"]
    return inputs, element["label"]


def streaming_chunks(
    dataset,
    batch_size,
    chunk_length,
    drop_remainder=True,
    targets=None,
    video_key="video",
    label_key="label",
    id_key="video_id",
):
    """Streams the videos of a dataset as batches of consecutive chunks.

    Each of the `batch_size` rows of a batch is a lane that plays videos
    one after another, in the order of `dataset`, a lane taking the next
    video as soon as its own ends: the batch after a batch holds, in every
    row, the next `chunk_length` frames of the same video, or the first
    chunk of the row's next video (`"new_video"` True). A video's last
    chunk is padded with zero frames of weight 0. With `drop_remainder`,
    the stream ends at the first batch in which a row has no video left
    (the other rows' last chunks are not read); else such rows are idle
    (zero frames of weight 0, `"new_video"` True) until every row's videos
    end. `keras_cbm.training.StreamingBPTT` trains on the result.

    The chunks of a video must stay in order: shuffle the videos of
    `dataset` before (e.g. `dataset.shuffle(...)`), never the result;
    `StreamingBPTT.fit` stops on a batch out of order. A `fit` restored
    mid-epoch by `BackupAndRestore` skips the batches already trained
    (`stream_position`, see `StreamPosition`) and gives the same weights
    as one not stopped when `dataset` gives its videos in the same order
    in the restarted process.

    Args:
        dataset: A `tf.data.Dataset` of dicts, one per video: `video_key`
            `(num_frames, *frame_shape)` with a static frame shape,
            `label_key` and optionally `id_key`. A video's frames are held
            while its lane plays it.
        batch_size: Integer >= 1, the rows (lanes) of every batch.
        chunk_length: Integer >= 1, the frames of a chunk; every video
            must have at least as many.
        drop_remainder: Whether the stream ends when the first row runs
            out of videos (see above).
        targets: Optional frame targets of the videos' frames (see
            `keras_cbm.training.frame_weights`: `"all"`, a
            `keras_cbm.training.FrameTargets` or its short forms
            `("last", k)` and `("from", j)`): frames outside them get
            weight 0.
        video_key, label_key: The features holding the frames and the
            label.
        id_key: The feature holding the video's id; when the dataset has
            no such feature the id is the video's position in `dataset`.

    Returns:
        A `tf.data.Dataset` of pairs `(inputs, labels)`, one per batch, with
        a `stream_position` attribute (a `StreamPosition`). `inputs` is a
        dict: `"video"` `(batch_size, chunk_length, *frame_shape)` in the
        videos' dtype, `"new_video"` `(batch_size,)` bool, `"frame_weights"`
        `(batch_size, chunk_length)` float32 (0 on padding and outside
        `targets`), `"chunk_index"` `(batch_size,)` int32 (the chunk's
        position in its video) and `"video_id"` `(batch_size,)` int32;
        `labels` `(batch_size,)` holds each row's video's label. Its
        `cardinality()` (which `fit` reads) is the batches of a pass,
        planned from the videos' lengths: the first call reads `dataset`
        once (each video, for its length).

    Raises:
        ValueError: for a `batch_size` or `chunk_length` below 1, and (when
            iterated, or at once for a static number of frames) for a
            video shorter than a chunk, naming it.

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> videos = tf.data.Dataset.from_tensor_slices({
    ...     "video": np.arange(2 * 5, dtype="float32").reshape(2, 5, 1),
    ...     "label": [0, 1]})
    >>> stream = streaming_chunks(videos, batch_size=2, chunk_length=2)
    >>> batches = list(stream)
    >>> [inputs["video"][:, :, 0].numpy().tolist() for inputs, _ in batches]
    [[[0.0, 1.0], [5.0, 6.0]], [[2.0, 3.0], [7.0, 8.0]], \
[[4.0, 0.0], [9.0, 0.0]]]
    >>> inputs, labels = batches[-1]
    >>> inputs["frame_weights"].numpy().tolist()
    [[1.0, 0.0], [1.0, 0.0]]
    """
    batch_size, chunk_length, targets = check_stream_arguments(
        batch_size, chunk_length, targets
    )
    check_features(dataset, video_key=video_key, label_key=label_key)
    spec = dataset.element_spec
    video_spec, label_spec = spec[video_key], spec[label_key]
    frames = video_spec.shape[0]
    if frames is not None and frames < chunk_length:
        raise short_video_error(
            f"every video has {frames} frames", chunk_length
        )
    frame_shape = tuple(video_spec.shape[1:])
    frame_dtype = video_spec.dtype.as_numpy_dtype
    label_dtype = label_spec.dtype.as_numpy_dtype

    def videos():
        for index, element in enumerate(dataset.as_numpy_iterator()):
            video = element[video_key]
            video_id = int(element[id_key]) if id_key in element else index
            if len(video) < chunk_length:
                raise short_video_error(
                    f"video {video_id} has {len(video)} frames", chunk_length
                )
            yield Video(len(video), element[label_key], video_id, video)

    def rows(position):
        _, skip = position.begin_pass()
        plan = lane_schedule(videos(), batch_size, chunk_length, drop_remainder)
        for number, batch in enumerate(plan):
            if number < skip:
                continue
            for row in batch:
                video, start = row if row is not None else (None, 0)
                chunk = np.zeros((chunk_length,) + frame_shape, frame_dtype)
                label = np.zeros(label_spec.shape, label_dtype)
                if video is not None:
                    frames = video.frames[start : start + chunk_length]
                    chunk[: len(frames)] = frames
                    label = video.label
                yield dict(
                    stream_row(video, start, chunk_length, targets),
                    video=chunk,
                    label=label,
                )

    signature = {
        "video": tf.TensorSpec((chunk_length,) + frame_shape, video_spec.dtype),
        "label": tf.TensorSpec(label_spec.shape, label_spec.dtype),
        **row_signature(chunk_length),
    }

    def stream(position):
        return tf.data.Dataset.from_generator(
            lambda: rows(position), output_signature=signature
        ).map(stream_output)

    def lengths():
        frames = dataset.map(lambda element: tf.shape(element[video_key])[0])
        return [int(count) for count in frames.as_numpy_iterator()]

    return finish_stream(
        stream, batch_size, chunk_length, drop_remainder, lengths
    )


def row_signature(chunk_length):
    return {
        "new_video": tf.TensorSpec((), tf.bool),
        "frame_weights": tf.TensorSpec((chunk_length,), tf.float32),
        "chunk_index": tf.TensorSpec((), tf.int32),
        "video_id": tf.TensorSpec((), tf.int32),
    }
