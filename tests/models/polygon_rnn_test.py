import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

from keras_cbm import models
from keras_cbm.layers import DeepCBM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="runs the JAX fit in its own process once, from the TF suite",
)

GRID = 8
END = GRID * GRID


def tiny_model(layer_type="cbm", depth=2, seed=1):
    return models.polygon_rnn(
        image_size=16,
        grid_size=GRID,
        encoder_filters=(4, 8),
        feature_channels=4,
        depth=depth,
        filters=4,
        layer_type=layer_type,
        seed=seed,
    )


def tiny_data(seed=0):
    """Two images and their token sequences (5 and 3 vertices, 6 steps)."""
    rng = np.random.default_rng(seed)
    images = rng.random((2, 16, 16, 3)).astype("float32")
    tokens = np.array(
        [[3, 13, 29, 42, 33, END, END], [9, 12, 50, END, END, END, END]],
        "int32",
    )
    return images, tokens


def as_vertices(tokens):
    vertices = np.stack([tokens // GRID, tokens % GRID], axis=-1)
    vertices[tokens == END] = -1
    return vertices


def randomize(model, seed=0, scale=0.5):
    """Weights large enough that greedy decoding varies with its inputs."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [scale * rng.standard_normal(w.shape) for w in model.get_weights()]
    )


class PolygonRNNTest(testing.TestCase):
    def test_layout_and_fit_with_teacher_forcing(self):
        model = tiny_model(depth=3)
        stack = model.get_layer("decoder").get_layer("deep_cbm")
        self.assertIsInstance(stack, DeepCBM)
        self.assertEqual(stack.depth, 3)
        self.assertIsNone(stack.jump_stride)  # no shortcuts, as the paper's
        self.assertEqual(stack.temporal_dropout, 0.5)
        self.assertEqual(stack.temporal_gate, "recurrent")  # the default
        images, tokens = tiny_data()
        inputs = {"image": images, "vertices": tokens}
        self.assertEqual(tuple(model(inputs).shape), (2, 7, END + 1))
        model.compile(
            "adam",
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        weights = (np.arange(7) <= np.array([[5], [3]])).astype("float32")
        history = model.fit(
            inputs, tokens, sample_weight=weights, epochs=3, verbose=0
        )
        self.assertLess(history.history["loss"][-1], history.history["loss"][0])
        path = os.path.join(self.get_temp_dir(), "polygon.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        self.assertAllClose(loaded(inputs), model(inputs), atol=1e-6)

    def test_convlstm_baseline_has_the_same_layout(self):
        model = tiny_model("convlstm", depth=3)
        stack = model.get_layer("decoder").get_layer("deep_cbm")
        self.assertEqual(stack.layer_type, "convlstm")
        self.assertEqual(len(stack.recurrent_layers), 3)

    def test_decoding_fed_the_true_vertices_equals_teacher_forcing(self):
        model = tiny_model(depth=3)
        randomize(model)
        images, tokens = tiny_data()
        forced = np.asarray(model({"image": images, "vertices": tokens}))
        decoded = models.decode_polygons(
            model, images, as_vertices(tokens[:, :-1]), max_vertices=6
        )
        logits = np.asarray(decoded["logits"])
        # Every step whose inputs were fixed: up to each polygon's end.
        self.assertAllClose(logits[0, :6], forced[0, :6], atol=1e-5)
        self.assertAllClose(logits[1, :4], forced[1, :4], atol=1e-5)
        vertices = np.asarray(decoded["vertices"])
        self.assertAllEqual(vertices[0, :5], as_vertices(tokens)[0, :5])
        self.assertAllEqual(vertices[1, :3], as_vertices(tokens)[1, :3])

    def test_fixing_vertex_k_keeps_earlier_and_changes_later_vertices(self):
        model = tiny_model()
        # Weights whose greedy polygons run long and follow their inputs.
        randomize(model, seed=2, scale=0.2)
        images, tokens = tiny_data()
        given = as_vertices(tokens)

        def decode(fixed):
            return np.asarray(
                models.decode_polygons(model, images, fixed, max_vertices=6)[
                    "vertices"
                ]
            )

        for k in (1, 2):
            before = decode(given[:, :k])
            self.assertAllEqual(before[:, :k], given[:, :k])
            fixed = before[:, : k + 1].copy()
            # Vertex k moved to another cell: a person's correction.
            fixed[:, k] = (np.maximum(fixed[:, k], 0) + [3, 5]) % GRID
            after = decode(fixed)
            self.assertAllEqual(after[:, : k + 1], fixed)
            self.assertFalse(
                np.array_equal(after[:, k + 1 :], before[:, k + 1 :])
            )

    def test_traced_decode_graph_does_not_grow_with_the_polygon(self):
        model = tiny_model(depth=2)
        # The decoder ends a polygon as soon as no vertex is fixed.
        end = model.get_layer("decoder").get_layer("vertex_logits").end
        end.bias.assign([100.0])
        images, _ = tiny_data()

        @tf.function
        def decode(image, fixed):
            return models.decode_polygons(model, image, fixed, max_vertices=20)

        sizes = []
        for count in (5, 20):
            fixed = np.tile(np.array([[[1, 1]]], "int32"), (2, count, 1))
            graph = decode.get_concrete_function(
                tf.constant(images), tf.constant(fixed)
            ).graph
            sizes.append(len(graph.as_graph_def().node))
            outputs = decode(tf.constant(images), tf.constant(fixed))
            self.assertAllEqual(outputs["num_vertices"], [count, count])
        self.assertEqual(sizes[0], sizes[1])
        self.assertLess(sizes[0], 1000)

    def test_bad_decode_inputs_are_named(self):
        model = tiny_model()
        images, _ = tiny_data()
        with self.assertRaisesRegex(ValueError, r"`image` must have shape"):
            models.decode_polygons(model, images[:, :8])
        for bad in ([[[1, 1], [GRID, 0]]], [[[1, -2]]]):
            with self.assertRaisesRegex(
                ValueError, r"`fixed_vertices` must be cells in \[0, 8\)"
            ):
                models.decode_polygons(model, images[:1], np.array(bad))
        with self.assertRaisesRegex(ValueError, "at most max_vertices=2"):
            models.decode_polygons(
                model, images, np.ones((2, 3, 2), "int32"), max_vertices=2
            )
        with self.assertRaisesRegex(ValueError, r"`fixed_vertices` must have"):
            models.decode_polygons(model, images, np.zeros((2, 3), "int32"))
        with self.assertRaisesRegex(ValueError, "`grid_size` must be"):
            models.polygon_rnn(grid_size=1)
        with self.assertRaisesRegex(ValueError, "polygon_rnn"):
            models.decode_polygons(
                keras.Sequential([keras.Input((2,))]), images
            )

    @pytest.mark.slow
    def test_fits_and_decodes_on_jax(self):
        path = os.path.join(self.get_temp_dir(), "jax.npz")
        subprocess.run(
            [sys.executable, "-m", "tests.models.polygon_jax", path],
            cwd=ROOT,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            check=True,
            timeout=300,
        )
        with np.load(path) as saved:
            self.assertEqual(str(saved["backend"]), "jax")
            self.assertTrue(np.all(np.isfinite(saved["loss"])))
            self.assertLess(saved["loss"][-1], saved["loss"][0])
            self.assertAllClose(saved["decoded"], saved["forced"], atol=1e-5)
