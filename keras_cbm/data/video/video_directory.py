"""Datasets of the video files in a directory: whole decoded videos
(`video_dataset_from_directory`), or overlapping clips of which only the
frames are decoded (`video_clips_from_directory`). Which files are read is
`video_selection`'s job, what a file that fails later does
`decode_errors`'."""

import tensorflow as tf

from keras_cbm.data.clip_inputs import clip_inputs
from keras_cbm.data.overlapping_clips import check_overlapping_arguments
from keras_cbm.data.overlapping_clips import check_targets_and_past
from keras_cbm.data.overlapping_clips import clip_frame_weights
from keras_cbm.data.overlapping_clips import map_overlapping_alignment
from keras_cbm.data.overlapping_clips import placement_weights
from keras_cbm.data.video.decode_errors import DecodeErrors
from keras_cbm.data.video.decoding_processes import DecodingProcesses
from keras_cbm.data.video.directory_options import DirectoryOptions
from keras_cbm.data.video.frame_resize import resize
from keras_cbm.data.video.video_reader import read_frames
from keras_cbm.data.video.video_reader import read_video
from keras_cbm.data.video.video_selection import select_video_files

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
    apply_rotation=True,
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
    Regular files with the extensions of `video_listing.VIDEO_FORMATS`
    are read at any depth of a class folder, in any codec FFmpeg decodes
    (PyAV). Frame `k` of a video is the `k`-th frame a sequential decode
    outputs, turned as the file's display matrix says (unless
    `apply_rotation=False`) and scaled to the first frame's size where the
    size changes mid-file. The elements are those `overlapping_clips` and
    `uniform_clips` read; for long videos, `video_clips_from_directory`
    decodes only the clips' frames instead.

    Bad input is caught when the dataset is made (every file is indexed
    once, see `video_index`): a file FFmpeg cannot open or decode, a still
    image, a truncated file, a file without a video stream, a path that is
    no regular file (a named pipe) and a class folder without videos raise
    one `ValueError` naming each with its reason; with `on_error="skip"`
    they are left out (`file_paths` lists the files used) and the empty
    classes kept (so no label moves), with one warning that names each. A
    file that fails later, while decoded (changed since, or its decoder
    process crashed or hung), raises an error naming it, or is left out
    with a warning that names it the first time.

    Args:
        directory: The folder of the videos.
        labels: `"inferred"` (from the subfolders), or a list, tuple or
            1-D array of integer labels, one per video file under
            `directory`, in the sorted order of their paths.
        class_names: Only with `labels="inferred"`: the subfolders to read,
            in the order of their labels (default: all, sorted).
        color_mode: `"rgb"` (3 channels) or `"grayscale"` (1 channel).
        frame_size: `None` (frames as stored), or `(height, width)` to
            resize every frame to.
        interpolation: The `tf.image.resize` method of `frame_size`.
        apply_rotation: Whether to turn and mirror frames as the file's
            display matrix says (phones' portrait videos); `frame_size`
            applies after.
        validation_split: Optional float in `(0, 1)`, the fraction of the
            files held out for validation (at least one file).
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
    datasets = []
    for files in select_video_files(options):
        errors = DecodeErrors(on_error, options.channels)

        def decode(element, errors=errors):
            video = tf.numpy_function(
                errors.guard(
                    lambda path: DECODERS.run(
                        read_video, path, color_mode, apply_rotation
                    )
                ),
                [element.pop("path")],
                tf.uint8,
                stateful=False,
            )
            video.set_shape((None, None, None, options.channels))
            element.pop("num_frames")
            return dict(element, video=video)

        videos = files.dataset(shuffle, options.seed).map(
            decode, num_parallel_calls=decoding_calls(num_parallel_calls)
        )
        videos = errors.filter(videos, lambda element: element["video"])
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
    apply_rotation=True,
    validation_split=None,
    subset=None,
    seed=None,
    shuffle=True,
    follow_links=False,
    on_error="raise",
    num_parallel_calls=tf.data.AUTOTUNE,
    targets=None,
    placement="uniform",
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

    Frame counts and seek points come from a frame index read once per
    file and cached (see `video_index`); a file whose timestamps cannot
    identify frames (repeated, restarting) is decoded from its start for
    every read, and named in a warning when the dataset is made. Files,
    classes, labels, splits and bad files are handled as in
    `video_dataset_from_directory`.

    Args:
        directory: The folder of the videos, as in
            `video_dataset_from_directory`.
        clips_per_video, min_length, max_length, min_overlap, frame_stride:
            As in `overlapping_clips`.
        labels, class_names, color_mode, frame_size, interpolation: As in
            `video_dataset_from_directory`.
        apply_rotation, validation_split, subset, follow_links: As in
            `video_dataset_from_directory`.
        on_error, num_parallel_calls: As in
            `video_dataset_from_directory`.
        seed: Optional integer: the order of the files, the split and the
            clips.
        shuffle: Whether to read the files in a new random order in every
            iteration.
        targets, placement: As in `overlapping_clips` (frame targets of
            each file's frames, not `"given"`: adds `"frame_weights"`; the
            weighted placement draws the clips' ends by them).

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
    weights = placement_weights(placement, targets)
    datasets = []
    for files in select_video_files(options):
        check_targets_and_past(files.dataset(False, None), targets, None)
        errors = DecodeErrors(on_error, options.channels)

        def decode(index, element, alignment, errors=errors):
            # The distinct frames of all clips, sorted: each is decoded
            # once, however many clips hold it.
            frame_indices, _ = tf.unique(
                tf.boolean_mask(alignment, alignment >= 0)
            )
            frame_indices = tf.sort(frame_indices)
            frames = tf.numpy_function(
                errors.guard(
                    lambda path, indices: DECODERS.run(
                        read_frames, path, indices, color_mode, apply_rotation
                    )
                ),
                [element["path"], frame_indices],
                tf.uint8,
                stateful=False,
            )
            frames.set_shape((None, None, None, options.channels))
            return {
                "frames": frames,
                "frame_indices": frame_indices,
                "alignment": alignment,
                "num_frames": element["num_frames"],
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
            inputs["alignment"] = alignment
            if targets is not None:
                inputs["frame_weights"] = clip_frame_weights(
                    targets, element, element["num_frames"], alignment
                )
            return inputs, element["label"]

        clips = map_overlapping_alignment(
            files.dataset(shuffle, options.seed),
            decode,
            lambda element: element["num_frames"],
            clips_per_video,
            min_length,
            max_length,
            min_overlap,
            frame_stride,
            options.seed,
            decoding_calls(num_parallel_calls),
            weights,
        )
        clips = errors.filter(clips, lambda element: element["frames"])
        clips = clips.map(cut, num_parallel_calls=num_parallel_calls)
        datasets.append(files.describe(clips))
    return datasets[0] if len(datasets) == 1 else datasets
