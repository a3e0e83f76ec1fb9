"""Temporal Dropout: blocks back-propagation from the T unit into its input."""

from keras import ops
from keras import random


def check_rate(name, value):
    """Raises a `ValueError` naming `name` unless `0 <= value <= 1`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"`{name}` must be a float in [0, 1]. Received: {name}={value!r}"
        )
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"`{name}` must be in [0, 1]. Received: {name}={value}"
        )


def sample_gradient_gate(rate, seed_generator):
    """Draws one Bernoulli gate: 0 (blocked) with probability `rate`, else 1.

    The draw is a traced op on `seed_generator`'s state, so a compiled
    function draws anew at every call and a seed reproduces the sequence.

    Args:
        rate: Float in [0, 1], the probability of blocking.
        seed_generator: A `keras.random.SeedGenerator`.

    Returns:
        A float32 scalar tensor, 0.0 or 1.0.
    """
    uniform = random.uniform((), seed=seed_generator)
    return ops.cast(ops.greater_equal(uniform, rate), "float32")


def temporal_dropout(inputs, gate):
    """Identity forward; the gradient into `inputs` is multiplied by `gate`.

    `td(x) = stop_gradient(x) + gate * (x - stop_gradient(x))`: the value is
    exactly `x`, and with `gate == 0` no gradient reaches `x` through the
    result, while weights applied to the result still get theirs.

    Args:
        inputs: A tensor.
        gate: A scalar tensor, 0.0 (block) or 1.0 (pass).

    Returns:
        A tensor equal to `inputs`.
    """
    frozen = ops.stop_gradient(inputs)
    return frozen + ops.cast(gate, inputs.dtype) * (inputs - frozen)
