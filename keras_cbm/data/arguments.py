"""Checks of the arguments of the clip pipelines, with messages that name
the argument, what it must be and what it received."""

import numbers


def check_integer(name, value, minimum, maximum=None, bound_name=None):
    """Raises `ValueError` unless `value` is an integer in the bounds.

    Args:
        name: The argument's name, for the message.
        value: What the caller passed.
        minimum: The smallest value allowed.
        maximum: The largest value allowed, or `None` for no upper bound.
        bound_name: Optional text that says where a bound comes from, e.g.
            `"min_length - 1"`, shown next to its value in the message.

    Returns:
        `value`, unchanged.

    Example:

    >>> check_integer("clips_per_video", 4, minimum=1)
    4
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        source = f" ({bound_name})" if bound_name else ""
        if maximum is None:
            expected = f"an integer >= {minimum}{source}"
        else:
            expected = f"an integer in [{minimum}, {maximum}{source}]"
        raise ValueError(
            f"Argument `{name}` must be {expected}; received {name}={value!r}."
        )
    return value


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
