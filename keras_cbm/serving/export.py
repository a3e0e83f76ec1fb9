"""Exports a Keras video model as a SavedModel: a per-frame classifier with
a whole-video signature and a frame-by-frame one, any other model with a
signature from observed frames to its outputs."""

import argparse
import contextlib
import math
import numbers
import os

import keras
import tensorflow as tf

from keras_cbm.keras_internals import shadow_method
from keras_cbm.keras_internals import sub_layers
from keras_cbm.keras_internals import unshadow_method
from keras_cbm.layers.frame_aggregation import VIDEO_AGGREGATIONS
from keras_cbm.layers.frame_aggregation import video_probabilities
from keras_cbm.serving.frame_step import FrameStep
from keras_cbm.serving.frame_step import input_dtype
from keras_cbm.serving.frame_step import scaled_frames
from keras_cbm.training.video_trainer import VideoTrainer

# How to export a model trained under another backend, for the refusal.
_UNDER_TENSORFLOW = (
    "save the model (`model.save('model.keras')`) and export it in a "
    "process with the TensorFlow backend, e.g. `KERAS_BACKEND=tensorflow "
    "python -m keras_cbm.serving.export model.keras SAVED_MODEL_DIR`"
)


def _check_backend(function):
    """Refuses, at once, to export under a backend other than TensorFlow:
    the signatures are TensorFlow graphs of the model's own call (Keras'
    `ExportArchive` would convert a JAX model's call through `jax2tf`, but
    not the TensorFlow checks and state plumbing around it)."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"`{function}` needs Keras' TensorFlow backend; "
            f"{_UNDER_TENSORFLOW}. Received: backend '{backend}'"
        )


def _settings(model, aggregation, from_logits):
    """The model, aggregation and `from_logits` to export; a trainer
    (`VideoTrainer`) gives its wrapped model and its defaults."""
    if isinstance(model, VideoTrainer):
        if aggregation is None:
            aggregation = model.aggregation
        if from_logits is None:
            from_logits = model.from_logits
        model = model.model
    if not isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be a Keras model of frames (batch, time, "
            f"*frame_shape) or a trainer (`keras_cbm.training.VideoTrainer`)."
            f" Received: model={model!r}"
        )
    aggregation = "mean" if aggregation is None else aggregation
    if aggregation not in VIDEO_AGGREGATIONS:
        raise ValueError(
            f"`aggregation` must be one of {VIDEO_AGGREGATIONS}. Received: "
            f"aggregation={aggregation!r}"
        )
    return model, aggregation, True if from_logits is None else from_logits


def _input_spec(model, frame_shape):
    """`(time, frame_shape)` of the model's frames; `time` is the static
    time length of a functional model's input, else `None`."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        if frame_shape is None:
            raise ValueError(
                "`frame_shape` must be given for a model without inputs (a "
                f"subclassed model). Received: frame_shape=None for model "
                f"'{model.name}'"
            )
        return None, tuple(frame_shape)
    if len(inputs) != 1 or len(inputs[0].shape) < 3:
        raise ValueError(
            "`model` must take one input, frames (batch, time, "
            f"*frame_shape). Received: a model with inputs {inputs}"
        )
    time, *shape = inputs[0].shape[1:]
    if frame_shape is not None and tuple(frame_shape) != tuple(shape):
        raise ValueError(
            f"`frame_shape` must be the model's, {tuple(shape)}. Received: "
            f"frame_shape={frame_shape!r}"
        )
    return time, tuple(shape)


def _is_per_frame(model, time, frame_shape):
    """Whether `model` maps `(batch, time, ...)` to `(batch, time, classes)`.

    A functional model tells from its symbolic outputs; a subclassed one
    (whose layers may run only eagerly) runs on two lengths of zeros.
    """
    outputs = getattr(model, "outputs", None)
    if outputs:
        shapes, lengths = [tuple(o.shape) for o in outputs], [time]
    else:
        lengths = [2, 3]
        shapes = []
        for length in lengths:
            outputs = keras.tree.flatten(
                model(
                    keras.ops.zeros(
                        (1, length) + frame_shape, input_dtype(model)
                    ),
                    training=False,
                )
            )
            shapes += [tuple(o.shape) for o in outputs]
    return len(shapes) == len(lengths) and all(
        len(shape) == 3 and shape[1] == length
        for shape, length in zip(shapes, lengths, strict=True)
    )


@contextlib.contextmanager
def _time_distributed_over_time(model):
    """While active, every `TimeDistributed` in `model` without a mask runs
    its layer on the frames folded into the batch.

    Keras 3.15's `TimeDistributed`, traced with an unknown time length,
    maps its layer over `range(batch)` instead of `range(time)` (it reads
    the input's shape before swapping batch and time), so a signature for
    videos of any length would return `batch` frames of outputs. Remove
    this when Keras fixes it.
    """
    wrappers = [
        layer
        for layer in sub_layers(model)
        if isinstance(layer, keras.layers.TimeDistributed)
    ]

    def folded_call(wrapper):
        call = wrapper.call

        def folding_call(inputs, training=None, mask=None):
            if mask is not None:
                return call(inputs, training=training, mask=mask)
            shape = tf.shape(inputs)
            outputs = wrapper.layer(
                tf.reshape(inputs, (-1,) + tuple(inputs.shape[2:])),
                training=training,
            )
            return tf.reshape(
                outputs,
                tf.concat([shape[:2], tf.shape(outputs)[1:]], axis=0),
            )

        return folding_call

    for wrapper in wrappers:
        shadow_method(wrapper, "call", folded_call(wrapper))
    try:
        yield
    finally:
        for wrapper in wrappers:
            unshadow_method(wrapper, "call")


def _check_scale(scale):
    if (
        isinstance(scale, bool)
        or not isinstance(scale, numbers.Real)
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise ValueError(
            f"`scale` must be a finite number > 0. Received: scale={scale!r}"
        )


def _checked(tensor, spec):
    """`tensor`, checked in the graph against `spec`'s shape.

    A signature called with tensors only (no NumPy array) skips the
    binding's shape check and hands any shape to the graph, where a
    mis-shaped input would fail deep inside the model. `EnsureShape`
    refuses it at the start, naming the input ("Shape of tensor frame
    [2,15,16,3] is not compatible with expected shape [?,16,16,3]"); a
    check computed from `tf.shape` would not do, as TensorFlow folds the
    statically known rank and sizes into constants.
    """
    return tf.ensure_shape(tensor, spec.shape, name=spec.name)


def _assert_batch(name, tensor, batch):
    """An in-graph check that `tensor` has the batch size of `frame`: each
    input is checked against its own spec, not against the others."""
    return tf.debugging.assert_equal(
        tf.shape(tensor)[0],
        batch,
        message=f"`{name}` must have the batch size of `frame`. Received",
    )


def export(
    model,
    path,
    aggregation=None,
    from_logits=None,
    scale=1 / 255,
    frame_shape=None,
):
    """Writes `model` as a SavedModel that TensorFlow alone can serve.

    The SavedModel (written with `keras.export.ExportArchive`) serves
    without `keras_cbm` or Keras, from `tf.saved_model.load` or TensorFlow
    Serving. Every signature takes uint8 frames, multiplies them by `scale`
    in the model's input dtype (`keras_cbm.serving.frame_step.input_dtype`:
    its `keras.Input`'s, else its compute dtype; the one rule of every
    signature and trainer, also under `mixed_float16`) and runs the model in
    inference mode (`training=False`).

    A per-frame classifier, a model of frames `(batch, time,
    *frame_shape)` to outputs `(batch, time, classes)` (`Sequential`,
    functional or subclassed, with any recurrent layers: keras_cbm's,
    `DeepCBM`, `LSTM`, `GRU`, `ConvLSTM*`, `keras.layers.RNN(cell)` or
    stacked cells), gets
    three signatures:

    - `classify(frames)`: `frames` uint8 `(batch, time, *frame_shape)`, a
      whole video or clip; returns `{"probabilities": (batch, classes)}`,
      `keras_cbm.layers.video_probabilities(outputs, aggregation=
      aggregation, from_logits=from_logits)` (by default the softmax of
      the mean of the frames' logits): the quantity `CoherenceModel`
      returns as `"probabilities"` for one clip covering the video.
    - `step(frame, state_1, ..., state_N)`: one uint8 frame `(batch,
      *frame_shape)` and every recurrent state of the model; returns
      `{"probabilities": (batch, classes), "state_1": ..., "state_N":
      ...}`, this frame's probabilities and the states to pass with the
      next frame. The states are in `keras_cbm.models.RecurrentStates`
      order: recurrent layer by layer in the model's tracking order, each
      layer's states in the order its `initial_state` takes them (`[c]`
      for a CBM layer, `[h, c]` for `LSTM` and `ConvLSTM*`, `[h]` for
      `GRU`; a layer that sees a mask also its last output). Zero states
      start a video; the probabilities of frame `t` equal those of frame
      `t` in one run over the video, masked frames included. The client
      keeps the states, so one server follows any number of live videos.
      A state holding NaN or Inf is refused (`InvalidArgumentError`
      naming it), as it would make every later output NaN.
    - `state_layers()`: `{"layers": (N,) strings}`, the name of the
      recurrent layer that `state_k` belongs to at index `k - 1`.

    Any other model (e.g. `keras_cbm.models.future_frame_predictor`, whose
    outputs are predicted frames) gets `predict(frames)`: uint8 observed
    frames `(batch, time, *frame_shape)` to `{"outputs": ...}`, the
    model's output as `model.predict` gives it (a dict output keeps its
    keys).

    Inputs that do not match a signature are refused, naming the input,
    what it must be and what it was, and the server keeps serving: with a
    NumPy array among the inputs, TensorFlow's binding refuses a wrong
    shape, rank or state count before anything runs (with the
    `TensorSpec`s); with tensors only, the binding lets any shape through,
    so every input is checked at the start of the graph (`EnsureShape`), and
    TensorFlow refuses a tensor's dtype by its position (`frame` or
    `frames` is input #0, then `state_1`, ...). States whose batch size
    differs from the frame's are refused in the graph, naming the state.
    NumPy arrays are cast to the signature's dtype by the binding (a float
    frame to uint8): send tensors to have the dtype checked, or run `step`
    with `keras_cbm.serving.SavedModelStep`, which refuses other dtypes.

    Client of a per-frame classifier (TensorFlow only; `video` a uint8
    array `(time, *frame_shape)`):

    ```python
    import tensorflow as tf

    served = tf.saved_model.load(path)
    classify = served.signatures["classify"]
    step = served.signatures["step"]
    video_probabilities = classify(frames=video[None])["probabilities"]

    specs = step.structured_input_signature[1]
    states = {
        name: tf.zeros([1, *spec.shape[1:]], spec.dtype)
        for name, spec in specs.items()
        if name != "frame"
    }
    for frame in video:  # e.g. from a camera
        outputs = step(frame=frame[None], **states)
        states = {name: outputs[name] for name in states}
        frame_probabilities = outputs["probabilities"]
    ```

    Args:
        model: A Keras model of frames `(batch, time, *frame_shape)`; or a
            trainer (`keras_cbm.training.VideoTrainer`: `CoherenceModel`,
            `TruncatedBPTT`, `StreamingBPTT`), whose wrapped model is
            exported with its `aggregation` and `from_logits` as the
            defaults.
        path: The SavedModel's directory.
        aggregation: `video_probabilities`' mode of `classify`: `"mean"`
            (of the logits), `"mean_probabilities"`, `"vote"` or `"last"`;
            `None` takes the trainer's, or `"mean"`.
        from_logits: Whether a per-frame classifier outputs logits (a
            softmax makes the probabilities) or probabilities; `None` takes
            the trainer's, or `True`.
        scale: Positive number, the factor from uint8 to the model's input.
        frame_shape: The shape of one frame, needed for a model without
            `inputs` (subclassed); `None` takes the model's input shape.

    Returns:
        `path`.

    Raises:
        ValueError: Under a backend other than TensorFlow, at once, saying
            how to export (save the model, then `python -m
            keras_cbm.serving.export` under TensorFlow); for a per-frame
            classifier whose recurrent layers cannot run from given states
            (`Bidirectional`, `go_backwards`, `stateful`, a layer called
            twice per run), naming the layer and why, as
            `RecurrentStates` does; for a model whose input or frame shape
            is unknown or not static.

    Example:

    >>> import tempfile
    >>> import tensorflow as tf
    >>> from keras_cbm.layers import ConvCBM2D
    >>> model = keras.Sequential([
    ...     keras.Input((None, 16, 16, 3)),
    ...     ConvCBM2D(4, 3, padding="same", return_sequences=True,
    ...               name="cbm"),
    ...     keras.layers.TimeDistributed(
    ...         keras.layers.GlobalAveragePooling2D()),
    ...     keras.layers.Dense(3)])
    >>> path = export(model, tempfile.mkdtemp())
    >>> served = tf.saved_model.load(path)
    >>> video = np.zeros((1, 5, 16, 16, 3), "uint8")
    >>> served.signatures["classify"](frames=video)["probabilities"].shape
    TensorShape([1, 3])
    >>> sorted(served.signatures["step"].structured_input_signature[1])
    ['frame', 'state_1']
    >>> served.signatures["state_layers"]()["layers"].numpy()
    array([b'cbm'], dtype=object)
    """
    _check_backend("export")
    model, aggregation, from_logits = _settings(model, aggregation, from_logits)
    _check_scale(scale)
    time, frame_shape = _input_spec(model, frame_shape)
    if None in frame_shape:
        raise ValueError(
            "`model` must take frames of a static shape, (batch, time, "
            "*frame_shape). Received: a model with frames of shape "
            f"{frame_shape}"
        )

    def model_input(frames):
        return scaled_frames(frames, model, scale)

    archive = keras.export.ExportArchive()
    archive.track(model)
    frames_spec = tf.TensorSpec(
        (None, time) + frame_shape, "uint8", name="frames"
    )
    if _is_per_frame(model, time, frame_shape):
        if time is not None:
            raise ValueError(
                "`model` must take videos of any length (time None): `step` "
                f"runs it one frame at a time. Received: a model of {time} "
                "frames"
            )
        _add_classifier_endpoints(
            archive,
            FrameStep(model, frame_shape, from_logits, scale),
            frames_spec,
            model_input,
            aggregation,
        )
    else:

        def predict(frames):
            frames = _checked(frames, frames_spec)
            outputs = model(model_input(frames), training=False)
            if isinstance(outputs, dict):
                return outputs
            outputs = keras.tree.flatten(outputs)
            if len(outputs) == 1:
                return {"outputs": outputs[0]}
            return {f"outputs_{k + 1}": o for k, o in enumerate(outputs)}

        archive.add_endpoint("predict", predict, input_signature=[frames_spec])
    # The endpoints are traced when written.
    with _time_distributed_over_time(model):
        archive.write_out(path, verbose=False)
    return path


def _add_classifier_endpoints(
    archive, frame_step, frames_spec, model_input, aggregation
):
    """Adds `classify`, `step` and `state_layers` (see `export`)."""
    model = frame_step.video_model
    frame_spec = tf.TensorSpec(
        frame_step.frame_spec.shape, "uint8", name="frame"
    )
    state_specs = [
        tf.TensorSpec(spec.shape, spec.dtype, name=spec.name)
        for spec in frame_step.state_specs
    ]

    def classify(frames):
        frames = _checked(frames, frames_spec)
        # An empty video has no probabilities to aggregate.
        check = tf.debugging.assert_positive(
            tf.shape(frames)[1],
            message="`frames` must hold at least one frame. Received",
        )
        with tf.control_dependencies([check]):
            outputs = model(model_input(frames), training=False)
        return {
            "probabilities": video_probabilities(
                outputs,
                aggregation=aggregation,
                from_logits=frame_step.from_logits,
            )
        }

    def step(frame, *states):
        frame = _checked(frame, frame_spec)
        states = [
            _checked(state, spec)
            for state, spec in zip(states, state_specs, strict=True)
        ]
        batch = tf.shape(frame)[0]
        checks = [
            _assert_batch(spec.name, state, batch)
            for spec, state in zip(state_specs, states, strict=True)
        ] + [
            # A NaN or Inf state would turn every later output into NaN
            # without an error: refused, naming the state.
            tf.debugging.assert_all_finite(
                state, message=f"`{spec.name}` must be finite. Received"
            )
            for spec, state in zip(state_specs, states, strict=True)
            if spec.dtype.is_floating
        ]
        with tf.control_dependencies(checks):
            outputs = frame_step(
                {
                    "frame": frame,
                    **{
                        spec.name: state
                        for spec, state in zip(state_specs, states, strict=True)
                    },
                }
            )
        # The client passes each output state back under its own name.
        return {
            name.removeprefix("next_"): output
            for name, output in outputs.items()
        }

    def layers():
        return {
            "layers": tf.constant(
                frame_step.state_layers, tf.string, (len(state_specs),)
            )
        }

    archive.add_endpoint("classify", classify, input_signature=[frames_spec])
    archive.add_endpoint(
        "step", step, input_signature=[frame_spec] + state_specs
    )
    archive.add_endpoint("state_layers", layers, input_signature=[])


def main(argv=None):
    """`python -m keras_cbm.serving.export MODEL SAVED_MODEL_DIR`: exports
    a saved `.keras` model (trained under any backend) with TensorFlow."""
    parser = argparse.ArgumentParser(
        prog="python -m keras_cbm.serving.export",
        description=main.__doc__.split(":", 1)[1].strip(),
    )
    parser.add_argument("model", help="The `.keras` file.")
    parser.add_argument("path", help="The SavedModel's directory.")
    parser.add_argument(
        "--scale", type=float, default=1 / 255, help="See `export`."
    )
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        raise SystemExit(
            "Run with KERAS_BACKEND=tensorflow. Received: backend "
            f"'{keras.backend.backend()}'"
        )
    # Registers `keras_cbm`'s trainers for `load_model`.
    import keras_cbm.training  # noqa: F401

    model = keras.saving.load_model(args.model)
    print(export(model, os.path.abspath(args.path), scale=args.scale))


if __name__ == "__main__":
    main()
