import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from keras.src import testing

from keras_cbm.layers import ConvCBM2D
from keras_cbm.layers import FrameAggregation
from keras_cbm.models import RecurrentStates
from keras_cbm.serving import LiteRTStep
from keras_cbm.serving import export
from keras_cbm.serving import export_step
from keras_cbm.training import CoherenceModel
from tests import video_models as models

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="serving needs the TensorFlow backend",
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
CLIENT = os.path.join(ROOT, "tests", "serving", "serve.py")
SCALE = np.float32(1 / 255)
AGGREGATIONS = {
    "sequential": "mean",
    "functional": "vote",
    "cell": "last",
    "standalone": "mean",
}


def serve(work_dir, jobs):
    """Serves `jobs` (name: (SavedModel path, uint8 videos, errors)) in one
    fresh process away from the repository; returns name: its outputs."""
    entries = []
    for name, (path, videos, errors) in jobs.items():
        videos_path = os.path.join(work_dir, f"{name}_videos.npy")
        np.save(videos_path, videos)
        entries.append(
            {
                "path": path,
                "videos": videos_path,
                "output": os.path.join(work_dir, f"{name}_served.npz"),
                "errors": errors,
            }
        )
    jobs_path = os.path.join(work_dir, "jobs.json")
    with open(jobs_path, "w") as file:
        json.dump(entries, file)
    subprocess.run(
        [sys.executable, CLIENT, jobs_path],
        cwd=work_dir,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        check=True,
        timeout=300,
    )
    return {
        name: dict(np.load(entry["output"]))
        for name, entry in zip(jobs, entries, strict=True)
    }


def state_layer_names(model):
    """The recurrent layer of every state, in `RecurrentStates` order."""
    run = RecurrentStates(model)
    _, states = run(keras.ops.zeros((1, 1) + models.FRAME_SHAPE))
    return [
        layer.name
        for layer, layer_states in zip(run.layers, states, strict=True)
        for _ in layer_states
    ]


def one_clip(frames):
    """The clip inputs of a `CoherenceModel`: one clip per video, all of
    it."""
    batch, time = frames.shape[:2]
    alignment = np.broadcast_to(
        np.arange(time, dtype="int32"), (batch, 1, time)
    )
    return {"clips": frames[:, None], "alignment": alignment}


class ExportTest(testing.TestCase):
    @pytest.mark.slow
    def test_fresh_process_serves_every_model_one_trained_under_jax(self):
        work_dir = self.get_temp_dir()
        # Trains under JAX in its own process while the others export.
        jax_training = subprocess.Popen(
            [sys.executable, "-m", "tests.serving.jax_train", work_dir],
            cwd=ROOT,
            env=dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3"),
        )
        built, jobs = {}, {}
        for kind, aggregation in AGGREGATIONS.items():
            model = models.build(kind)
            path = export(
                model,
                os.path.join(work_dir, kind),
                aggregation=aggregation,
                frame_shape=models.FRAME_SHAPE if kind == "cell" else None,
            )
            built[kind] = model
            jobs[kind] = (path, models.videos(), kind == "functional")
        predictor = models.build("predictor")
        jobs["predictor"] = (
            export(predictor, os.path.join(work_dir, "predictor")),
            models.videos(frames=3),
            False,
        )
        self.assertEqual(jax_training.wait(timeout=300), 0)
        trainer = keras.saving.load_model(os.path.join(work_dir, "model.keras"))
        self.assertIsInstance(trainer, CoherenceModel)
        jax = np.load(os.path.join(work_dir, "predictions.npz"))
        jobs["jax"] = (
            export(trainer, os.path.join(work_dir, "jax")),
            jax["videos"],
            False,
        )
        served = serve(work_dir, jobs)

        for kind, model in built.items():
            outputs = served[kind]
            self.assertFalse(outputs["imported_keras_cbm"], msg=kind)
            # As the signatures scale: `scale` in float32, then a product.
            frames = jobs[kind][1].astype("float32") * SCALE
            logits = np.asarray(model(frames, training=False))
            probabilities = models.softmax(logits)
            video = {
                "mean": models.softmax(logits.mean(axis=1)),
                "last": probabilities[:, -1],
                "vote": FrameAggregation("vote")(logits),
            }[AGGREGATIONS[kind]]
            self.assertAllClose(
                outputs["video_probabilities"], video, atol=1e-5, msg=kind
            )
            self.assertAllClose(
                outputs["frame_probabilities"],
                probabilities,
                atol=1e-5,
                msg=kind,
            )
            layers = state_layer_names(model)
            self.assertEqual(list(outputs["state_layers"]), layers)
            self.assertEqual(
                sorted(outputs["state_names"]),
                sorted(f"state_{k + 1}" for k in range(len(layers))),
            )
        # One quantity: `classify` is `CoherenceModel`'s "probabilities"
        # for one clip covering the video.
        frames = jobs["standalone"][1].astype("float32") * SCALE
        self.assertAllClose(
            served["standalone"]["video_probabilities"],
            CoherenceModel(built["standalone"]).predict(
                one_clip(frames), verbose=0
            )["probabilities"],
            atol=1e-5,
        )
        frames = jobs["predictor"][1].astype("float32") * SCALE
        self.assertFalse(served["predictor"]["imported_keras_cbm"])
        self.assertAllClose(
            served["predictor"]["outputs"],
            predictor(frames, training=False),
            atol=1e-5,
        )
        functional = served["functional"]
        self.assertRefusals(functional, len(functional["state_names"]))
        self.assertServesWhatJaxPredicted(served["jax"], trainer, jax)

    def assertServesWhatJaxPredicted(self, served, trainer, jax):
        """The SavedModel and the LiteRT step of the JAX-trained `trainer`
        give what it predicted under JAX."""
        # "last", the trainer's aggregation, is the export's default.
        self.assertAllClose(
            served["video_probabilities"], jax["probabilities"], atol=1e-5
        )
        self.assertAllClose(
            served["frame_probabilities"],
            keras.ops.softmax(jax["outputs"], axis=-1),
            atol=1e-5,
        )
        # The LiteRT step, streamed frame by frame.
        step = LiteRTStep(
            export_step(trainer, os.path.join(self.get_temp_dir(), "s.tflite"))
        )
        states = step.zero_states(len(jax["videos"]))
        for t in range(jax["videos"].shape[1]):
            probabilities, states = step(jax["videos"][:, t], states)
            self.assertAllClose(
                probabilities,
                keras.ops.softmax(jax["outputs"][:, t], axis=-1),
                atol=1e-5,
            )

    def assertRefusals(self, served, count):
        """The refusals of `serve.py`'s bad inputs name the input, what it
        must be and what it was; then the server still serves."""
        last = f"state_{count}"
        expected = {
            "classify_numpy_size": [
                "Can not cast TensorSpec(shape=(2, 32, 15, 16, 3), "
                "dtype=tf.uint8, name='frames') to TensorSpec(shape=(None, "
                "None, 16, 16, 3), dtype=tf.uint8, name='frames')",
                # NumPy's summary, not the whole array.
                "...",
            ],
            "classify_tensor_size": [
                "Shape of tensor frames [2,32,15,16,3] is not compatible "
                "with expected shape [?,?,16,16,3]"
            ],
            "classify_tensor_rank": [
                "Shape of tensor frames [32,16,16,3] is not compatible with "
                "expected shape [?,?,16,16,3]"
            ],
            "classify_tensor_dtype": [
                "input #0(zero-based) was expected to be a uint8 tensor but "
                "is a float tensor"
            ],
            "classify_empty": ["`frames` must hold at least one frame"],
            "step_numpy_size": [
                "to TensorSpec(shape=(None, 16, 16, 3), dtype=tf.uint8, "
                "name='frame')"
            ],
            "step_tensor_size": [
                "Shape of tensor frame [2,15,16,3] is not compatible with "
                "expected shape [?,16,16,3]"
            ],
            "step_tensor_dtype": [
                "input #0(zero-based) was expected to be a uint8 tensor but "
                "is a float tensor"
            ],
            "step_state_size": [
                f"Shape of tensor {last} [2,3] is not compatible with "
                "expected shape [?,4]"
            ],
            "step_state_dtype": [
                f"input #{count}(zero-based) was expected to be a float "
                "tensor but is a double tensor"
            ],
            "step_batch": [f"`{last}` must have the batch size of `frame`"],
            "step_fewer_states": [f"missing a required argument: '{last}'"],
            "step_more_states": ["unexpected keyword argument 'state_99'"],
        }
        for name, texts in expected.items():
            message = str(served[f"error_{name}"])
            for text in texts:
                self.assertIn(text, message, msg=name)
        self.assertAllClose(
            served["after_errors"], served["video_probabilities"]
        )

    def test_coherence_model_defaults(self):
        # A model of probabilities: the mean of the frames' log-probabilities
        # is the mean of their logits up to a constant the softmax cancels.
        keras.utils.set_random_seed(0)
        model = models.sequential(activation="softmax")
        # Confident frames, so that the two means differ.
        head = model.layers[-1]
        head.kernel.assign(head.kernel * 20.0)
        trainer = CoherenceModel(
            model, aggregation="mean_probabilities", from_logits=False
        )
        for aggregation, exported in (
            ("mean_probabilities", trainer),
            ("mean", CoherenceModel(model, from_logits=False)),
        ):
            path = export(
                exported, os.path.join(self.get_temp_dir(), aggregation)
            )
            video = models.videos(count=1, frames=4)
            served = tf.saved_model.load(path)
            outputs = served.signatures["classify"](frames=video)
            p = np.asarray(model(video * SCALE))
            expected = {
                "mean_probabilities": p.mean(axis=1),
                "mean": models.softmax(
                    np.log(np.maximum(p, keras.config.epsilon())).mean(axis=1)
                ),
            }[aggregation]
            self.assertAllClose(outputs["probabilities"], expected, atol=1e-6)
        self.assertNotAllClose(expected, p.mean(axis=1), atol=1e-3)

    def test_scale(self):
        # `scale` differs from the default, so that ignoring it (or using
        # the default instead) changes the probabilities.
        model = models.build("sequential")
        video = models.videos(count=1, frames=4)
        scale = 1 / 64
        path = export(model, self.get_temp_dir(), scale=scale)
        served = tf.saved_model.load(path)
        probabilities = served.signatures["classify"](frames=video)
        expected = models.softmax(
            np.asarray(model(video * np.float32(scale))).mean(axis=1)
        )
        self.assertAllClose(probabilities["probabilities"], expected, atol=1e-6)

    def test_every_signature_feeds_one_input_dtype_under_mixed_float16(self):
        # The model's float32 `keras.Input` takes frames * 1e-5 in float32;
        # in float16, 1e-5 is a subnormal 0.14 % off, which the logit
        # 1000 * x - 2.55 (about 0 at 255 * 1e-5) turns into 0.001 of
        # probability: a signature feeding float16 shows.
        keras.config.set_dtype_policy("mixed_float16")
        try:
            model = keras.Sequential(
                [
                    keras.Input((None, 1)),
                    keras.layers.SimpleRNN(
                        1,
                        activation=None,
                        kernel_initializer="ones",
                        recurrent_initializer="zeros",
                        return_sequences=True,
                    ),
                    keras.layers.Dense(
                        2,
                        kernel_initializer=keras.initializers.Constant(
                            [[1000.0, 0.0]]
                        ),
                        bias_initializer=keras.initializers.Constant(
                            [0.0, 2.55]
                        ),
                    ),
                ]
            )
        finally:
            keras.config.set_dtype_policy("float32")
        served = tf.saved_model.load(
            export(model, self.get_temp_dir(), scale=1e-5)
        )
        frames = tf.fill((1, 1, 1), tf.constant(255, tf.uint8))
        whole = served.signatures["classify"](frames=frames)
        step = served.signatures["step"](
            frame=frames[:, 0], state_1=tf.zeros((1, 1), "float16")
        )
        self.assertAllEqual(whole["probabilities"], step["probabilities"])

    def test_bad_arguments(self):
        path = self.get_temp_dir()
        model = models.build("sequential")
        with self.assertRaisesRegex(ValueError, "aggregation='max'"):
            export(model, path, aggregation="max")
        with self.assertRaisesRegex(ValueError, "scale=0"):
            export(model, path, scale=0)
        with self.assertRaisesRegex(ValueError, "`model` must be a Keras"):
            export(ConvCBM2D(4, 3), path)
        with self.assertRaisesRegex(ValueError, r"frame_shape=\(8, 8, 3\)"):
            export(model, path, frame_shape=(8, 8, 3))
        with self.assertRaisesRegex(ValueError, "`frame_shape` must be given"):
            export(models.CellModel(), path)
        frames = keras.Input((None, None, None, 3))
        dynamic = keras.Model(frames, keras.layers.Dense(2)(frames[:, :, 0, 0]))
        with self.assertRaisesRegex(ValueError, "static shape"):
            export(dynamic, path)
        fixed = keras.Sequential(
            [
                keras.Input((4, 8)),
                keras.layers.LSTM(2, return_sequences=True),
            ]
        )
        with self.assertRaisesRegex(ValueError, "a model of 4 frames"):
            export(fixed, path)

    def test_refuses_what_cannot_step_naming_the_layer(self):
        for layer in (
            keras.layers.Bidirectional(
                keras.layers.LSTM(2, return_sequences=True), name="both_ways"
            ),
            keras.layers.GRU(
                2, return_sequences=True, go_backwards=True, name="both_ways"
            ),
        ):
            model = keras.Sequential([keras.Input((None, 8)), layer])
            with self.assertRaisesRegex(
                ValueError, "layer 'both_ways'.*later frames change earlier"
            ):
                export(model, self.get_temp_dir())


class ServingInputsTest(testing.TestCase):
    """Any input a client sends, as NumPy or tensors: the right ones are
    served, the wrong ones refused naming the input."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.path = os.path.join(tempfile.mkdtemp(), "functional")
        model = models.build("functional")
        export(model, cls.path)
        cls.served = tf.saved_model.load(cls.path)
        cls.step = cls.served.signatures["step"]
        cls.specs = cls.step.structured_input_signature[1]

    @settings(derandomize=True, max_examples=40, deadline=None)
    @given(
        as_tensor=st.booleans(),
        batch=st.integers(1, 3),
        fault=st.sampled_from(
            ["none", "size", "rank", "dtype", "batch", "missing", "extra"]
        ),
        target=st.sampled_from(["frame", "state_1", "state_3", "state_4"]),
        axis=st.integers(1, 3),
        dtype=st.sampled_from(["float32", "int32", "float64", "uint8"]),
    )
    def test_step_inputs(self, as_tensor, batch, fault, target, axis, dtype):
        rng = np.random.default_rng(0)
        inputs = {
            name: rng.integers(0, 256, (batch, *spec.shape[1:])).astype(
                spec.dtype.as_numpy_dtype
            )
            for name, spec in self.specs.items()
        }
        spec = self.specs[target]
        value = inputs[target]
        axis = min(axis, len(spec.shape) - 1)
        if fault == "size":
            shape = list(value.shape)
            shape[axis] += 1
            inputs[target] = np.resize(value, shape)
        elif fault == "rank":
            inputs[target] = value[..., None]
        elif fault == "dtype":
            inputs[target] = value.astype(dtype)
        elif fault == "batch" and target != "frame":
            inputs[target] = value[:-1] if batch > 1 else value.repeat(2, 0)
        elif fault == "missing" and target != "frame":
            del inputs[target]
        elif fault == "extra":
            inputs["state_99"] = value
        else:
            fault = "none"
        if as_tensor:
            inputs = {name: tf.constant(v) for name, v in inputs.items()}

        refused = fault in ("size", "rank", "batch", "missing", "extra") or (
            fault == "dtype" and as_tensor and dtype != spec.dtype.name
        )
        if not refused:
            # NumPy arrays are cast to the spec's dtype on binding.
            outputs = self.step(**inputs)
            self.assertEqual(outputs["probabilities"].shape, (batch, 3))
            self.assertAllClose(
                tf.reduce_sum(outputs["probabilities"], -1), np.ones(batch)
            )
            return
        try:
            self.step(**inputs)
        except (TypeError, tf.errors.InvalidArgumentError) as error:
            message = str(error)
        else:
            self.fail(f"{fault} of {target} was served")
        self.assertRefusalNames(message, fault, target, spec, list(self.specs))
        # The server still serves.
        zeros = {
            name: tf.zeros((1, *spec.shape[1:]), spec.dtype)
            for name, spec in self.specs.items()
        }
        self.assertEqual(self.step(**zeros)["probabilities"].shape, (1, 3))

    def test_step_refuses_non_finite_states_naming_them(self):
        inputs = {
            name: np.zeros((2, *spec.shape[1:]), spec.dtype.as_numpy_dtype)
            for name, spec in self.specs.items()
        }
        floating = [
            name
            for name, spec in self.specs.items()
            if name != "frame" and spec.dtype.is_floating
        ]
        self.assertNotEmpty(floating)
        for name in floating:
            for bad in (np.nan, np.inf, -np.inf):
                faulty = dict(inputs)
                faulty[name] = inputs[name].copy()
                faulty[name].reshape(-1)[-1] = bad
                with self.assertRaisesRegex(
                    tf.errors.InvalidArgumentError, f"`{name}` must be finite"
                ):
                    self.step(**faulty)
        outputs = self.step(**inputs)
        self.assertTrue(np.isfinite(outputs["probabilities"]).all())

    def assertRefusalNames(self, message, fault, target, spec, names):
        if fault == "missing":
            self.assertIn(f"missing a required argument: '{target}'", message)
        elif fault == "extra":
            self.assertIn("unexpected keyword argument 'state_99'", message)
        elif fault == "batch":
            self.assertIn(f"`{target}` must have the batch size of", message)
        elif fault == "dtype":
            # All tensors reach TensorFlow's executor, which names the input
            # by its position (frame, state_1, ..., state_N).
            position = ["frame"] + sorted(
                (n for n in names if n != "frame"),
                key=lambda n: int(n.split("_")[1]),
            )
            self.assertIn(
                f"input #{position.index(target)}(zero-based) was expected "
                f"to be a {spec.dtype.name.replace('32', '')}",
                message,
            )
        else:
            expected = ",".join(
                "?" if d is None else str(d) for d in spec.shape
            )
            self.assertTrue(
                f"Shape of tensor {target} " in message
                and f"expected shape [{expected}]" in message
                or f"to TensorSpec(shape={tuple(spec.shape)}, "
                f"dtype=tf.{spec.dtype.name}, name='{target}')"
                in message,
                msg=message[:500],
            )
