"""Exports the one-frame step of a per-frame video classifier for devices:
a LiteRT `.tflite` of builtin ops (optionally float16 or int8) or an ONNX
model."""

import re

import numpy as np
import tensorflow as tf

from keras_cbm.keras_internals import sub_layers
from keras_cbm.serving.export import _check_backend
from keras_cbm.serving.export import _check_scale
from keras_cbm.serving.export import _settings
from keras_cbm.serving.frame_step import FrameStep

FORMATS = ("litert", "onnx")
QUANTIZATIONS = (None, "float16", "dynamic_range", "int8")


def export_step(
    model,
    path,
    format="litert",
    quantization=None,
    representative_videos=None,
    from_logits=None,
    scale=1 / 255,
    frame_shape=None,
):
    """Writes the frame-by-frame step of `model` as a LiteRT or ONNX model.

    The step is `keras_cbm.serving.FrameStep(model)`: one uint8 frame and
    every recurrent state in, the frame's probabilities and the next states
    out, with no loop, so a phone, a board or a browser runs a live video
    with its own runtime (the `ai-edge-litert` interpreter, `onnxruntime`)
    and neither TensorFlow nor Keras. It is written by Keras' own exporters
    (`model.export(format="litert")`, `format="onnx"`), LiteRT restricted to
    builtin ops (no Select TF ops). The model's inputs are `frame` (uint8
    `(batch, *frame_shape)`) and `state_1` ... `state_N` (float32, as
    `FrameStep.state_specs` says; zeros start a video); its outputs are
    `probabilities` `(batch, classes)` and `next_state_1` ...
    `next_state_N`, the states to pass with the next frame. The batch size
    is free: one call steps many streams. `keras_cbm.serving.LiteRTStep`
    and `OnnxStep` run the files; `StreamServer` serves many live streams.

    LiteRT quantizations (`quantization`):

    - `"float16"`: weights stored as float16 (half the size), computed in
      float32 on a CPU.
    - `"dynamic_range"`: weights stored as int8 (a quarter), activations
      quantized on the fly where a kernel allows.
    - `"int8"`: full integer, every operation on int8 with float32 states
      and probabilities at the interface (quantized and dequantized at the
      edges); the activation ranges are calibrated by streaming
      `representative_videos` through the float step.

    Args:
        model: A per-frame classifier, frames `(batch, time, *frame_shape)`
            to outputs `(batch, time, classes)` (any model
            `keras_cbm.models.RecurrentStates` takes), or a trainer
            (`keras_cbm.training.VideoTrainer`), whose wrapped model is
            exported with its `from_logits`. A model trained on JAX or
            PyTorch exports after `keras.saving.load_model` under
            TensorFlow.
        path: The file to write: it ends in `.tflite` for LiteRT, `.onnx`
            for ONNX.
        format: `"litert"` or `"onnx"`.
        quantization: `None` (float32), or for LiteRT `"float16"`,
            `"dynamic_range"` or `"int8"`.
        representative_videos: uint8 videos `(time, *frame_shape)` of any
            lengths, in a list or an array `(batch, time, *frame_shape)`,
            needed by `"int8"`: every frame of every video, with the states
            it meets streamed from zero states, calibrates the ranges (a
            few hundred frames of real videos).
        from_logits: Whether `model` outputs logits; `None` takes the
            trainer's, or `True`.
        scale: Positive number, the factor from uint8 to the model's input.
        frame_shape: The shape of one frame, needed for a model without
            `inputs` (subclassed).

    Returns:
        `path`.

    Raises:
        ValueError: Under a backend other than TensorFlow, at once (export a
            model trained under JAX or PyTorch after `keras.saving.
            load_model` under TensorFlow); for a model whose recurrent
            layers cannot run from given states (`Bidirectional`,
            `go_backwards`, `stateful`), naming the layer and why; for a
            LiteRT model that would need operations outside LiteRT's
            builtin ones, naming the layers that hold them and the
            operations; for bad arguments.

    Example:

    >>> import os
    >>> import tempfile
    >>> from keras_cbm.layers import ConvCBM2D
    >>> from keras_cbm.serving import LiteRTStep
    >>> model = keras.Sequential([
    ...     keras.Input((None, 16, 16, 3)),
    ...     ConvCBM2D(4, 3, padding="same", return_sequences=True),
    ...     keras.layers.TimeDistributed(
    ...         keras.layers.GlobalAveragePooling2D()),
    ...     keras.layers.Dense(3)])
    >>> path = export_step(
    ...     model, os.path.join(tempfile.mkdtemp(), "step.tflite"))
    >>> step = LiteRTStep(path)
    >>> [(spec.name, spec.shape) for spec in step.state_specs]
    [('state_1', (None, 16, 16, 4))]
    >>> video = np.zeros((2, 3, 16, 16, 3), "uint8")
    >>> states = step.zero_states(2)
    >>> for t in range(3):
    ...     probabilities, states = step(video[:, t], states)
    >>> probabilities.shape
    (2, 3)
    """
    _check_backend("export_step")
    model, _, from_logits = _settings(model, None, from_logits)
    _check_scale(scale)
    if format not in FORMATS:
        raise ValueError(
            f"`format` must be one of {FORMATS}. Received: format={format!r}"
        )
    suffix = {"litert": ".tflite", "onnx": ".onnx"}[format]
    if not str(path).endswith(suffix):
        raise ValueError(
            f"`path` must end in '{suffix}' for format='{format}'. Received: "
            f"path={path!r}"
        )
    if quantization not in QUANTIZATIONS or (
        format == "onnx" and quantization is not None
    ):
        choices = QUANTIZATIONS if format == "litert" else (None,)
        raise ValueError(
            f"`quantization` must be one of {choices} for format="
            f"'{format}'. Received: quantization={quantization!r}"
        )
    step = FrameStep(model, frame_shape, from_logits, scale)
    if (quantization == "int8") != (representative_videos is not None):
        raise ValueError(
            "`representative_videos` must be given with quantization='int8' "
            "and only then. Received: representative_videos="
            f"{None if representative_videos is None else 'videos'} with "
            f"quantization={quantization!r}"
        )
    signature = {
        "frame": tf.TensorSpec(step.frame_spec.shape, "uint8", name="frame"),
        **{
            spec.name: tf.TensorSpec(spec.shape, spec.dtype, name=spec.name)
            for spec in step.state_specs
        },
    }
    if format == "onnx":
        step.export(
            str(path), format="onnx", input_signature=[signature], verbose=False
        )
        return path
    converter = {
        "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    }
    if quantization is not None:
        converter["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter["target_spec"]["supported_types"] = [tf.float16]
    if quantization == "int8":
        converter["target_spec"]["supported_ops"] = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
        converter["representative_dataset"] = _representative_inputs(
            step, _checked_videos(representative_videos, step.frame_shape)
        )
    try:
        step.export(
            str(path),
            format="litert",
            input_signature=[signature],
            verbose=False,
            **converter,
        )
    except Exception as error:
        raise _conversion_refusal(error, model) from error
    return path


def _checked_videos(videos, frame_shape):
    """`videos` as a list of uint8 arrays `(time, *frame_shape)`, refused
    unless each has at least one frame; their lengths may differ."""
    checked = [np.asarray(video) for video in videos]
    for k, video in enumerate(checked):
        if (
            video.dtype != np.uint8
            or video.shape[1:] != frame_shape
            or len(video) == 0
        ):
            raise ValueError(
                "`representative_videos` must be uint8 videos (time, "
                f"*{frame_shape}) of at least one frame each, of any "
                "lengths (an array (batch, time, *frame_shape) or a list). "
                f"Received: representative_videos[{k}] of shape "
                f"{video.shape} and dtype {video.dtype}"
            )
    if not checked:
        raise ValueError(
            "`representative_videos` must hold at least one video. "
            "Received: representative_videos with none"
        )
    return checked


def _representative_inputs(step, videos):
    """The calibration set of `"int8"`: every frame of `videos` with the
    states the float step meets there, one video at a time from zero
    states (so that their lengths may differ)."""

    def inputs():
        for video in videos:
            states = step.zero_states(1)
            for frame in video:
                inputs = {
                    "frame": frame[None],
                    **{
                        name: np.asarray(state)
                        for name, state in states.items()
                    },
                }
                yield inputs
                outputs = step(inputs)
                states = {name: outputs[f"next_{name}"] for name in states}

    return inputs


def _conversion_refusal(error, model):
    """A `ValueError` naming the layers of `model` whose operations LiteRT's
    builtin ops lack, and those operations, read from the converter's
    error (each failing operation's location is its name-scope path, where
    Keras scopes a layer's operations under its name, perhaps suffixed
    `_1`); the converter's own error for any other failure."""
    message = str(error)
    failing = re.findall(
        r'fused\["(\w+):", "([^"@]+)@[^\]]*\]\)?[^\n]*is neither a custom '
        r"op nor a flex op",
        message,
    )
    if not failing:
        return error
    layers = sub_layers(model)
    found = {}
    for operation, scope in failing:
        for component in reversed(scope.split("/")):
            layer = next(
                (
                    layer
                    for layer in layers
                    if re.fullmatch(
                        rf"{re.escape(layer.name)}(_\d+)?", component
                    )
                ),
                None,
            )
            if layer is not None:
                found.setdefault(layer.name, (layer, set()))[1].add(operation)
                break
    where = (
        "; ".join(
            f"layer '{name}' ({type(layer).__name__}) uses {sorted(operations)}"
            for name, (layer, operations) in found.items()
        )
        or f"it uses {sorted({operation for operation, _ in failing})}"
    )
    return ValueError(
        "`model` must run its step with LiteRT's builtin operations, which "
        f"lack some of its own: {where}. Received: model='{model.name}'"
    )
