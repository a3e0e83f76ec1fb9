"""Which frames of a video train toward its label: per-frame loss weights,
so that a frame whose label cannot be known yet need not be trained toward
it."""

from keras import ops

_TARGETS = "`'all'`, `('last', k)` or `('from', j)` with an integer >= 0"


def check_targets(targets, allow_given=False):
    """Raises `ValueError` unless `targets` names frame targets.

    Args:
        targets: See `frame_weights`.
        allow_given: Whether `"given"` (weights from the inputs) counts.
    """
    if targets == "all" or (allow_given and targets == "given"):
        return
    if (
        isinstance(targets, (tuple, list))
        and len(targets) == 2
        and targets[0] in ("last", "from")
        and isinstance(targets[1], int)
        and not isinstance(targets[1], bool)
        and targets[1] >= (1 if targets[0] == "last" else 0)
    ):
        return
    expected = _TARGETS + (" or `'given'`" if allow_given else "")
    raise ValueError(
        f"`targets` must be {expected} (k >= 1). Received: targets={targets!r}"
    )


def frame_weights(frame_index, video_length, targets="all"):
    """The loss weight (1 or 0) of frames of a video, by their index.

    Args:
        frame_index: Integer tensor of absolute frame indices (any shape;
            negative: padding, weight 0).
        video_length: The number of frames of the video, an integer or a
            tensor broadcastable to `frame_index`.
        targets: `"all"` (every frame, the paper's), `("last", k)` (the
            video's last `k` frames) or `("from", j)` (frame `j` on).

    Returns:
        A float32 tensor of the shape of `frame_index`.

    Example:

    >>> weights = frame_weights(np.arange(6), 6, ("last", 2))
    >>> keras.ops.convert_to_numpy(weights).tolist()
    [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    """
    check_targets(targets)
    frame_index = ops.convert_to_tensor(frame_index, "int32")
    first = first_target_frame(
        ops.convert_to_tensor(video_length, "int32"), targets
    )
    return ops.cast(frame_index >= ops.maximum(first, 0), "float32")


def first_target_frame(video_length, targets):
    """The index of the first frame `targets` train (may be negative: all
    frames), by arithmetic only, so that any framework's integers serve
    (`keras_cbm.data`'s tf.data pipelines use it with TensorFlow's)."""
    if targets == "all":
        return 0
    if targets[0] == "last":
        return video_length - targets[1]
    return targets[1]
