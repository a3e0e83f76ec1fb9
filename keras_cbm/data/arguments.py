"""Checks of the arguments of the clip pipelines, with messages that name
the argument, what it must be and what it received."""

import numbers
import operator


def check_integer(name, value, minimum, maximum=None, bound_name=None):
    """Returns `value` as a Python int; raises `ValueError` unless it is an
    integer in the bounds.

    Python and NumPy integers, 0-d integer arrays and scalar integer tensors
    are accepted: TensorFlow would read a NumPy int64 as an int64 tensor,
    which the pipelines' int32 frame arithmetic refuses.

    Args:
        name: The argument's name, for the message.
        value: What the caller passed.
        minimum: The smallest value allowed.
        maximum: The largest value allowed, or `None` for no upper bound.
        bound_name: Optional text that says where a bound comes from, e.g.
            `"min_length - 1"`, shown next to its value in the message.

    Returns:
        `value` as a Python int.

    Example:

    >>> import numpy as np
    >>> check_integer("clips_per_video", np.int64(4), minimum=1)
    4
    """
    try:
        integer = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        integer = None
    if (
        integer is None
        or integer < minimum
        or (maximum is not None and integer > maximum)
    ):
        source = f" ({bound_name})" if bound_name else ""
        if maximum is None:
            expected = f"an integer >= {minimum}{source}"
        else:
            expected = f"an integer in [{minimum}, {maximum}{source}]"
        raise ValueError(
            f"Argument `{name}` must be {expected}; received {name}={value!r}."
        )
    return integer


def check_features(dataset, **keys):
    """Raises `ValueError` unless the dataset's elements are dicts holding
    every named feature.

    Args:
        dataset: A `tf.data.Dataset`.
        **keys: Argument name to feature key, e.g. `video_key="video"`.

    Example:

    >>> import tensorflow as tf
    >>> dataset = tf.data.Dataset.from_tensors({"video": [0], "label": 1})
    >>> check_features(dataset, video_key="video", label_key="label")
    """
    spec = dataset.element_spec
    if not isinstance(spec, dict):
        raise ValueError(
            "Argument `dataset` must hold dicts of features (e.g. "
            f"{{'video': ..., 'label': ...}}); received elements {spec!r}."
        )
    for name, key in keys.items():
        if key not in spec:
            raise ValueError(
                f"Argument `{name}` must name a feature of `dataset`, one of "
                f"{sorted(spec)}; received {name}={key!r}."
            )


def check_seed(seed):
    """Returns `seed` as a Python int (or `None`); raises `ValueError`
    unless it is `None` or an integer (NumPy integers too)."""
    if seed is None:
        return None
    try:
        if isinstance(seed, bool):
            raise TypeError
        return operator.index(seed)
    except TypeError:
        raise ValueError(
            f"`seed` must be None or an integer. Received: seed={seed!r}"
        ) from None


def check_choice(name, value, choices):
    """Raises `ValueError` unless `value` is one of `choices`."""
    if not isinstance(value, str) or value not in choices:
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
            isinstance(side, numbers.Integral)
            and not isinstance(side, bool)
            and side > 0
            for side in frame_size
        )
    ):
        raise ValueError(
            "`frame_size` must be None or (height, width), two positive "
            f"integers. Received: frame_size={frame_size!r}"
        )
