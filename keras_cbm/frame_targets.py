"""Which frames of a video train toward its label: per-frame loss weights,
so that a frame whose label cannot be known yet need not be trained toward
it.

A data concept that both sides read: `keras_cbm.data`'s pipelines mark the
target frames of their clips and chunks, `keras_cbm.training`'s trainers
weigh whole videos' frames (and export `FrameTargets` and
`frame_weights`). It needs only Keras, on any backend: under
`keras_cbm.data`, whose package imports TensorFlow, the backend-neutral
trainers could not import it.
"""

import keras
from keras import ops


def _is_count(value, least):
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= least
    )


@keras.saving.register_keras_serializable(package="keras_cbm")
class FrameTargets:
    """Which frames of a video train toward its label.

    With neither argument, every frame (the paper's scheme). A trainer's
    config holds it as a plain dict, so it round-trips through JSON.

    Args:
        last: `None`, or an integer >= 1: the video's last `last` frames.
        start: `None`, or an integer >= 0: the frames from index `start`
            on.

    Example:

    >>> FrameTargets(last=2).first_frame(6)
    4
    >>> FrameTargets.from_config(FrameTargets(start=3).get_config())
    FrameTargets(start=3)
    """

    def __init__(self, last=None, start=None):
        if (last is not None and start is not None) or not (
            last is None or _is_count(last, 1)
        ):
            raise ValueError(
                "`last` must be None or an integer >= 1, and None when "
                f"`start` is given. Received: last={last!r}, start={start!r}"
            )
        if not (start is None or _is_count(start, 0)):
            raise ValueError(
                "`start` must be None or an integer >= 0. Received: "
                f"start={start!r}"
            )
        self.last = last
        self.start = start

    def first_frame(self, video_length):
        """The index of the first target frame of a video of
        `video_length` frames (may be negative: every frame), by arithmetic
        only, so that any framework's integers serve (`keras_cbm.data`'s
        tf.data pipelines use it with TensorFlow's)."""
        if self.last is not None:
            return video_length - self.last
        return 0 if self.start is None else self.start

    def get_config(self):
        return {"last": self.last, "start": self.start}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return (
            isinstance(other, FrameTargets)
            and self.get_config() == other.get_config()
        )

    def __hash__(self):
        return hash((self.last, self.start))

    def __repr__(self):
        arguments = ", ".join(
            f"{key}={value}"
            for key, value in self.get_config().items()
            if value is not None
        )
        return f"FrameTargets({arguments})"


_TARGETS = (
    "`'all'`, a `FrameTargets`, or the short forms `('last', k)` (k >= 1) "
    "and `('from', j)` (j >= 0)"
)


def check_targets(targets, allow_given=False):
    """The `FrameTargets` that `targets` names (`"given"` as it is);
    raises `ValueError` for anything else.

    Args:
        targets: `"all"`, a `FrameTargets`, its config as serialised by
            `keras.saving.serialize_keras_object`, or the short forms
            `("last", k)` and `("from", j)` (a list too, as JSON gives a
            tuple back).
        allow_given: Whether `"given"` (weights from the inputs) counts.
    """
    if isinstance(targets, dict):
        targets = keras.saving.deserialize_keras_object(targets)
    if isinstance(targets, FrameTargets):
        return targets
    if isinstance(targets, str):
        if targets == "all":
            return FrameTargets()
        if allow_given and targets == "given":
            return targets
    if (
        isinstance(targets, (tuple, list))
        and len(targets) == 2
        and targets[0] in ("last", "from")
        and _is_count(targets[1], 1 if targets[0] == "last" else 0)
    ):
        if targets[0] == "last":
            return FrameTargets(last=targets[1])
        return FrameTargets(start=targets[1])
    expected = _TARGETS + (" or `'given'`" if allow_given else "")
    raise ValueError(
        f"`targets` must be {expected}. Received: targets={targets!r}"
    )


def frame_weights(frame_index, video_length, targets="all"):
    """The loss weight (1 or 0) of frames of a video, by their index.

    Args:
        frame_index: Integer tensor of absolute frame indices (any shape;
            negative: padding, weight 0).
        video_length: The number of frames of the video, an integer or a
            tensor broadcastable to `frame_index`.
        targets: `"all"` (every frame, the paper's) or a `FrameTargets`
            (see `check_targets` for the short forms).

    Returns:
        A float32 tensor of the shape of `frame_index`.

    Example:

    >>> weights = frame_weights(np.arange(6), 6, FrameTargets(last=2))
    >>> keras.ops.convert_to_numpy(weights).tolist()
    [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    """
    frame_index = ops.convert_to_tensor(frame_index, "int32")
    first = first_target_frame(
        ops.convert_to_tensor(video_length, "int32"), targets
    )
    return ops.cast(frame_index >= ops.maximum(first, 0), "float32")


def first_target_frame(video_length, targets):
    """The index of the first frame `targets` train (may be negative: all
    frames); see `FrameTargets.first_frame`."""
    return check_targets(targets).first_frame(video_length)
