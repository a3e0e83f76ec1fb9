"""Exports a per-frame video classifier as a SavedModel with a whole-video
signature and a frame-by-frame one."""

import math
import numbers

import keras
import tensorflow as tf
from keras import ops

from keras_cbm.layers.frame_aggregation import MODES
from keras_cbm.layers.frame_aggregation import FrameAggregation
from keras_cbm.training.coherence_model import CoherenceModel
from keras_cbm.training.deep_cbm_split import DeepCBMSplit


def _settings(model, aggregation, from_logits):
    """The per-frame model, aggregation and `from_logits` to export."""
    if isinstance(model, CoherenceModel):
        if aggregation is None:
            aggregation = model.aggregation
        if from_logits is None:
            from_logits = model.from_logits
        model = model.model
    aggregation = "mean" if aggregation is None else aggregation
    if aggregation not in MODES:
        raise ValueError(
            f"`aggregation` must be one of {MODES}. Received: "
            f"aggregation={aggregation!r}"
        )
    return model, aggregation, True if from_logits is None else from_logits


def export(model, path, aggregation=None, from_logits=None, scale=1 / 255):
    """Writes `model` as a SavedModel with `classify` and `step` signatures.

    The SavedModel (written with `keras.export.ExportArchive`) serves
    without `keras_cbm` or Keras, from `tf.saved_model.load` or TensorFlow
    Serving. Both signatures take uint8 frames, multiply them by `scale` in
    the model's dtype and run the model in inference mode:

    - `classify(frames)`: `frames` uint8 `(batch, time, *frame_shape)`, a
      whole video or clip; returns `{"probabilities": (batch, classes)}`,
      the per-frame probabilities aggregated over time by
      `FrameAggregation(aggregation)`.
    - `step(frame, state_1, ..., state_N)`: one uint8 frame `(batch,
      *frame_shape)` and every recurrent state of the `DeepCBM` stack,
      flattened in its order (layer by layer, `[c]` per CBM layer, `[h, c]`
      per ConvLSTM layer); returns `{"probabilities": (batch, classes),
      "state_1": ..., "state_N": ...}`, this frame's probabilities and the
      states to pass with the next frame. Zero states start a video; the
      probabilities of frame `t` equal those of frame `t` in one run over
      the video. The client keeps the states, so one server follows any
      number of live videos.

    Inputs that do not match a signature's input spec (frame size, dtype,
    missing or unknown states) are refused with the spec in the message,
    before anything runs.

    Client (TensorFlow only; `video` a uint8 array `(time, *frame_shape)`):

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
        model: A functional per-frame classifier, frames `(batch, time,
            *frame_shape)` with a static `frame_shape` to `(batch, time,
            classes)`, with one `DeepCBM` layer (a `keras_cbm.models`
            classifier); or a `CoherenceModel` wrapping one, whose
            `aggregation` and `from_logits` are then the defaults.
        path: The SavedModel's directory.
        aggregation: `FrameAggregation` mode of `classify`, `"mean"`,
            `"vote"` or `"last"`; `None` takes the `CoherenceModel`'s, or
            `"mean"`.
        from_logits: Whether the model outputs logits (a softmax makes the
            probabilities) or probabilities; `None` takes the
            `CoherenceModel`'s, or `True`.
        scale: Positive number, the factor from uint8 to the model's input.

    Returns:
        `path`.

    Example:

    >>> import tempfile
    >>> from keras_cbm import models
    >>> model = models.standalone_classifier(
    ...     3, frame_shape=(16, 16, 3), stage_filters=(4,),
    ...     blocks_per_stage=1)
    >>> path = export(model, tempfile.mkdtemp())
    >>> served = tf.saved_model.load(path)
    >>> video = np.zeros((1, 5, 16, 16, 3), "uint8")
    >>> served.signatures["classify"](frames=video)["probabilities"].shape
    TensorShape([1, 3])
    >>> sorted(served.signatures["step"].structured_input_signature[1])[:3]
    ['frame', 'state_1', 'state_2']
    """
    model, aggregation, from_logits = _settings(model, aggregation, from_logits)
    split = DeepCBMSplit(model)
    frame_shape = tuple(model.inputs[0].shape[2:])
    if None in frame_shape:
        raise ValueError(
            "`model` must take frames of a static shape, (batch, time, "
            "*frame_shape). Received: a model with input shape "
            f"{model.inputs[0].shape}"
        )
    if (
        isinstance(scale, bool)
        or not isinstance(scale, numbers.Real)
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise ValueError(
            f"`scale` must be a finite number > 0. Received: scale={scale!r}"
        )
    aggregate = FrameAggregation(aggregation)
    dtype = model.inputs[0].dtype

    def model_input(frames):
        return ops.cast(frames, dtype) * ops.cast(scale, dtype)

    def probabilities(outputs):
        return ops.softmax(outputs, axis=-1) if from_logits else outputs

    def classify(frames):
        outputs = model(model_input(frames), training=False)
        return {"probabilities": aggregate(probabilities(outputs))}

    feature_shape = tuple(split.before.outputs[0].shape[2:])
    _, state_specs = split.deep_cbm.compute_output_spec(
        keras.KerasTensor((None, 1) + feature_shape, dtype=dtype),
        return_state=True,
    )
    flat_specs = keras.tree.flatten(state_specs)
    names = [f"state_{k + 1}" for k in range(len(flat_specs))]

    def step(frame, *states):
        outputs, new_states = split(
            model_input(frame)[:, None],
            initial_state=keras.tree.pack_sequence_as(state_specs, states),
            training=False,
        )
        return {
            "probabilities": probabilities(outputs)[:, 0],
            **dict(zip(names, keras.tree.flatten(new_states), strict=True)),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "classify",
        classify,
        input_signature=[
            tf.TensorSpec((None, None) + frame_shape, "uint8", name="frames")
        ],
    )
    archive.add_endpoint(
        "step",
        step,
        input_signature=[
            tf.TensorSpec((None,) + frame_shape, "uint8", name="frame")
        ]
        + [
            tf.TensorSpec(spec.shape, spec.dtype, name=name)
            for spec, name in zip(flat_specs, names, strict=True)
        ],
    )
    archive.write_out(path, verbose=False)
    return path
