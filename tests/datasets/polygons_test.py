import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_cbm.datasets  # noqa: F401  (registers the builders)
from keras_cbm.datasets import polygons
from keras_cbm.datasets.polygons import Polygons
from keras_cbm.datasets.polygons import PolygonsConfig
from keras_cbm.datasets.polygons import polygon_examples
from tests.datasets import single_frame


class PolygonsBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """Builds, reloads and counts the small config (nothing to mock: the
    builder downloads nothing)."""

    DATASET_CLASS = Polygons
    BUILDER_CONFIG_NAMES_TO_TEST = ["small"]
    SPLITS = {"train": 16, "test": 8}
    EXAMPLE_DIR = str(single_frame.THIS_DIR)


def small(**changes):
    config = Polygons.builder_configs["small"]
    fields = {
        field: getattr(config, field)
        for field in (
            "image_size",
            "grid_size",
            "min_vertices",
            "max_vertices",
            "num_distractors",
            "num_occluders",
            "blur",
        )
    }
    fields.update(train_examples=3, test_examples=2)
    return PolygonsConfig(name="tiny", **{**fields, **changes})


def test_tfds_load_registers_and_builds_offline(tmp_path, offline):
    crops = tfds.load(
        "polygons",
        split="test",
        data_dir=tmp_path,
        builder_kwargs={"config": small()},
    )
    elements = list(crops.as_numpy_iterator())
    assert len(elements) == 2
    for element in elements:
        assert element["image"].shape == (32, 32, 3)
        assert element["image"].dtype == np.uint8
        assert element["mask"].shape == (32, 32, 1)
        assert 4 <= len(element["vertices"]) == element["num_vertices"] <= 8
    assert set(Polygons.builder_configs) >= {"easy", "cluttered"}
    assert Polygons.DEFAULT_CONFIG_NAME == "easy"


def test_deterministic_by_seed():
    def draw(seed):
        return list(polygon_examples(small(seed=seed), "train"))

    first, again, other = draw(0), draw(0), draw(1)
    for (_, a), (_, b), (_, c) in zip(first, again, other, strict=True):
        for key in ("image", "vertices", "mask"):
            np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a["image"], c["image"])


def test_vertices_clockwise_from_the_top_on_the_grid():
    config = Polygons.builder_configs["easy"]
    counts = []
    for _, example in polygon_examples(config, "train", 30):
        vertices = example["vertices"]
        counts.append(len(vertices))
        assert vertices.min() >= 0 and vertices.max() < config.grid_size
        rows, cols = vertices[:, 0], vertices[:, 1]
        assert rows[0] == rows.min()
        assert cols[0] == cols[rows == rows.min()].min()
        area = np.sum(cols * np.roll(rows, -1) - np.roll(cols, -1) * rows)
        assert area > 0  # clockwise on the image
        assert not np.any(np.all(vertices == np.roll(vertices, 1, 0), axis=1))
    assert min(counts) >= 5 and max(counts) <= 20 and len(set(counts)) > 5


@pytest.mark.parametrize(
    "changes, name",
    [
        ({"min_vertices": 2}, "min_vertices"),
        ({"max_vertices": 3}, "max_vertices"),
        ({"image_size": 8}, "image_size"),
        ({"noise": 2.0}, "noise"),
        ({"convex_fraction": -0.1}, "convex_fraction"),
        ({"num_occluders": 1.5}, "num_occluders"),
        ({"blur": "yes"}, "blur"),
        ({"train_examples": -1}, "train_examples"),
    ],
)
def test_bad_arguments_are_named(changes, name):
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        small(**changes)


def test_polygon_sequences_tokens_and_weights():
    config = small()
    examples = [example for _, example in polygon_examples(config, "train")]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(examples),
        output_signature={
            "image": tf.TensorSpec((32, 32, 3), tf.uint8),
            "vertices": tf.TensorSpec((None, 2), tf.int32),
            "num_vertices": tf.TensorSpec((), tf.int32),
            "mask": tf.TensorSpec((32, 32, 1), tf.uint8),
            "example_id": tf.TensorSpec((), tf.string),
        },
    )
    sequences = polygons.polygon_sequences(dataset, 8, grid_size=14)
    for example, (inputs, tokens, weights) in zip(
        examples, sequences.as_numpy_iterator(), strict=True
    ):
        count = example["num_vertices"]
        expected = example["vertices"] @ np.array([14, 1])
        np.testing.assert_array_equal(tokens[:count], expected)
        np.testing.assert_array_equal(tokens[count:], 196)
        np.testing.assert_array_equal(weights, np.arange(9) <= count)
        np.testing.assert_array_equal(inputs["vertices"], tokens)
        assert inputs["image"].dtype == np.float32
        assert inputs["image"].max() <= 1.0
