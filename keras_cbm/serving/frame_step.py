"""The one-frame step of a per-frame video classifier as a loop-free Keras
model: a frame and every recurrent state in, the frame's probabilities and
the next states out."""

import keras
from keras import ops

from keras_cbm.models.recurrent_states import RecurrentStates


def input_dtype(model):
    """The dtype in which every signature and trainer feeds `model` its
    frames: its input's (a functional model's `keras.Input`, float32 unless
    given, under `mixed_float16` too), else its compute dtype (a model
    without inputs). Its first layer casts them as its policy says.

    Args:
        model: A Keras model.

    Returns:
        A dtype name.
    """
    inputs = getattr(model, "inputs", None)
    return inputs[0].dtype if inputs else model.compute_dtype


def scaled_frames(frames, model, scale):
    """uint8 `frames` as `model` takes them: in its `input_dtype`, times
    `scale` (in that dtype)."""
    dtype = input_dtype(model)
    return ops.cast(frames, dtype) * ops.cast(scale, dtype)


class FrameStep(keras.Model):
    """One frame of a per-frame video classifier, from the states of the
    frame before, without a loop.

    Wraps `model` (frames `(batch, time, *frame_shape)` to per-frame outputs
    `(batch, time, classes)`), any model `keras_cbm.models.RecurrentStates`
    takes: CBM layers (gated or the paper's cell), `DeepCBM`,
    `ConvLSTM1D/2D/3D`, `LSTM`, `GRU`, `keras.layers.RNN(cell)`, stacked
    cells `keras.layers.RNN([cell, cell])`, `TimeDistributed` parts. A call
    runs the model over one frame with every recurrent loop unrolled, so the
    traced graph holds the step's operations only: what
    `model.export(format="litert")` writes with builtin ops and
    `format="onnx"` converts (`keras_cbm.serving.export_step` does both).

    The states are those of `RecurrentStates`, flattened: recurrent layer by
    layer in the model's tracking order, each layer's states in the order its
    `initial_state` takes them (`[c]` for a CBM layer, `[h, c]` for `LSTM`
    and `ConvLSTM*`, `[h]` for `GRU`; a layer that sees a mask, e.g. from
    a `keras.layers.Masking`, also its last output), named `state_1` ...
    `state_N`; zeros start a video, as in the SavedModel's `step`. A
    masked frame keeps every state and outputs what one run over the video
    does there (each recurrent layer's output at the last unmasked frame:
    docs/serving.md, "Masked frames").

    Args:
        model: A Keras model of frames `(batch, time, *frame_shape)` to
            outputs `(batch, time, classes)`, with `time` `None`.
        frame_shape: The shape of one frame; `None` takes the model's input
            shape (needed for a model without `inputs`).
        from_logits: Whether `model` outputs logits (a softmax makes the
            probabilities) or probabilities.
        scale: The factor from the uint8 frame to the model's input (in
            the model's `input_dtype`, as every signature feeds it).

    Call arguments:
        inputs: A dict of `"frame"`, uint8 `(batch, *frame_shape)`, and
            `"state_1"` ... `"state_N"`, shaped as `state_specs` says.

    Returns:
        A dict of `"probabilities"`, `(batch, classes)`, and the next states
        `"next_state_1"` ... `"next_state_N"` (ONNX forbids an output to
        share an input's name).

    Example:

    >>> from keras_cbm.layers import ConvCBM2D
    >>> model = keras.Sequential([
    ...     keras.Input((None, 8, 8, 3)),
    ...     ConvCBM2D(4, 3, padding="same", return_sequences=True),
    ...     keras.layers.TimeDistributed(
    ...         keras.layers.GlobalAveragePooling2D()),
    ...     keras.layers.Dense(3)])
    >>> step = FrameStep(model)
    >>> [(spec.name, spec.shape) for spec in step.state_specs]
    [('state_1', (None, 8, 8, 4))]
    >>> video = np.random.default_rng(0).integers(0, 256, (2, 5, 8, 8, 3))
    >>> states = step.zero_states(2)
    >>> for t in range(5):
    ...     outputs = step({"frame": video[:, t].astype("uint8"), **states})
    ...     states = {"state_1": outputs["next_state_1"]}
    >>> whole = keras.ops.softmax(model(video / 255))[:, -1]
    >>> bool(np.allclose(outputs["probabilities"], whole, atol=1e-5))
    True
    """

    def __init__(
        self, model, frame_shape=None, from_logits=True, scale=1 / 255, **kwargs
    ):
        super().__init__(**kwargs)
        self.video_model = model
        self.from_logits = from_logits
        self.scale = scale
        self.recurrent = RecurrentStates(model)
        if frame_shape is None:
            inputs = getattr(model, "inputs", None)
            if not inputs:
                raise ValueError(
                    "`frame_shape` must be given for a model without inputs "
                    f"(a subclassed model). Received: frame_shape=None for "
                    f"model '{model.name}'"
                )
            frame_shape = inputs[0].shape[2:]
        self.frame_shape = tuple(frame_shape)
        # A run over one frame gives every state's shape and dtype, in order.
        _, states = self.recurrent(
            ops.zeros((1, 1) + self.frame_shape, input_dtype(model)),
            training=False,
        )
        self.state_counts = [len(layer_states) for layer_states in states]
        self.state_specs = [
            keras.InputSpec(
                shape=(None,) + tuple(state.shape[1:]),
                dtype=keras.backend.standardize_dtype(state.dtype),
                name=f"state_{k + 1}",
            )
            for k, state in enumerate(keras.tree.flatten(states))
        ]
        self.state_layers = [
            layer.name
            for layer, count in zip(
                self.recurrent.layers, self.state_counts, strict=True
            )
            for _ in range(count)
        ]
        self.built = True

    @property
    def frame_spec(self):
        """The `keras.InputSpec` of `"frame"`, uint8 `(None, *frame_shape)`."""
        return keras.InputSpec(
            shape=(None,) + self.frame_shape, dtype="uint8", name="frame"
        )

    def zero_states(self, batch):
        """`{"state_k": zeros}` for `batch` streams that start."""
        return {
            spec.name: ops.zeros((batch,) + spec.shape[1:], spec.dtype)
            for spec in self.state_specs
        }

    def call(self, inputs):
        frame = scaled_frames(inputs["frame"], self.video_model, self.scale)
        flat = [inputs[spec.name] for spec in self.state_specs]
        # Nested again as `RecurrentStates` takes them: per layer.
        nested, start = [], 0
        for count in self.state_counts:
            nested.append(flat[start : start + count])
            start += count
        # Unrolled over one frame, the step holds no while loop (which
        # LiteRT's builtin ops and ONNX lack) and no cuDNN kernel.
        outputs, states = self.recurrent(
            frame[:, None], initial_states=nested, training=False, unroll=True
        )
        outputs = outputs[:, 0]
        if self.from_logits:
            outputs = ops.softmax(outputs, axis=-1)
        return {
            "probabilities": outputs,
            **{
                f"next_{spec.name}": state
                for spec, state in zip(
                    self.state_specs, keras.tree.flatten(states), strict=True
                )
            },
        }
