"""Shared test helpers: random data and weights, and gradients on whichever
backend runs (the layers are backend-agnostic; differentiation is not)."""

import keras
import numpy as np
import pytest

# Checks of structure and configuration read no backend-specific numerics:
# they run once, on TensorFlow, which keeps the JAX part of the suite short.
tensorflow_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="backend-neutral (structure or configuration): run on TensorFlow",
)


def randomize_weights(layer, seed=0):
    """Gives `layer` random normal weights; returns them in float64."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.normal(0.0, 0.3, w.shape) for w in layer.get_weights()]
    )
    return [w.astype("float64") for w in layer.get_weights()]


def random_sequences(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _weighted_sum(outputs, cotangent):
    if isinstance(outputs, (list, tuple)):  # With `return_state`.
        outputs = outputs[0]
    return keras.ops.sum(outputs * cotangent)


def layer_gradients(layer, inputs, cotangent, **call_kwargs):
    """Gradients of `sum(layer(inputs) * cotangent)` (of the first output
    when the layer returns several).

    Returns:
        `(gradient w.r.t. inputs, [gradients w.r.t. trainable weights])`
        as NumPy arrays.
    """
    if keras.backend.backend() == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        frozen = [v.value for v in layer.non_trainable_variables]

        def loss(x, weights):
            outputs, _ = layer.stateless_call(weights, frozen, x, **call_kwargs)
            return _weighted_sum(outputs, cotangent)

        grad_x, grad_w = jax.grad(loss, argnums=(0, 1))(inputs, trainable)
    else:
        import tensorflow as tf

        inputs = tf.convert_to_tensor(inputs)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = _weighted_sum(layer(inputs, **call_kwargs), cotangent)
        grad_x, *grad_w = tape.gradient(
            loss, [inputs] + layer.trainable_variables
        )
    return np.asarray(grad_x), [np.asarray(g) for g in grad_w]


def compiled_input_gradient(layer, **call_kwargs):
    """A compiled function `x -> d sum(layer(x)) / dx` that keeps the
    layer's random state between calls (`tf.function` or `jax.jit`)."""
    if keras.backend.backend() == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        state = {"frozen": [v.value for v in layer.non_trainable_variables]}

        @jax.jit
        def step(frozen, x):
            def loss(x):
                outputs, new_frozen = layer.stateless_call(
                    trainable, frozen, x, **call_kwargs
                )
                return keras.ops.sum(outputs), new_frozen

            return jax.grad(loss, has_aux=True)(x)

        def gradient(x):
            grad_x, state["frozen"] = step(state["frozen"], x)
            return np.asarray(grad_x)

        return gradient

    import tensorflow as tf

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = keras.ops.sum(layer(x, **call_kwargs))
        return tape.gradient(loss, x)

    return lambda x: step(tf.convert_to_tensor(x)).numpy()


def paper_cell(**kwargs):
    """The paper's cell (`PAPER_CELL`, the NumPy reference's defaults) with
    `kwargs` on top, as layer keyword arguments."""
    from keras_cbm.layers import PAPER_CELL

    return {**PAPER_CELL, **kwargs}
