"""Splits files into training and validation subsets, as Keras'
`*_dataset_from_directory` do."""

import numbers

import numpy as np

SUBSETS = ("training", "validation", "both")


def split_files(file_paths, labels, validation_split, subset, seed, shuffle):
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
            the two subsets never overlap (see `check_split_arguments`).
        shuffle: Whether to permute the files before splitting.

    Returns:
        A list of `(file_paths, labels)` pairs: one subset, or the
        training and the validation subsets for `subset="both"`.

    Example:

    >>> split_files(["a", "b", "c", "d"], [0, 0, 1, 1], 0.5,
    ...             "validation", None, shuffle=False)
    [(['c', 'd'], [1, 1])]
    """
    if validation_split is None:
        return [(file_paths, labels)]
    if int(validation_split * len(file_paths)) == 0:
        raise ValueError(
            "`validation_split` must leave at least one file for "
            f"validation: {validation_split} of {len(file_paths)} readable "
            f"file(s) is less than one. Received: "
            f"validation_split={validation_split!r}"
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


def check_split_arguments(validation_split, subset, seed, shuffle):
    """Raises `ValueError` unless the arguments make a split (or none)."""
    if (validation_split is None) != (subset is None):
        raise ValueError(
            "`validation_split` and `subset` must be set together. "
            f"Received: validation_split={validation_split!r}, "
            f"subset={subset!r}"
        )
    if validation_split is None:
        return
    if (
        not isinstance(validation_split, numbers.Real)
        or isinstance(validation_split, bool)
        or not 0 < validation_split < 1
    ):
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
