"""Lists the video files of a directory with their labels, as `keras.utils.
image_dataset_from_directory` does for images (Keras' own indexer is
private): regular files only, so that a named pipe, a socket or a device
with a video's name never blocks the listing."""

import dataclasses
import os
import stat

import numpy as np

# Containers FFmpeg reads; any codec inside them that PyAV decodes works.
VIDEO_FORMATS = (
    ".3gp",
    ".avi",
    ".flv",
    ".m2ts",
    ".m4v",
    ".mkv",
    ".mov",
    ".mp4",
    ".mpeg",
    ".mpg",
    ".mts",
    ".ogv",
    ".ts",
    ".webm",
    ".wmv",
)
# What `stat` calls the files that are not regular files.
FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


@dataclasses.dataclass(frozen=True)
class VideoListing:
    """The video files of a directory.

    Attributes:
        file_paths: The sorted paths of its regular files with a video
            extension.
        labels: int64 array, the label of each file.
        class_names: The class names (`None` for given labels).
        problems: `(path, reason)` for each class folder without videos
            and each path with a video extension that is no regular file.
    """

    file_paths: list
    labels: np.ndarray
    class_names: list | None
    problems: list


def list_video_files(
    directory, labels="inferred", class_names=None, follow_links=False
):
    """Lists the video files under `directory` and their integer labels.

    Args:
        directory: With `labels="inferred"`, one subfolder per class, each
            holding that class's videos (at any depth); otherwise every
            video under `directory`. A `str` or `os.PathLike`.
        labels: `"inferred"` (the class is the subfolder), or a list,
            tuple or 1-D array of integer labels, one per video file in
            the sorted order of their paths.
        class_names: Only with `labels="inferred"`: the subfolders to read,
            in the order of their labels (default: all, sorted).
        follow_links: Whether to enter subfolders that are symbolic links.

    Returns:
        A `VideoListing`.

    Example:

    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> for name in ("cat/a.mp4", "dog/b.webm", "dog/notes.txt"):
    ...     os.makedirs(os.path.dirname(os.path.join(root, name)),
    ...                 exist_ok=True)
    ...     open(os.path.join(root, name), "w").close()
    >>> os.mkfifo(os.path.join(root, "dog", "pipe.mp4"))
    >>> listing = list_video_files(root)
    >>> [os.path.relpath(path, root) for path in listing.file_paths]
    ['cat/a.mp4', 'dog/b.webm']
    >>> listing.labels.tolist(), listing.class_names
    ([0, 1], ['cat', 'dog'])
    >>> [(os.path.relpath(path, root), why) for path, why in listing.problems]
    [('dog/pipe.mp4', 'not a regular file: a named pipe')]
    """
    if isinstance(labels, str) and labels == "inferred":
        return inferred_listing(directory, class_names, follow_links)
    if class_names is not None:
        raise ValueError(
            '`class_names` is only valid with labels="inferred". '
            f"Received: class_names={class_names!r}"
        )
    paths, problems = list_videos(directory, follow_links)
    return VideoListing(paths, given_labels(labels, len(paths)), None, problems)


def inferred_listing(directory, class_names, follow_links):
    """`list_video_files` with the labels of the class subfolders."""
    folders = sorted(
        name
        for name in os.listdir(directory)
        if not name.startswith(".")
        and os.path.isdir(os.path.join(directory, name))
    )
    if class_names is None:
        class_names = folders
    check_class_names(class_names, folders)
    if not class_names:
        raise ValueError(
            "`directory` must hold one subfolder per class (or pass a list "
            f"of `labels`). Received: directory={directory!r}, which has "
            "no subfolder"
        )
    paths, labels, problems = [], [], []
    for label, name in enumerate(class_names):
        found, not_regular = list_videos(
            os.path.join(directory, name), follow_links
        )
        if not found:
            problems.append(
                (os.path.join(directory, name), "a class folder without videos")
            )
        problems += not_regular
        paths += found
        labels += [label] * len(found)
    return VideoListing(
        paths, np.array(labels, "int64"), list(class_names), problems
    )


def check_class_names(class_names, folders):
    """Raises `ValueError` unless `class_names` is a list or tuple of
    distinct subfolder names."""
    if not isinstance(class_names, (list, tuple)) or not all(
        isinstance(name, str) for name in class_names
    ):
        raise ValueError(
            "`class_names` must be None or a list or tuple of subfolder "
            f"names. Received: class_names={class_names!r}"
        )
    if len(set(class_names)) < len(class_names):
        raise ValueError(
            "`class_names` must name each class once. Received: "
            f"class_names={list(class_names)!r}"
        )
    if not set(class_names) <= set(folders):
        raise ValueError(
            "`class_names` must name subfolders of `directory`, one of "
            f"{folders}. Received: class_names={list(class_names)!r}"
        )


def list_videos(directory, follow_links):
    """The sorted paths of the regular video files at any depth under
    `directory`, and `(path, reason)` for the other paths with a video
    extension."""
    paths, problems = [], []
    for root, _, names in os.walk(directory, followlinks=follow_links):
        for name in names:
            if not name.lower().endswith(VIDEO_FORMATS):
                continue
            path = os.path.join(root, name)
            reason = not_regular(path)
            if reason:
                problems.append((path, reason))
            else:
                paths.append(path)
    return sorted(paths), sorted(problems)


def not_regular(path):
    """Why `path` is not a regular file (following links), or `""`."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return f"cannot be read: {error.strerror}"
    if stat.S_ISREG(mode):
        return ""
    kind = next((kind for test, kind in FILE_KINDS if test(mode)), "special")
    return f"not a regular file: {kind}"


def given_labels(labels, num_files):
    """Checks labels given for `num_files` files; returns them as int64."""
    array = np.asarray(labels) if isinstance(labels, np.ndarray) else None
    if (
        isinstance(labels, (list, tuple))
        or (array is not None and array.ndim == 1)
    ) and len(labels) == num_files:
        if all(
            isinstance(label, (int, np.integer)) and not isinstance(label, bool)
            for label in labels
        ):
            return np.array(labels, "int64")
    raise ValueError(
        '`labels` must be "inferred" or a list, tuple or 1-D array of '
        f"integer labels, one per video file ({num_files} found). "
        f"Received: labels={labels!r}"
    )
