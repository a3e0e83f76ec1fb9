"""A per-frame video model cut around its `DeepCBM` stack, so that the
stack can start from given recurrent states and return its own."""

import keras

from keras_cbm.layers.deep_cbm import DeepCBM


class DeepCBMSplit:
    """The parts of a functional per-frame model around its `DeepCBM`.

    `before` maps the model's frames to the stack's input, `deep_cbm` is
    the stack itself and `after` maps the stack's output to the model's
    outputs; `before` and `after` are functional models sharing the
    model's layers (and weights). Running the three equals running the
    model, and lets the stack start from `initial_state` and return every
    layer's state -- what clip state handover and frame-by-frame serving
    need. `before` and `after` must act on every frame on its own (as the
    builders' backbone and head do): only the stack carries time.

    Args:
        model: A functional `keras.Model` with one input, frames `(batch,
            time, ...)`, in which exactly one `DeepCBM` layer is called
            exactly once (e.g. a `keras_cbm.models` builder's model).

    Call arguments:
        frames: The model's input, `(batch, time, ...)`.
        initial_state: Optional states, as `DeepCBM` takes them.
        mask: Optional boolean tensor `(batch, time)`.
        training: Python boolean, the mode of every part.

    Returns:
        `(outputs, states)`: the model's outputs and every layer's final
        states in `DeepCBM`'s structure.

    Example:

    >>> from keras_cbm import models
    >>> model = models.standalone_classifier(
    ...     3, frame_shape=(16, 16, 3), stage_filters=(4,),
    ...     blocks_per_stage=1)
    >>> split = DeepCBMSplit(model)
    >>> frames = np.random.rand(2, 8, 16, 16, 3).astype("float32")
    >>> first, states = split(frames[:, :5])
    >>> second, _ = split(frames[:, 5:], initial_state=states)
    >>> bool(np.allclose(np.concatenate([first, second], 1), model(frames),
    ...                  atol=1e-5))
    True
    """

    def __init__(self, model):
        stacks = [
            layer
            for layer in getattr(model, "layers", [])
            if isinstance(layer, DeepCBM)
        ]
        is_functional = isinstance(model, keras.Model) and hasattr(
            model, "_operations"
        )
        if (
            not is_functional
            or len(model.inputs) != 1
            or len(stacks) != 1
            or len(stacks[0]._inbound_nodes) != 1
        ):
            raise ValueError(
                "`model` must be a functional Keras model with one input in "
                "which one `DeepCBM` layer is called once (as the "
                "`keras_cbm.models` builders make). Received: "
                f"model={model!r} with {len(stacks)} `DeepCBM` layer(s)"
            )
        self.deep_cbm = stacks[0]
        self.before = keras.Model(
            model.inputs[0], self.deep_cbm.input, name=f"{model.name}_before"
        )
        self.after = keras.Model(
            self.deep_cbm.output, model.outputs[0], name=f"{model.name}_after"
        )

    def run_stack(self, features, initial_state=None, mask=None, training=None):
        """Runs the stack alone: `(sequence, states)` from `before`'s
        features; `sequence` is ready for `after`."""
        sequence, states = self.deep_cbm(
            features,
            initial_state=initial_state,
            mask=mask,
            training=training,
            return_state=True,
        )
        # The time mask served the stack; `after` works frame by frame and
        # would warn that it drops a mask attached to its input.
        return keras.ops.copy(sequence), states

    def __call__(self, frames, initial_state=None, mask=None, training=None):
        sequence, states = self.run_stack(
            self.before(frames, training=training),
            initial_state=initial_state,
            mask=mask,
            training=training,
        )
        return self.after(sequence, training=training), states
