"""The exported frame-by-frame step, run by its own runtime behind one
interface: NumPy frames and states in, probabilities and next states out."""

import collections
import importlib

import numpy as np

# onnxruntime's names of the states' floating types.
_ONNX_TYPES = {
    "tensor(float16)": "float16",
    "tensor(float)": "float32",
    "tensor(double)": "float64",
}
# A state input of a step: its name, shape (batch `None`) and NumPy dtype.
StateSpec = collections.namedtuple("StateSpec", "name shape dtype")


def _edge_import(module, package):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"Running an exported step needs `{package}`: pip install "
            "keras-cbm[edge]"
        ) from error


def _state_number(name):
    return int(name.rsplit("_", 1)[1])


class _Step:
    """What every runtime shares: its `state_specs` in state order and
    `zero_states`; subclasses set `state_specs` and define `_run`."""

    state_specs = ()

    def zero_states(self, batch):
        """The states of `batch` streams that start: a list of zeros."""
        return [
            np.zeros((batch,) + spec.shape[1:], spec.dtype)
            for spec in self.state_specs
        ]

    def __call__(self, frames, states):
        """Steps `frames` (uint8 `(batch, *frame_shape)`) from `states`.

        Returns:
            `(probabilities, next_states)`: NumPy `(batch, classes)` and the
            list of the next states.
        """
        if len(states) != len(self.state_specs):
            raise ValueError(
                f"`states` must hold {len(self.state_specs)} arrays, "
                f"{[spec.name for spec in self.state_specs]}. Received: "
                f"{len(states)} arrays"
            )
        return self._run(np.asarray(frames, np.uint8), list(states))


class LiteRTStep(_Step):
    """A `.tflite` step of `export_step`, run by the `ai-edge-litert`
    interpreter (builtin operations, XNNPACK on a CPU).

    Args:
        path: The `.tflite` file.
        num_threads: Threads of the interpreter; `None`: its default.
    """

    def __init__(self, path, num_threads=None):
        Interpreter = _edge_import(
            "ai_edge_litert.interpreter", "ai-edge-litert"
        ).Interpreter
        self.interpreter = Interpreter(path, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner()
        inputs = self.runner.get_input_details()
        self.state_specs = sorted(
            (
                StateSpec(
                    name,
                    (None,) + tuple(int(d) for d in detail["shape"][1:]),
                    np.dtype(detail["dtype"]),
                )
                for name, detail in inputs.items()
                if name != "frame"
            ),
            key=lambda spec: _state_number(spec.name),
        )

    def _run(self, frames, states):
        outputs = self.runner(
            frame=frames,
            **{
                spec.name: state
                for spec, state in zip(self.state_specs, states, strict=True)
            },
        )
        return outputs["probabilities"], [
            outputs[f"next_{spec.name}"] for spec in self.state_specs
        ]


class OnnxStep(_Step):
    """An `.onnx` step of `export_step`, run by `onnxruntime` on its CPU
    provider.

    Args:
        path: The `.onnx` file.
        num_threads: Intra-op threads; `None`: onnxruntime's default.
    """

    def __init__(self, path, num_threads=None):
        onnxruntime = _edge_import("onnxruntime", "onnxruntime")
        options = onnxruntime.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
        self.session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        self.state_specs = sorted(
            (
                StateSpec(
                    node.name,
                    (None,) + tuple(node.shape[1:]),
                    np.dtype(_ONNX_TYPES[node.type]),
                )
                for node in self.session.get_inputs()
                if node.name != "frame"
            ),
            key=lambda spec: _state_number(spec.name),
        )
        self.output_names = ["probabilities"] + [
            f"next_{spec.name}" for spec in self.state_specs
        ]

    def _run(self, frames, states):
        probabilities, *states = self.session.run(
            self.output_names,
            {
                "frame": frames,
                **{
                    spec.name: state
                    for spec, state in zip(
                        self.state_specs, states, strict=True
                    )
                },
            },
        )
        return probabilities, states


class SavedModelStep(_Step):
    """The `step` signature of a SavedModel of `keras_cbm.serving.export`,
    run by TensorFlow.

    Args:
        path: The SavedModel's directory.
    """

    def __init__(self, path):
        import tensorflow as tf

        self.signature = tf.saved_model.load(path).signatures["step"]
        self.state_specs = sorted(
            (
                StateSpec(name, tuple(spec.shape), spec.dtype.as_numpy_dtype)
                for name, spec in self.signature.structured_input_signature[
                    1
                ].items()
                if name != "frame"
            ),
            key=lambda spec: _state_number(spec.name),
        )

    def _run(self, frames, states):
        outputs = self.signature(
            frame=frames,
            **{
                spec.name: state
                for spec, state in zip(self.state_specs, states, strict=True)
            },
        )
        return outputs["probabilities"].numpy(), [
            outputs[spec.name].numpy() for spec in self.state_specs
        ]
