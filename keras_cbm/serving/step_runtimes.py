"""The exported frame-by-frame step, run by its own runtime behind one
interface: NumPy frames and states in, probabilities and next states out.

Needs NumPy and the runtime only (no TensorFlow, no Keras but for
`SavedModelStep`, which needs TensorFlow): this is what a device runs."""

import collections
import importlib

import numpy as np

# onnxruntime's names of the inputs' types.
_ONNX_TYPES = {
    "tensor(uint8)": "uint8",
    "tensor(float16)": "float16",
    "tensor(float)": "float32",
    "tensor(double)": "float64",
}
# An input of a step (`frame` or a state): its name, shape (batch `None`)
# and NumPy dtype.
StateSpec = collections.namedtuple("StateSpec", "name shape dtype")


def check_array(name, value, spec):
    """`value` as a NumPy array, refused unless it has `spec`'s dtype and
    shape (`None`: any size).

    No dtype is converted: a float frame cast to uint8 would run as a dark
    one (a frame scaled to [0, 1] as an all-black one), and a wrong dtype
    is a caller's mistake every runtime should refuse alike.

    Raises:
        ValueError: "`name` must be DTYPE of shape SHAPE. Received: ...".
    """
    array = np.asarray(value)
    if array.dtype != spec.dtype or not _fits(array.shape, spec.shape):
        sizes = ["batch" if size is None else str(size) for size in spec.shape]
        raise ValueError(
            f"`{name}` must be {np.dtype(spec.dtype).name} of shape "
            f"({', '.join(sizes)}{',' * (len(sizes) == 1)}). Received: "
            f"{name} of dtype {array.dtype} and shape {array.shape}"
        )
    return array


def _fits(shape, expected):
    return len(shape) == len(expected) and all(
        size == want or (want is None and size > 0)
        for size, want in zip(shape, expected, strict=True)
    )


def check_step_inputs(frames, states, frame_spec, state_specs):
    """`frames` and `states` as NumPy arrays, refused unless they are what
    a step of `frame_spec` and `state_specs` takes: the specs' dtypes and
    shapes, one state per spec, every state of the frames' batch size.

    The one check of every runtime (`LiteRTStep`, `OnnxStep`,
    `SavedModelStep`), so that all refuse the same inputs with the same
    error: LiteRT itself takes a frame of another size as a bigger batch.

    Returns:
        `(frames, states)`: an array and a list of arrays.

    Raises:
        ValueError: Naming the input, what it must be and what it was.
    """
    frames = check_array("frames", frames, frame_spec)
    if len(states) != len(state_specs):
        raise ValueError(
            f"`states` must hold {len(state_specs)} arrays, "
            f"{[spec.name for spec in state_specs]}. Received: "
            f"{len(states)} arrays"
        )
    batch = len(frames)
    return frames, [
        check_array(
            f"states[{k}]",
            state,
            spec._replace(shape=(batch,) + spec.shape[1:]),
        )
        for k, (state, spec) in enumerate(zip(states, state_specs, strict=True))
    ]


def _edge_import(module, package):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"Running an exported step needs `{package}`: pip install "
            "keras-cbm[edge]"
        ) from error


def _specs(inputs):
    """`(frame_spec, state_specs)` of a step's inputs, `(name, shape,
    dtype)` each: the states in state order, every batch size `None`."""
    specs = {
        name: StateSpec(
            name,
            (None,) + tuple(int(size) for size in shape[1:]),
            np.dtype(dtype),
        )
        for name, shape, dtype in inputs
    }
    frame_spec = specs.pop("frame")
    return frame_spec, sorted(
        specs.values(), key=lambda spec: int(spec.name.rsplit("_", 1)[1])
    )


class _Step:
    """What every runtime shares: its `frame_spec`, its `state_specs` in
    state order, `zero_states` and the check of its inputs; subclasses set
    the specs and define `_run`."""

    frame_spec = None
    state_specs = ()

    def zero_states(self, batch):
        """The states of `batch` streams that start: a list of zeros."""
        return [
            np.zeros((batch,) + spec.shape[1:], spec.dtype)
            for spec in self.state_specs
        ]

    def __call__(self, frames, states):
        """Steps `frames` (uint8 `(batch, *frame_shape)`) from `states`.

        Every runtime refuses the same inputs, before running, with a
        `ValueError` naming the input, what it must be and what it was
        (`check_step_inputs`): frames of another dtype (no conversion, a
        float frame is refused), size, channels or rank, a state count,
        dtype or shape other than `state_specs`', states of another batch
        size than the frames'.

        Returns:
            `(probabilities, next_states)`: NumPy `(batch, classes)` and the
            list of the next states.
        """
        return self._run(
            *check_step_inputs(
                frames, states, self.frame_spec, self.state_specs
            )
        )


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
        self.frame_spec, self.state_specs = _specs(
            (name, detail["shape"], detail["dtype"])
            for name, detail in self.runner.get_input_details().items()
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
        self.frame_spec, self.state_specs = _specs(
            (node.name, node.shape, _ONNX_TYPES[node.type])
            for node in self.session.get_inputs()
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
        self.frame_spec, self.state_specs = _specs(
            (name, spec.shape, spec.dtype.as_numpy_dtype)
            for name, spec in self.signature.structured_input_signature[
                1
            ].items()
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
