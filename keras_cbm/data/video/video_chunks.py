"""Streams of chunks from a directory of video files, each chunk decoded
once, in order (see `keras_cbm.data.streaming_chunks`). Needs PyAV (the
`video` extra)."""

import numpy as np
import tensorflow as tf

from keras_cbm.data.stream_schedule import Video
from keras_cbm.data.stream_schedule import lane_schedule
from keras_cbm.data.streaming_chunks import check_stream_arguments
from keras_cbm.data.streaming_chunks import finish_stream
from keras_cbm.data.streaming_chunks import row_signature
from keras_cbm.data.streaming_chunks import short_video_error
from keras_cbm.data.streaming_chunks import stream_output
from keras_cbm.data.streaming_chunks import stream_row
from keras_cbm.data.video.decode_errors import DecodeErrors
from keras_cbm.data.video.directory_options import DirectoryOptions
from keras_cbm.data.video.frame_resize import resize
from keras_cbm.data.video.video_directory import DECODERS
from keras_cbm.data.video.video_directory import decoding_calls
from keras_cbm.data.video.video_reader import read_frames
from keras_cbm.data.video.video_selection import select_video_files


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
        labels, class_names, color_mode, interpolation: As in
            `video_dataset_from_directory`.
        apply_rotation, validation_split, subset, follow_links, on_error:
            As in `video_dataset_from_directory`.
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
    batch_size, chunk_length, targets = check_stream_arguments(
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
            raise short_video_error(
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
                        stream_row(video, start, chunk_length, targets),
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
            return stream_output(
                dict(element, video=frames, frame_weights=weights)
            )

        signature = {
            "path": tf.TensorSpec((), tf.string),
            "start": tf.TensorSpec((), tf.int32),
            "count": tf.TensorSpec((), tf.int32),
            "label": tf.TensorSpec((), tf.int64),
            **row_signature(chunk_length),
        }

        def stream(position, rows=rows, decode=decode, signature=signature):
            return tf.data.Dataset.from_generator(
                lambda: rows(position), output_signature=signature
            ).map(
                decode,
                num_parallel_calls=decoding_calls(num_parallel_calls),
                deterministic=True,
            )

        stream = finish_stream(
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
