"""Running a model stateless in its non-trainable variables: what a traced
loop or a rematerialised function needs of batch-normalisation statistics
and dropout seed generators on TensorFlow and JAX."""

import keras
from keras import ops

from keras_cbm.keras_internals import in_stateless_scope


def run_with_values(
    model, values, function, *args, collect_losses=False, trainable=None
):
    """Calls `function(*args)` with `model`'s non-trainable variables read
    from `values` and their updates returned, none assigned.

    A traced loop body or a rematerialised function must not assign
    variables: JAX refuses updates that escape `jax.lax.scan` or
    `jax.checkpoint` (`UnexpectedTracerError`), and a rematerialised run
    would update twice. The caller threads the values (through a loop's
    carry) and assigns the last ones once (`assign_values`).

    Args:
        model: The Keras model `function` runs.
        values: One tensor per variable of `model.non_trainable_variables`.
        function: A callable.
        *args: Its arguments.
        collect_losses: Whether to return the losses that layers add
            (`add_loss`, `activity_regularizer`) in `function`; else they
            are dropped, as in any stateless call that does not collect
            them.
        trainable: Optional values of `model.trainable_variables` to run
            with (what a function differentiated in the weights takes as
            arguments); `None` reads the variables.

    Returns:
        `(result, new_values)`: what `function` returned, and the values of
        `model.non_trainable_variables` after it; with `collect_losses`,
        `(result, new_values, losses)`, `losses` a list of scalars.
    """
    variables = model.non_trainable_variables
    mapping = list(zip(variables, values, strict=True))
    if trainable is not None:
        mapping += list(zip(model.trainable_variables, trainable, strict=True))
    elif in_stateless_scope():
        # JAX's training step maps every variable to a value; an inner
        # scope hides the outer one, so it maps them all.
        mapping += [(v, v.value) for v in model.trainable_variables]
    with keras.StatelessScope(
        state_mapping=mapping, collect_losses=collect_losses
    ) as scope:
        result = function(*args)
    new_values = [scope.get_current_value(v) for v in variables]
    if collect_losses:
        return result, new_values, list(scope.losses)
    return result, new_values


def current_values(model):
    """The values of `model.non_trainable_variables`, a list."""
    return [variable.value for variable in model.non_trainable_variables]


def assign_values(model, values):
    """Assigns `values` to `model.non_trainable_variables`."""
    for variable, value in zip(
        model.non_trainable_variables, values, strict=True
    ):
        variable.assign(value)


def fori_loop_with_values(model, iterations, body, carry):
    """`keras.ops.fori_loop(0, iterations, body, carry)` for a `body` that
    runs `model`, its non-trainable variables threaded through the loop's
    carry (`run_with_values`) and assigned once after it.

    Inference runs need it too: Keras' recurrent layers draw their dropout
    masks (seed-generator updates) whatever the mode. The losses layers add
    in `body` are not collected: a loop's runs are the inference passes of
    state handover, which, as `predict`, train nothing (a value made in a
    loop's body cannot leave it but through the carry).

    Args:
        model: The Keras model `body` runs.
        iterations: Integer, the loop's trip count.
        body: `body(i, carry) -> carry`.
        carry: The loop's initial carry.

    Returns:
        The final carry.
    """

    def threaded(i, carry_and_values):
        return run_with_values(
            model, carry_and_values[1], body, i, carry_and_values[0]
        )

    carry, values = ops.fori_loop(
        0, iterations, threaded, (carry, current_values(model))
    )
    assign_values(model, values)
    return carry
