"""The two backend-specific pieces of a rematerialised chunked run: a
function with its own backward pass, and the gradient of one chunk's run,
computed inside a symbolic loop's body.

Keras' `keras.remat` cannot serve inside a loop: TensorFlow's
`tf.recompute_grad` fails to differentiate in a `tf.while_loop` of a
`tf.function` (its variable captures), so the backward pass that recomputes
each chunk is written out, once per backend."""

import keras


def with_backward(forward, backward):
    """`forward` with `backward` as its gradient.

    Args:
        forward: `forward(*args) -> outputs`, `args` and `outputs` nested
            structures of tensors.
        backward: `backward(args, cotangents) -> gradients`: the
            cotangents of `outputs` (in their structure) to the gradients
            of `args`, a tuple with one entry per argument, in its
            structure (`None` for an argument without gradient).

    Returns:
        A function of `*args` that returns `forward(*args)`, differentiated
        (Keras' training step, `GradientTape`, `jax.grad`) by `backward`.
    """
    if keras.backend.backend() == "jax":
        import jax

        differentiated = jax.custom_vjp(forward)
        differentiated.defvjp(
            lambda *args: (forward(*args), args),
            # `None` is JAX's zero cotangent of a whole argument.
            lambda args, cotangents: tuple(backward(args, cotangents)),
        )
        return differentiated

    import tensorflow as tf

    def differentiated(*args):
        structure = []

        # `tf.custom_gradient` takes flat tensors in and out.
        @tf.custom_gradient
        def flat_forward(*flat_args):
            packed = keras.tree.pack_sequence_as(args, list(flat_args))
            outputs = forward(*packed)
            structure.append(outputs)

            def gradient(*flat_cotangents):
                cotangents = keras.tree.pack_sequence_as(
                    outputs, list(flat_cotangents)
                )
                gradients = backward(packed, cotangents)
                return [
                    flat
                    for arg, gradient in zip(packed, gradients, strict=True)
                    for flat in (
                        [None] * len(keras.tree.flatten(arg))
                        if gradient is None
                        else keras.tree.flatten(gradient)
                    )
                ]

            return keras.tree.flatten(outputs), gradient

        flat_outputs = flat_forward(*keras.tree.flatten(args))
        return keras.tree.pack_sequence_as(structure[0], flat_outputs)

    return differentiated


def value_and_gradients(function, args):
    """`function(*args) -> (scalar, aux)` run once, with the gradients of
    the scalar in every argument (a tensor or a list of tensors).

    Returns:
        `(aux, gradients)`, `gradients` a tuple with one entry per argument
        in its structure (zeros where the scalar does not depend on it).
    """
    if keras.backend.backend() == "jax":
        import jax

        gradients, aux = jax.grad(
            function, argnums=tuple(range(len(args))), has_aux=True
        )(*args)
        return aux, gradients

    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(args)
        value, aux = function(*args)
    gradients = tape.gradient(
        value, list(args), unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return aux, tuple(gradients)
