import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.interpreter import OpResolverType
from keras.src import testing

from keras_cbm import datasets
from keras_cbm import models
from keras_cbm.datasets.motion_order import motion_order_examples
from keras_cbm.layers import ConvCBM2D
from keras_cbm.serving import LiteRTStep
from keras_cbm.serving import OnnxStep
from keras_cbm.serving import SavedModelStep
from keras_cbm.serving import export
from keras_cbm.serving import export_step

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="serving needs the TensorFlow backend",
)

FRAME_SHAPE = (16, 16, 1)
# The gated temporal unit (the layers' new defaults) and the paper's cell.
GATED = {
    "temporal_gate": "recurrent",
    "recurrent_activation": "tanh",
    "merge": "add",
}
PAPER = {
    "temporal_gate": None,
    "recurrent_activation": "sigmoid",
    "merge": "multiply",
}


def cbm_stack(filters=3):
    """A `Sequential` of the gated `ConvCBM2D`, the paper's and
    `ConvLSTM2D`: states `[c]`, `[c]`, `[h, c]`."""
    return keras.Sequential(
        [
            keras.Input((None,) + FRAME_SHAPE),
            ConvCBM2D(
                filters, 3, padding="same", return_sequences=True, **GATED
            ),
            ConvCBM2D(
                filters, 3, padding="same", return_sequences=True, **PAPER
            ),
            keras.layers.ConvLSTM2D(
                filters, 3, padding="same", return_sequences=True
            ),
            keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D()),
            keras.layers.Dense(4),
        ]
    )


def main_job():
    """The main job's architecture (`examples/action_recognition.py`):
    `standalone_classifier` with the gated CBM and batch normalisation, at
    a tiny width, its moving statistics moved off their initial values."""
    model = models.standalone_classifier(
        12,
        frame_shape=FRAME_SHAPE,
        stage_filters=(2, 4),
        blocks_per_stage=1,
        temporal_gate="recurrent",
        merge="add",
    )
    for weight in model.non_trainable_weights:
        weight.assign(np.random.uniform(0.5, 1.5, weight.shape))
    return model


def motion_order_videos(count, frames):
    """The first `count` test videos of `motion_order` at 16x16, cut to
    `frames`."""
    config = dataclasses.replace(
        datasets.MotionOrder.builder_configs["recognition"],
        name="recognition_16",
        frame_size=16,
    )
    return np.stack(
        [
            example["video"][:frames]
            for _, example in motion_order_examples(config, "test", count)
        ]
    )


def stream(step, videos):
    """`step` run frame by frame over `videos` from zero states: the
    probabilities `(batch, time, classes)` and the states after each
    frame, per frame."""
    states = step.zero_states(len(videos))
    probabilities, all_states = [], []
    for t in range(videos.shape[1]):
        frame_probabilities, states = step(videos[:, t], states)
        probabilities.append(np.asarray(frame_probabilities))
        all_states.append([np.asarray(state) for state in states])
    return np.stack(probabilities, 1), all_states


def litert_operations(path):
    """The operations of a `.tflite`, as the interpreter without delegates
    lists them."""
    interpreter = Interpreter(
        path,
        experimental_op_resolver_type=(
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )
    return {op["op_name"] for op in interpreter._get_ops_details()}


class ExportStepTest(testing.TestCase):
    @pytest.mark.slow
    def test_litert_and_onnx_equal_the_saved_model_over_64_frames(self):
        keras.utils.set_random_seed(0)
        self.assertStepsEqualTheSavedModel(cbm_stack())

    @pytest.mark.slow
    def test_main_job_equals_the_saved_model_over_64_frames(self):
        keras.utils.set_random_seed(0)
        self.assertStepsEqualTheSavedModel(main_job())

    def assertStepsEqualTheSavedModel(self, model):
        """LiteRT (builtin ops only) and ONNX steps of `model` equal its
        SavedModel's step over 64 frames of a motion_order test video, in
        probabilities and states."""
        work_dir = self.get_temp_dir()
        saved = SavedModelStep(export(model, os.path.join(work_dir, "saved")))
        litert_path = export_step(model, os.path.join(work_dir, "s.tflite"))
        runtimes = {
            "litert": LiteRTStep(litert_path),
            "onnx": OnnxStep(
                export_step(
                    model, os.path.join(work_dir, "s.onnx"), format="onnx"
                )
            ),
        }
        videos = motion_order_videos(1, 64)
        expected, expected_states = stream(saved, videos)
        for name, runtime in runtimes.items():
            self.assertEqual(runtime.state_specs, saved.state_specs)
            probabilities, states = stream(runtime, videos)
            self.assertAllClose(probabilities, expected, atol=1e-5, msg=name)
            for frame_states, frame_expected in zip(
                states, expected_states, strict=True
            ):
                for state, state_expected in zip(
                    frame_states, frame_expected, strict=True
                ):
                    self.assertAllClose(
                        state, state_expected, atol=1e-5, msg=name
                    )
        operations = litert_operations(litert_path)
        self.assertIn("CONV_2D", operations)
        # Builtin operations only: no Select TF ops, no loop, no custom op.
        self.assertEmpty(
            {op for op in operations if op.startswith("FLEX")}
            | {op for op in operations if op in ("WHILE", "CUSTOM")}
        )

    @pytest.mark.slow
    def test_quantized_variants(self):
        keras.utils.set_random_seed(0)
        model = cbm_stack(filters=16)
        work_dir = self.get_temp_dir()
        videos = motion_order_videos(2, 12)

        def export_as(quantization, **kwargs):
            return export_step(
                model,
                os.path.join(work_dir, f"{quantization}.tflite"),
                quantization=quantization,
                **kwargs,
            )

        paths = {
            "float32": export_as(None),
            "float16": export_as("float16"),
            "dynamic_range": export_as("dynamic_range"),
            "int8": export_as("int8", representative_videos=videos),
        }
        sizes = {name: os.path.getsize(path) for name, path in paths.items()}
        self.assertLess(sizes["float16"], sizes["float32"])
        self.assertLess(sizes["dynamic_range"], sizes["float16"])
        self.assertLess(sizes["int8"], sizes["float16"])
        float_probabilities, _ = stream(LiteRTStep(paths["float32"]), videos)
        for name, tolerance in (
            ("float16", 1e-3),
            ("dynamic_range", 0.05),
            ("int8", 0.05),
        ):
            probabilities, _ = stream(LiteRTStep(paths[name]), videos)
            # Close, and not the float model itself.
            self.assertAllClose(
                probabilities, float_probabilities, atol=tolerance, msg=name
            )
            self.assertGreater(
                np.abs(probabilities - float_probabilities).max(), 0, msg=name
            )
        # Full integer: every convolution runs on int8.
        interpreter = Interpreter(
            paths["int8"],
            experimental_op_resolver_type=(
                OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            ),
        )
        details = interpreter.get_tensor_details()
        convolutions = [
            op
            for op in interpreter._get_ops_details()
            if op["op_name"] == "CONV_2D"
        ]
        self.assertNotEmpty(convolutions)
        for op in convolutions:
            self.assertEqual(details[op["inputs"][0]]["dtype"], np.int8)
            self.assertEqual(details[op["inputs"][1]]["dtype"], np.int8)

    def test_int8_calibrates_on_videos_of_any_length(self):
        model = keras.Sequential(
            [
                keras.Input((None, 4)),
                keras.layers.GRU(2, return_sequences=True),
                keras.layers.Dense(3),
            ]
        )
        rng = np.random.default_rng(0)
        videos = [rng.integers(0, 256, (t, 4), "uint8") for t in (2, 5)]
        step = LiteRTStep(
            export_step(
                model,
                os.path.join(self.get_temp_dir(), "int8.tflite"),
                quantization="int8",
                representative_videos=videos,
            )
        )
        probabilities, _ = step(videos[1][:1], step.zero_states(1))
        self.assertEqual(probabilities.shape, (1, 3))

    def test_refusals_name_the_layer(self):
        path = os.path.join(self.get_temp_dir(), "step.tflite")
        backwards = keras.Sequential(
            [
                keras.Input((None, 8)),
                keras.layers.Bidirectional(
                    keras.layers.LSTM(2, return_sequences=True),
                    name="both_ways",
                ),
            ]
        )
        with self.assertRaisesRegex(
            ValueError, "layer 'both_ways'.*later frames change earlier"
        ):
            export_step(backwards, path)
        determinant = keras.Sequential(
            [
                keras.Input((None, 4)),
                keras.layers.GRU(4, return_sequences=True),
                keras.layers.Lambda(
                    lambda x: (
                        x
                        * tf.linalg.det(tf.reshape(x, (-1, 1, 2, 2)))[..., None]
                    ),
                    name="determinant",
                ),
            ]
        )
        with self.assertRaisesRegex(
            ValueError,
            r"builtin operations.*layer 'determinant' \(Lambda\) uses "
            r"\['MatrixDeterminant'\]",
        ):
            export_step(determinant, path)

    def test_bad_arguments(self):
        model = cbm_stack()
        directory = self.get_temp_dir()
        litert = os.path.join(directory, "step.tflite")
        with self.assertRaisesRegex(ValueError, "format='tflite'"):
            export_step(model, litert, format="tflite")
        with self.assertRaisesRegex(ValueError, "end in '.onnx'"):
            export_step(model, litert, format="onnx")
        with self.assertRaisesRegex(ValueError, "quantization='float16'"):
            export_step(
                model,
                os.path.join(directory, "step.onnx"),
                format="onnx",
                quantization="float16",
            )
        with self.assertRaisesRegex(ValueError, "quantization='int4'"):
            export_step(model, litert, quantization="int4")
        with self.assertRaisesRegex(ValueError, "`representative_videos`"):
            export_step(model, litert, quantization="int8")
        with self.assertRaisesRegex(
            ValueError, r"representative_videos\[0\] of shape \(16, 16, 1\)"
        ):
            export_step(
                model,
                litert,
                quantization="int8",
                representative_videos=np.zeros((2, 16, 16, 1), "uint8"),
            )
        with self.assertRaisesRegex(ValueError, "scale=-1"):
            export_step(model, litert, scale=-1)
