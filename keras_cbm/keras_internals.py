"""The private Keras parts that `keras_cbm.models` and `keras_cbm.training`
rely on, imported in one place (the layers' own are in
`keras_cbm.layers.keras_internals`).

If a Keras release moves one of them, this is the only module to change.
"""

# Whether a `keras.StatelessScope` is active (JAX's training step opens
# one): `TruncatedBPTT` opens an inner one per chunk, which must then map
# every variable, as a variable reads the innermost scope only.
from keras.src.backend.common.stateless_scope import in_stateless_scope
from keras.src.losses.loss import unscale_loss_for_distribution


def sub_layers(layer):
    """Every layer inside `layer`, depth first, in the order they were set.

    Keras has no public list of a layer's sub-layers (`Model.layers` lists
    a model's own layers, not those inside them, e.g. a `DeepCBM`'s), and
    its private `_flatten_layers` reverses siblings; `_layers` is the list
    Keras tracks them in.

    Args:
        layer: A Keras layer or model.

    Returns:
        A list of layers, each once, `layer` itself excluded.
    """
    found, seen = [], set()

    def visit(parent):
        for child in parent._layers:
            if id(child) not in seen:
                seen.add(id(child))
                found.append(child)
                visit(child)

    visit(layer)
    return found


def shadow_method(layer, name, method):
    """Makes `method` run in place of `layer`'s method `name`, for this
    instance only, until `unshadow_method`.

    Two behaviours of Keras 3 make this work, and `RecurrentStates` (and
    `keras_cbm.serving.export`) rely on them;
    `tests/models/keras_internals_test.py` checks both and fails if a
    release changes them:

    - `Layer.__call__` (`Operation.__call__`) looks `self.call` up at every
      call, eager or traced, so an instance attribute shadows the class's
      method while the layer's own machinery (masks, training, dtype
      policies, name scopes) runs unchanged around it.
    - `keras.layers.RNN.call` runs its loop as `self.inner_loop(sequences=,
      initial_state=, mask=, training=)`, looked up on the instance, which
      returns `(last_output, outputs, final_states)` with the final states
      as a list, whatever the layer's `return_state`.

    `object.__setattr__` keeps Keras' attribute tracking out of it: a
    function is no layer state to track or save.

    Args:
        layer: A Keras layer.
        name: The method's name.
        method: A function of the method's arguments (without `self`).
    """
    object.__setattr__(layer, name, method)


def unshadow_method(layer, name):
    """Ends `shadow_method(layer, name, ...)`: the class's method runs
    again."""
    object.__delattr__(layer, name)


__all__ = [
    "in_stateless_scope",
    "shadow_method",
    "sub_layers",
    "unscale_loss_for_distribution",
    "unshadow_method",
]
