"""Lists the video files of a directory with their labels, and splits them
into training and validation subsets, as `keras.utils.
image_dataset_from_directory` does for images (Keras' own indexer is
private)."""

import os

import numpy as np

# Containers FFmpeg reads; any codec inside them that PyAV decodes works.
VIDEO_FORMATS = (
    ".3gp",
    ".avi",
    ".flv",
    ".m4v",
    ".mkv",
    ".mov",
    ".mp4",
    ".mpeg",
    ".mpg",
    ".ogv",
    ".webm",
    ".wmv",
)

SUBSETS = ("training", "validation", "both")


def index_video_directory(
    directory, labels="inferred", class_names=None, follow_links=False
):
    """Lists the video files under `directory` and their integer labels.

    Args:
        directory: With `labels="inferred"`, one subfolder per class, each
            holding that class's videos (at any depth); otherwise every
            video under `directory`.
        labels: `"inferred"` (the class is the subfolder), or a list or
            tuple of integer labels, one per video file in the sorted order
            of their paths.
        class_names: Only with `labels="inferred"`: the subfolders to read,
            in the order of their labels (default: all, sorted).
        follow_links: Whether to enter subfolders that are symbolic links.

    Returns:
        `(file_paths, labels, class_names, empty_classes)`: sorted paths, a
        matching int64 array of labels, the class names (`None` for given
        labels) and the class folders that hold no video file.

    Example:

    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> for name in ("cat/a.mp4", "dog/b.webm", "dog/notes.txt"):
    ...     os.makedirs(os.path.dirname(os.path.join(root, name)),
    ...                 exist_ok=True)
    ...     open(os.path.join(root, name), "w").close()
    >>> paths, labels, names, empty = index_video_directory(root)
    >>> [os.path.relpath(p, root) for p in paths], labels.tolist(), names
    (['cat/a.mp4', 'dog/b.webm'], [0, 1], ['cat', 'dog'])
    """
    if not os.path.isdir(directory):
        raise ValueError(
            "`directory` must be an existing folder. "
            f"Received: directory={directory!r}"
        )
    if labels != "inferred":
        if class_names is not None:
            raise ValueError(
                '`class_names` is only valid with labels="inferred". '
                f"Received: class_names={class_names!r}"
            )
        paths = list_videos(directory, follow_links)
        return paths, given_labels(labels, len(paths)), None, []
    folders = sorted(
        name
        for name in os.listdir(directory)
        if not name.startswith(".")
        and os.path.isdir(os.path.join(directory, name))
    )
    if class_names is None:
        class_names = folders
    elif not set(class_names) <= set(folders):
        raise ValueError(
            "`class_names` must name subfolders of `directory`, one of "
            f"{folders}. Received: class_names={list(class_names)!r}"
        )
    if not class_names:
        raise ValueError(
            "`directory` must hold one subfolder per class (or pass a list "
            f"of `labels`). Received: directory={directory!r}, which has "
            "no subfolder"
        )
    paths, label_list, empty = [], [], []
    for label, name in enumerate(class_names):
        found = list_videos(os.path.join(directory, name), follow_links)
        if not found:
            empty.append(os.path.join(directory, name))
        paths += found
        label_list += [label] * len(found)
    return paths, np.array(label_list, "int64"), list(class_names), empty


def list_videos(directory, follow_links):
    """The sorted paths of the video files at any depth under `directory`."""
    return sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(directory, followlinks=follow_links)
        for name in names
        if name.lower().endswith(VIDEO_FORMATS)
    )


def given_labels(labels, num_files):
    """Checks a list of labels given for `num_files` files."""
    if not isinstance(labels, (list, tuple)) or len(labels) != num_files:
        raise ValueError(
            '`labels` must be "inferred" or a list or tuple of integer '
            f"labels, one per video file ({num_files} found). Received: "
            f"labels={labels!r}"
        )
    return np.array(labels, "int64")


def split_video_files(
    file_paths, labels, validation_split, subset, seed, shuffle
):
    """Splits files into a training and a validation subset, as Keras'
    `*_dataset_from_directory` do: the files are permuted by `seed` (when
    `shuffle`) and the last `int(validation_split * n)` validate.

    Args:
        file_paths: List of paths.
        labels: Array of labels, one per path.
        validation_split: `None`, or a float in `(0, 1)`.
        subset: `None` (no split), `"training"`, `"validation"` or
            `"both"`.
        seed: Integer; required when splitting shuffled files, so that
            the two subsets never overlap.
        shuffle: Whether to permute the files before splitting.

    Returns:
        A list of `(file_paths, labels)` pairs: one subset, or the
        training and the validation subsets for `subset="both"`.

    Example:

    >>> split_video_files(["a", "b", "c", "d"], [0, 0, 1, 1], 0.5,
    ...                   "validation", None, shuffle=False)
    [(['c', 'd'], [1, 1])]
    """
    if (validation_split is None) != (subset is None):
        raise ValueError(
            "`validation_split` and `subset` must be set together. "
            f"Received: validation_split={validation_split!r}, "
            f"subset={subset!r}"
        )
    if validation_split is None:
        return [(file_paths, labels)]
    if not 0 < validation_split < 1:
        raise ValueError(
            "`validation_split` must be a float in (0, 1). "
            f"Received: validation_split={validation_split!r}"
        )
    if subset not in SUBSETS:
        raise ValueError(
            f"`subset` must be one of {SUBSETS}. Received: subset={subset!r}"
        )
    if shuffle and seed is None:
        raise ValueError(
            "`seed` must be an integer when `validation_split` splits "
            "shuffled files, so that the subsets never overlap. Received: "
            "seed=None"
        )
    order = np.arange(len(file_paths))
    if shuffle:
        np.random.RandomState(seed).shuffle(order)
    num_training = len(order) - int(validation_split * len(order))
    subsets = {
        "training": order[:num_training],
        "validation": order[num_training:],
    }
    names = ("training", "validation") if subset == "both" else (subset,)
    return [
        (
            [file_paths[i] for i in subsets[name]],
            [labels[i] for i in subsets[name]],
        )
        for name in names
    ]
