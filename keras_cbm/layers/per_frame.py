"""Runs frame functions on `(batch, time, ...)` sequences."""

from keras import ops


def apply_per_frame(function, sequences):
    """Applies a frame function to `(batch, time, ...)` sequences.

    Time is folded into the batch with reshapes, so `function` sees
    `(batch * time, ...)` frames. Unlike `keras.layers.TimeDistributed` in
    Keras 3.15, this keeps the right time length when batch and time are
    both dynamic in a traced function.

    Args:
        function: A callable from `(frames, ...)` to `(frames, ...)`.
        sequences: A tensor `(batch, time, ...)` with static dimensions
            after `time`.

    Returns:
        `function`'s output with `(batch, time)` restored in front.

    Example:

    >>> pool = keras.layers.MaxPooling2D(2)
    >>> videos = np.zeros((2, 3, 8, 8, 4), "float32")
    >>> tuple(apply_per_frame(pool, videos).shape)
    (2, 3, 4, 4, 4)
    """
    batch_size, steps = ops.shape(sequences)[0], ops.shape(sequences)[1]
    outputs = function(
        ops.reshape(sequences, (-1,) + tuple(sequences.shape[2:]))
    )
    return ops.reshape(outputs, (batch_size, steps) + tuple(outputs.shape[1:]))
