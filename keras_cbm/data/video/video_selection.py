"""Selects the video files a directory dataset reads: lists them, indexes
every one (which refuses what is not a whole, decodable video, see
`video_index`), reports or raises on the others, and splits the rest."""

import dataclasses
import warnings

import numpy as np
import tensorflow as tf

from keras_cbm.data.video.file_split import split_files
from keras_cbm.data.video.video_index import VideoFileError
from keras_cbm.data.video.video_index import frame_index
from keras_cbm.data.video.video_listing import list_video_files


@dataclasses.dataclass(frozen=True)
class VideoFiles:
    """The readable video files of one subset.

    Attributes:
        file_paths: The files, in the order of their `video_id`.
        labels: int64 array, one label per file.
        class_names: The class names, or `None` for given labels.
        num_frames: The frames of each file.
    """

    file_paths: list
    labels: np.ndarray
    class_names: list | None
    num_frames: list

    def dataset(self, shuffle, seed):
        """`{"path", "label", "video_id", "num_frames"}` per file."""
        files = tf.data.Dataset.from_tensor_slices(
            {
                "path": tf.constant(self.file_paths, tf.string),
                "label": np.asarray(self.labels, "int64"),
                "video_id": np.arange(len(self.file_paths), dtype="int64"),
                "num_frames": np.array(self.num_frames, "int32"),
            }
        )
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


def select_video_files(options):
    """Lists, indexes, checks and splits the files of a directory.

    Every file is indexed once (cached, see `video_index`); the files that
    fail and the class folders without videos raise one `ValueError` that
    names each with its reason or, with `on_error="skip"`, are left out
    with one warning that does. Files whose timestamps cannot identify
    frames are named in one warning: they are read by decoding from their
    start.

    Args:
        options: `DirectoryOptions`.

    Returns:
        A list of `VideoFiles`, one per subset.
    """
    listing = list_video_files(
        options.directory,
        options.labels,
        options.class_names,
        options.follow_links,
    )
    problems = list(listing.problems)
    readable, labels, num_frames, sequential = [], [], [], []
    for path, label in zip(listing.file_paths, listing.labels, strict=True):
        try:
            index = frame_index(path)
        except VideoFileError as error:
            problems.append((path, str(error.reason)))
            continue
        readable.append(path)
        labels.append(label)
        num_frames.append(index.num_frames)
        if index.sequential:
            sequential.append((path, index.sequential))
    report = "; ".join(f"{path} ({reason})" for path, reason in problems)
    if problems and options.on_error == "raise":
        raise ValueError(
            f"`directory` must hold readable videos in every class folder; "
            f"{len(problems)} problem(s): {report}. Pass on_error='skip' to "
            f"leave them out. Received: directory={options.directory!r}"
        )
    if problems:
        warnings.warn(
            f"Skipped {len(problems)} of "
            f"{len(listing.file_paths) + len(listing.problems)} video files "
            f"and class folders: {report}",
            stacklevel=3,
        )
    if sequential:
        warnings.warn(
            f"{len(sequential)} video file(s) will be decoded from their "
            "start for every read (slower), as their timestamps cannot "
            "identify frames: "
            + "; ".join(f"{path} ({reason})" for path, reason in sequential),
            stacklevel=3,
        )
    if not readable:
        raise ValueError(
            "`directory` must hold at least one readable video file "
            "(extensions: see video_listing.VIDEO_FORMATS). Received: "
            f"directory={options.directory!r}"
        )
    counts = dict(zip(readable, num_frames, strict=True))
    return [
        VideoFiles(
            subset_paths,
            np.array(subset_labels, "int64"),
            listing.class_names,
            [counts[path] for path in subset_paths],
        )
        for subset_paths, subset_labels in split_files(
            readable,
            labels,
            options.validation_split,
            options.subset,
            options.seed,
            options.shuffle,
        )
    ]
