"""Datasets of the video files in a directory: whole decoded videos
(`video_dataset_from_directory`), or overlapping clips of which only the
frames are decoded (`video_clips_from_directory`)."""

import numbers
import warnings

import numpy as np
import tensorflow as tf

from keras_cbm.data.clip_inputs import clip_inputs
from keras_cbm.data.decoding_processes import DecodingProcesses
from keras_cbm.data.overlapping_clips import check_overlapping_arguments
from keras_cbm.data.overlapping_clips import map_overlapping_alignment
from keras_cbm.data.video_files import index_video_directory
from keras_cbm.data.video_files import split_video_files
from keras_cbm.data.video_index import VideoFileError
from keras_cbm.data.video_index import count_frames
from keras_cbm.data.video_index import open_video
from keras_cbm.data.video_reader import PIXEL_FORMATS
from keras_cbm.data.video_reader import read_frames
from keras_cbm.data.video_reader import read_video

ON_ERROR = ("raise", "skip")
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3")
# The processes that decode for every dataset of this module, one per core;
# `num_parallel_calls` bounds how many of them a dataset keeps busy.
DECODERS = DecodingProcesses()


def decoding_calls(num_parallel_calls):
    """The parallel calls of a decoding map. tf.data's autotuning allows
    one per core, but a call waits while its request and reply travel and
    while this process works on its frames: two per worker keep the
    workers busy (on 2 cores, 10-15 % more clips per second)."""
    if num_parallel_calls == tf.data.AUTOTUNE:
        return 2 * DECODERS.size
    return num_parallel_calls


def video_dataset_from_directory(
    directory,
    labels="inferred",
    class_names=None,
    color_mode="rgb",
    frame_size=None,
    interpolation="bilinear",
    validation_split=None,
    subset=None,
    seed=None,
    shuffle=True,
    follow_links=False,
    on_error="raise",
    num_parallel_calls=tf.data.AUTOTUNE,
):
    """Generates a `tf.data.Dataset` of whole videos from video files.

    Like `keras.utils.image_dataset_from_directory`: with
    `labels="inferred"` the directory holds one subfolder per class,

    ```
    directory/
    ...class_a/
    ......a_video_1.mp4
    ......a_video_2.avi
    ...class_b/
    ......b_video_1.webm
    ```

    and the label of a video is the index of its class in `class_names`.
    Files with the extensions of `video_files.VIDEO_FORMATS` are read at
    any depth of a class folder, in any codec FFmpeg decodes (PyAV). The
    elements are those `overlapping_clips` and `uniform_clips` read; for
    long videos, `video_clips_from_directory` decodes only the clips'
    frames instead.

    Bad input is caught when the dataset is made (every file is opened
    once): a file FFmpeg cannot open, a file without a video stream and a
    class folder without videos raise a `ValueError` naming the file or
    folder; with `on_error="skip"` the files are left out and the empty
    classes kept (so no label moves), with one warning that counts them.
    A file that fails later, while decoded, raises an error naming it, or
    is left out with a warning that counts the files left out so far.

    Args:
        directory: The folder of the videos.
        labels: `"inferred"` (from the subfolders), or a list or tuple of
            integer labels, one per video file under `directory`, in the
            sorted order of their paths.
        class_names: Only with `labels="inferred"`: the subfolders to read,
            in the order of their labels (default: all, sorted).
        color_mode: `"rgb"` (3 channels) or `"grayscale"` (1 channel).
        frame_size: `None` (frames as stored), or `(height, width)` to
            resize every frame to.
        interpolation: The `tf.image.resize` method of `frame_size`.
        validation_split: Optional float in `(0, 1)`, the fraction of the
            files held out for validation.
        subset: With `validation_split`: `"training"`, `"validation"` or
            `"both"` (returns both datasets).
        seed: Optional integer: the order of the files and the split.
        shuffle: Whether to read the files in a new random order in every
            iteration (else in the sorted order of their paths).
        follow_links: Whether to enter subfolders that are symbolic links.
        on_error: `"raise"` or `"skip"`, for unreadable files and empty
            class folders.
        num_parallel_calls: Passed to `Dataset.map`: how many files are
            decoded at a time (`tf.data.AUTOTUNE`: two per worker).
            Decoding runs in worker processes, one per CPU core, started
            on first use (PyAV holds Python's GIL, so threads would decode
            one at a time; see `decoding_processes`).

    Returns:
        A `tf.data.Dataset` of dicts, one per video: `"video"` uint8
        `(num_frames, height, width, channels)`, `"label"` int64 and
        `"video_id"` int64, the video's position in the dataset's
        `file_paths` attribute; `class_names` is the dataset's attribute
        too. A list of the training and validation datasets for
        `subset="both"`.

    Example:

    >>> import os, tempfile, numpy as np, av
    >>> root = tempfile.mkdtemp()
    >>> for name in ("cat", "dog"):
    ...     os.makedirs(os.path.join(root, name))
    ...     with av.open(os.path.join(root, name, "1.mp4"), "w") as file:
    ...         stream = file.add_stream("mpeg4", rate=25)
    ...         stream.width, stream.height = 32, 32
    ...         for i in range(10):
    ...             frame = av.VideoFrame.from_ndarray(
    ...                 np.full((32, 32, 3), 20 * i, "uint8"), format="rgb24")
    ...             file.mux(stream.encode(frame))
    ...         file.mux(stream.encode())
    >>> videos = video_dataset_from_directory(root, frame_size=(16, 16))
    >>> videos.class_names
    ['cat', 'dog']
    >>> element = next(iter(videos))
    >>> element["video"].shape, element["video"].dtype.name
    (TensorShape([10, 16, 16, 3]), 'uint8')
    """
    subsets, channels = _checked_files(
        directory,
        labels,
        class_names,
        validation_split,
        subset,
        seed,
        shuffle,
        follow_links,
        on_error,
        color_mode,
        frame_size,
        interpolation,
        count=False,
    )
    datasets = []
    for files in subsets:
        skip = SkippedFiles(on_error, channels)

        def decode(element, skip=skip):
            video = tf.numpy_function(
                skip.guard(
                    lambda path: DECODERS.run(read_video, path, color_mode)
                ),
                [element.pop("path")],
                tf.uint8,
                stateful=False,
            )
            video.set_shape((None, None, None, channels))
            return dict(element, video=video)

        videos = files.dataset(shuffle, seed).map(
            decode, num_parallel_calls=decoding_calls(num_parallel_calls)
        )
        videos = skip.filter(videos, lambda element: element["video"])
        videos = videos.map(
            lambda element: dict(
                element,
                video=resize(element["video"], frame_size, interpolation),
            ),
            num_parallel_calls=num_parallel_calls,
        )
        datasets.append(files.describe(videos))
    return datasets[0] if len(datasets) == 1 else datasets


def video_clips_from_directory(
    directory,
    clips_per_video,
    min_length,
    max_length,
    min_overlap=1,
    frame_stride=1,
    labels="inferred",
    class_names=None,
    color_mode="rgb",
    frame_size=None,
    interpolation="bilinear",
    validation_split=None,
    subset=None,
    seed=None,
    shuffle=True,
    follow_links=False,
    on_error="raise",
    num_parallel_calls=tf.data.AUTOTUNE,
):
    """Samples overlapping clips from video files, decoding only the frames
    of the clips.

    The clips are those `overlapping_clips` draws (random lengths and
    starts, connected by overlaps of at least `min_overlap` steps, a step
    every `frame_stride` frames, new clips every iteration), drawn from
    each file's frame count before anything is decoded; then only the
    frames the clips hold are decoded, seeking to the keyframe before them.
    So the memory of a video's clips is bounded by the clip length, not
    by the video's: an hour-long video trains like a short one.
    `alignment` holds absolute frame indices of the file.

    Frame counts come from the container where they are exact (MP4, MOV)
    and otherwise from a frame index read once per file and cached (see
    `video_index`). Files, classes, labels, splits and bad files are
    handled as in `video_dataset_from_directory`.

    Args:
        directory: The folder of the videos, as in
            `video_dataset_from_directory`.
        clips_per_video, min_length, max_length, min_overlap, frame_stride:
            As in `overlapping_clips`.
        labels, class_names, color_mode, frame_size, interpolation,
            validation_split, subset, follow_links, on_error,
            num_parallel_calls: As in `video_dataset_from_directory`.
        seed: Optional integer: the order of the files, the split and the
            clips.
        shuffle: Whether to read the files in a new random order in every
            iteration.

    Returns:
        A `tf.data.Dataset` of pairs `(inputs, label)`, one per video, with
        the structure of `overlapping_clips`' output; `"video_id"` is the
        video's position in the dataset's `file_paths` attribute, and
        `class_names` is an attribute too. A list of the training and
        validation datasets for `subset="both"`.

    Example:

    >>> import os, tempfile, numpy as np, av
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "waves"))
    >>> with av.open(os.path.join(root, "waves", "1.mp4"), "w") as file:
    ...     stream = file.add_stream("mpeg4", rate=25)
    ...     stream.width, stream.height = 32, 32
    ...     for i in range(100):
    ...         frame = av.VideoFrame.from_ndarray(
    ...             np.full((32, 32, 3), i, "uint8"), format="rgb24")
    ...         file.mux(stream.encode(frame))
    ...     file.mux(stream.encode())
    >>> clips = video_clips_from_directory(root, 4, 8, 16, seed=0)
    >>> inputs, label = next(iter(clips.batch(1)))
    >>> inputs["clips"].shape
    TensorShape([1, 4, 16, 32, 32, 3])
    """
    clips_per_video, min_length, max_length, min_overlap, frame_stride = (
        check_overlapping_arguments(
            clips_per_video, min_length, max_length, min_overlap, frame_stride
        )
    )
    subsets, channels = _checked_files(
        directory,
        labels,
        class_names,
        validation_split,
        subset,
        seed,
        shuffle,
        follow_links,
        on_error,
        color_mode,
        frame_size,
        interpolation,
        count=True,
    )
    datasets = []
    for files in subsets:
        skip = SkippedFiles(on_error, channels)

        def decode(index, element, alignment, skip=skip):
            # The distinct frames of all clips, sorted: each is decoded
            # once, however many clips hold it.
            frame_indices, _ = tf.unique(
                tf.boolean_mask(alignment, alignment >= 0)
            )
            frame_indices = tf.sort(frame_indices)
            frames = tf.numpy_function(
                skip.guard(
                    lambda path, indices: DECODERS.run(
                        read_frames, path, indices, color_mode
                    )
                ),
                [element["path"], frame_indices],
                tf.uint8,
                stateful=False,
            )
            frames.set_shape((None, None, None, channels))
            return {
                "frames": frames,
                "frame_indices": frame_indices,
                "alignment": alignment,
                "label": element["label"],
                "video_id": element["video_id"],
            }

        def cut(element):
            frames = resize(element["frames"], frame_size, interpolation)
            alignment = element["alignment"]
            positions = tf.reshape(
                tf.searchsorted(
                    element["frame_indices"],
                    tf.reshape(alignment, [-1]),
                    out_type="int32",
                ),
                tf.shape(alignment),
            )
            inputs = clip_inputs(
                frames,
                tf.where(alignment >= 0, positions, -1),
                element["video_id"],
            )
            return dict(inputs, alignment=alignment), element["label"]

        clips = map_overlapping_alignment(
            files.dataset(shuffle, seed),
            decode,
            lambda element: element["num_frames"],
            clips_per_video,
            min_length,
            max_length,
            min_overlap,
            frame_stride,
            seed,
            decoding_calls(num_parallel_calls),
        )
        clips = skip.filter(clips, lambda element: element["frames"])
        clips = clips.map(cut, num_parallel_calls=num_parallel_calls)
        datasets.append(files.describe(clips))
    return datasets[0] if len(datasets) == 1 else datasets


def _checked_files(
    directory,
    labels,
    class_names,
    validation_split,
    subset,
    seed,
    shuffle,
    follow_links,
    on_error,
    color_mode,
    frame_size,
    interpolation,
    count,
):
    """Checks the decoding arguments both entry points share; returns the
    subsets' `VideoFiles` and the frames' channel count."""
    check_choice("color_mode", color_mode, tuple(PIXEL_FORMATS))
    check_frame_size(frame_size)
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    subsets = video_files(
        directory,
        labels,
        class_names,
        validation_split,
        subset,
        seed,
        shuffle,
        follow_links,
        on_error,
        count=count,
    )
    return subsets, PIXEL_FORMATS[color_mode][1]


class VideoFiles:
    """The readable video files of one subset, with labels and counts."""

    def __init__(self, file_paths, labels, class_names, num_frames):
        self.file_paths = file_paths
        self.labels = np.array(labels, "int64")
        self.class_names = class_names
        self.num_frames = num_frames

    def dataset(self, shuffle, seed):
        """`{"path", "label", "video_id"[, "num_frames"]}` per file."""
        features = {
            "path": tf.constant(self.file_paths, tf.string),
            "label": self.labels,
            "video_id": np.arange(len(self.file_paths), dtype="int64"),
        }
        if self.num_frames is not None:
            features["num_frames"] = np.array(self.num_frames, "int32")
        files = tf.data.Dataset.from_tensor_slices(features)
        if shuffle:
            files = files.shuffle(
                len(self.file_paths), seed=seed, reshuffle_each_iteration=True
            )
        return files

    def describe(self, dataset):
        """Sets `class_names` and `file_paths` on `dataset`, as Keras'
        `*_dataset_from_directory` do."""
        dataset.class_names = self.class_names
        dataset.file_paths = self.file_paths
        return dataset


def video_files(
    directory,
    labels,
    class_names,
    validation_split,
    subset,
    seed,
    shuffle,
    follow_links,
    on_error,
    count,
):
    """Indexes, checks and splits the files of `directory`.

    Every file is opened once (and counted with `count`); unreadable files
    and empty class folders raise or, with `on_error="skip"`, are left out
    with one warning.

    Returns:
        A list of `VideoFiles`, one per subset.
    """
    check_choice("on_error", on_error, ON_ERROR)
    paths, label_array, class_names, empty = index_video_directory(
        directory, labels, class_names, follow_links
    )
    problems = [f"{folder} (a class folder without videos)" for folder in empty]
    readable, readable_labels, num_frames = [], [], []
    for path, label in zip(paths, label_array, strict=True):
        try:
            if count:
                num_frames.append(count_frames(path))
            else:
                open_video(path)[0].close()
        except VideoFileError as error:
            problems.append(f"{path} ({error.reason})")
            continue
        readable.append(path)
        readable_labels.append(label)
    if problems and on_error == "raise":
        raise ValueError(
            f"`directory` must hold readable videos in every class folder; "
            f"{len(problems)} problem(s): {'; '.join(problems)}. Pass "
            'on_error="skip" to leave them out. Received: '
            f"directory={directory!r}"
        )
    if problems:
        warnings.warn(
            f"Skipped {len(problems)} of {len(paths) + len(empty)} video "
            f"files and class folders: {'; '.join(problems)}",
            stacklevel=3,
        )
    if not readable:
        raise ValueError(
            "`directory` must hold at least one readable video file "
            f"(extensions: see video_files.VIDEO_FORMATS). Received: "
            f"directory={directory!r}"
        )
    counts = dict(zip(readable, num_frames, strict=True)) if count else None
    return [
        VideoFiles(
            subset_paths,
            subset_labels,
            class_names,
            [counts[path] for path in subset_paths] if count else None,
        )
        for subset_paths, subset_labels in split_video_files(
            readable, readable_labels, validation_split, subset, seed, shuffle
        )
    ]


class SkippedFiles:
    """Applies `on_error` to files that fail while decoded: re-raise, or
    return no frames, warn with the count so far and filter them out."""

    def __init__(self, on_error, channels):
        self.on_error = on_error
        self.channels = channels
        self.count = 0

    def guard(self, read):
        """Wraps `read(path, *args)` for `tf.numpy_function`."""

        def guarded(path, *args):
            path = path.decode()
            try:
                return read(path, *args)
            except VideoFileError as error:
                if self.on_error == "raise":
                    raise
                self.count += 1
                warnings.warn(
                    f"Skipped {self.count} video file(s) that failed to "
                    f"decode so far; the last: {error}",
                    stacklevel=2,
                )
                return np.zeros((0, 1, 1, self.channels), "uint8")

        return guarded

    def filter(self, dataset, frames):
        """Drops the elements whose `frames(element)` came back empty."""
        if self.on_error == "raise":
            return dataset
        return dataset.filter(lambda element: tf.size(frames(element)) > 0)


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


def check_choice(name, value, choices):
    """Raises `ValueError` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {choices}. Received: {name}={value!r}"
        )


def check_frame_size(frame_size):
    """Raises `ValueError` unless `frame_size` is `None` or two positive
    integers."""
    if frame_size is None:
        return
    if (
        not isinstance(frame_size, (list, tuple))
        or len(frame_size) != 2
        or not all(
            isinstance(side, numbers.Integral) and side > 0
            for side in frame_size
        )
    ):
        raise ValueError(
            "`frame_size` must be None or (height, width), two positive "
            f"integers. Received: frame_size={frame_size!r}"
        )
