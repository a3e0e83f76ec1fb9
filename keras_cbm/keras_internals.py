"""The private Keras parts that `keras_cbm.models` and `keras_cbm.training`
rely on, imported in one place (the layers' own are in
`keras_cbm.layers.keras_internals`).

If a Keras release moves one of them, this is the only module to change.
"""

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


__all__ = ["sub_layers", "unscale_loss_for_distribution"]
