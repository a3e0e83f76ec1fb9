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
from keras_cbm.data.decode_errors import DecodeErrors
from keras_cbm.data.directory_options import DirectoryOptions
from keras_cbm.data.frame_resize import resize
from keras_cbm.data.stream_schedule import StreamPosition
from keras_cbm.data.stream_schedule import Video
from keras_cbm.data.stream_schedule import count_batches
from keras_cbm.data.stream_schedule import lane_schedule
from keras_cbm.training.frame_targets import check_targets
from keras_cbm.training.frame_targets import first_target_frame


def _row(video, start, chunk_length, targets):
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


def _check_stream_arguments(batch_size, chunk_length, targets):
    batch_size = check_integer("batch_size", batch_size, 1)
    chunk_length = check_integer("chunk_length", chunk_length, 1)
    targets = "all" if targets is None else targets
    check_targets(targets)
    return batch_size, chunk_length, targets


def _short_video_error(videos, chunk_length):
    """The error for videos (described with their frame counts) shorter
    than a chunk."""
    return ValueError(
        f"Argument `chunk_length` must be at most every video's length (a "
        f"stream's rows play whole chunks), but {videos}; "
        f"received chunk_length={chunk_length}."
    )


def _finish(rows, batch_size, chunk_length, drop_remainder, first_pass_lengths):
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


def _output(element):
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
            `keras_cbm.training.frame_weights`: `"all"`, `("last", k)`,
            `("from", j)`): frames outside them get weight 0.
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
    batch_size, chunk_length, targets = _check_stream_arguments(
        batch_size, chunk_length, targets
    )
    check_features(dataset, video_key=video_key, label_key=label_key)
    spec = dataset.element_spec
    video_spec, label_spec = spec[video_key], spec[label_key]
    frames = video_spec.shape[0]
    if frames is not None and frames < chunk_length:
        raise _short_video_error(
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
                raise _short_video_error(
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
                    _row(video, start, chunk_length, targets),
                    video=chunk,
                    label=label,
                )

    signature = {
        "video": tf.TensorSpec((chunk_length,) + frame_shape, video_spec.dtype),
        "label": tf.TensorSpec(label_spec.shape, label_spec.dtype),
        **_row_signature(chunk_length),
    }

    def stream(position):
        return tf.data.Dataset.from_generator(
            lambda: rows(position), output_signature=signature
        ).map(_output)

    def lengths():
        frames = dataset.map(lambda element: tf.shape(element[video_key])[0])
        return [int(count) for count in frames.as_numpy_iterator()]

    return _finish(stream, batch_size, chunk_length, drop_remainder, lengths)


def _row_signature(chunk_length):
    return {
        "new_video": tf.TensorSpec((), tf.bool),
        "frame_weights": tf.TensorSpec((chunk_length,), tf.float32),
        "chunk_index": tf.TensorSpec((), tf.int32),
        "video_id": tf.TensorSpec((), tf.int32),
    }


def video_chunks_from_directory(
    directory,
    batch_size,
    chunk_length,
    drop_remainder=True,
    targets=None,
    labels="inferred",
    class_names=None,
    color_mode="rgb",
    frame_size=None,
    interpolation="bilinear",
    apply_rotation=True,
    validation_split=None,
    subset=None,
    seed=None,
    shuffle=True,
    follow_links=False,
    on_error="raise",
    num_parallel_calls=tf.data.AUTOTUNE,
):
    """Streams the video files of a directory as batches of consecutive
    chunks, decoding each chunk once, in order, never a whole video.

    The batches are those of `streaming_chunks` (lanes that play the files
    one after another; see there), planned from the files' frame counts:
    only the frames of the batches read are decoded, chunk by chunk (each
    chunk seeks to the keyframe before it; see
    `keras_cbm.data.video_dataset_from_directory` for which files are
    read and how frames are decoded). So memory is set by the chunk
    length, not by the videos' length. Files, classes, labels, splits and
    unreadable files are handled as in `video_dataset_from_directory`; a
    file that fails while it streams raises an error naming it, or under
    `on_error="skip"` gives zero frames of weight 0 (its lane goes on).

    With `shuffle`, the files play in a new order every epoch, a function
    of `seed` and the epoch (`StreamingBPTT.fit` says which), so that a
    `fit` restored mid-epoch plays the same order as one not stopped.

    Args:
        directory: The folder of the videos, as in
            `video_dataset_from_directory`.
        batch_size, chunk_length, drop_remainder, targets: As in
            `streaming_chunks`; every file must have at least
            `chunk_length` frames.
        labels, class_names, color_mode, interpolation, apply_rotation,
            validation_split, subset, follow_links, on_error: As in
            `video_dataset_from_directory`.
        frame_size: `(height, width)` to resize every frame to, or `None`:
            the size of the first file's first frame.
        seed: Optional integer: the split and the order of the files.
        shuffle: Whether the files play in a new random order every epoch
            (else in the sorted order of their paths).
        num_parallel_calls: How many chunks are decoded at a time
            (`tf.data.AUTOTUNE`: two per decoding process).

    Returns:
        A `tf.data.Dataset` of `streaming_chunks`' batches (frames uint8),
        with the attributes `stream_position`, `class_names` and
        `file_paths` (`"video_id"` is the file's position there). A list of
        the training and validation datasets for `subset="both"`.

    Raises:
        ValueError: for wrong arguments, unreadable files (see
            `video_dataset_from_directory`) and files shorter than a
            chunk, naming them.

    Example:

    >>> import os, tempfile, numpy as np, av
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "waves"))
    >>> with av.open(os.path.join(root, "waves", "1.mp4"), "w") as file:
    ...     stream = file.add_stream("mpeg4", rate=25)
    ...     stream.width, stream.height = 16, 16
    ...     for i in range(10):
    ...         frame = av.VideoFrame.from_ndarray(
    ...             np.full((16, 16, 3), 20 * i, "uint8"), format="rgb24")
    ...         file.mux(stream.encode(frame))
    ...     file.mux(stream.encode())
    >>> stream = video_chunks_from_directory(root, 1, 4,
    ...                                      color_mode="grayscale")
    >>> batches = list(stream)
    >>> [inputs["video"].shape for inputs, _ in batches]
    [TensorShape([1, 4, 16, 16, 1]), TensorShape([1, 4, 16, 16, 1]), \
TensorShape([1, 4, 16, 16, 1])]
    >>> inputs, labels = batches[-1]
    >>> inputs["frame_weights"].numpy().tolist()
    [[1.0, 1.0, 0.0, 0.0]]
    """
    # The decoders need PyAV (the `video` extra); `streaming_chunks` not.
    from keras_cbm.data.video_directory import DECODERS
    from keras_cbm.data.video_directory import decoding_calls
    from keras_cbm.data.video_reader import read_frames
    from keras_cbm.data.video_selection import select_video_files

    batch_size, chunk_length, targets = _check_stream_arguments(
        batch_size, chunk_length, targets
    )
    options = DirectoryOptions.checked(
        directory,
        labels=labels,
        class_names=class_names,
        color_mode=color_mode,
        frame_size=frame_size,
        interpolation=interpolation,
        apply_rotation=apply_rotation,
        validation_split=validation_split,
        subset=subset,
        seed=seed,
        shuffle=shuffle,
        follow_links=follow_links,
        on_error=on_error,
    )
    # Without a seed, the files' order is still one function of the epoch
    # in this process.
    order_seed = options.seed
    if order_seed is None:
        order_seed = int(np.random.default_rng().integers(2**31))
    channels = options.channels
    datasets = []
    for files in select_video_files(options):
        short = [
            f"{path!r} ({count} frames)"
            for path, count in zip(
                files.file_paths, files.num_frames, strict=True
            )
            if count < chunk_length
        ]
        if short:
            raise _short_video_error(
                "video file(s) " + ", ".join(short) + " are shorter",
                chunk_length,
            )
        size = frame_size
        if size is None:
            first = DECODERS.run(
                read_frames,
                files.file_paths[0],
                [0],
                color_mode,
                apply_rotation,
            )
            size = tuple(first.shape[1:3])
        errors = DecodeErrors(on_error, channels)

        def order(epoch, files=files):
            """The files' order in `epoch`."""
            order = np.arange(len(files.file_paths))
            if shuffle:
                np.random.default_rng([order_seed, epoch]).shuffle(order)
            return order.tolist()

        def videos(epoch, files=files, order=order):
            for i in order(epoch):
                yield Video(
                    files.num_frames[i],
                    files.labels[i],
                    i,
                    path=files.file_paths[i],
                )

        def rows(position, videos=videos):
            epoch, skip = position.begin_pass()
            plan = lane_schedule(
                videos(epoch), batch_size, chunk_length, drop_remainder
            )
            for number, batch in enumerate(plan):
                if number < skip:
                    continue
                for row in batch:
                    video, start = row if row is not None else (None, 0)
                    count = 0
                    if video is not None:
                        count = min(chunk_length, video.length - start)
                    yield dict(
                        _row(video, start, chunk_length, targets),
                        path=video.path if video is not None else "",
                        start=start,
                        count=count,
                        label=video.label if video is not None else 0,
                    )

        def read(path, start, count):
            if count == 0:  # An idle lane.
                return np.zeros((0, 1, 1, channels), "uint8")
            return DECODERS.run(
                read_frames,
                path,
                np.arange(start, start + count),
                color_mode,
                apply_rotation,
            )

        def decode(element, errors=errors, size=size):
            frames = tf.numpy_function(
                errors.guard(read),
                [element["path"], element["start"], element["count"]],
                tf.uint8,
                stateful=False,
            )
            frames.set_shape((None, None, None, channels))
            # A file skipped under on_error="skip" gives no frames.
            decoded = tf.shape(frames)[0] == element["count"]
            frames = resize(frames, size, interpolation)
            frames = tf.pad(
                frames,
                [
                    [0, chunk_length - tf.shape(frames)[0]],
                    [0, 0],
                    [0, 0],
                    [0, 0],
                ],
            )
            frames.set_shape((chunk_length, *size, channels))
            weights = element["frame_weights"] * tf.cast(decoded, tf.float32)
            return _output(dict(element, video=frames, frame_weights=weights))

        signature = {
            "path": tf.TensorSpec((), tf.string),
            "start": tf.TensorSpec((), tf.int32),
            "count": tf.TensorSpec((), tf.int32),
            "label": tf.TensorSpec((), tf.int64),
            **_row_signature(chunk_length),
        }

        def stream(position, rows=rows, decode=decode, signature=signature):
            return tf.data.Dataset.from_generator(
                lambda: rows(position), output_signature=signature
            ).map(
                decode,
                num_parallel_calls=decoding_calls(num_parallel_calls),
                deterministic=True,
            )

        stream = _finish(
            stream,
            batch_size,
            chunk_length,
            drop_remainder,
            lambda files=files, order=order: [
                files.num_frames[i] for i in order(0)
            ],
        )
        datasets.append(files.describe(stream))
    return datasets[0] if len(datasets) == 1 else datasets
