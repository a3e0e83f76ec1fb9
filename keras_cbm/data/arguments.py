"""Checks of the arguments of the clip pipelines, with messages that name
the argument, what it must be and what it received."""

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
