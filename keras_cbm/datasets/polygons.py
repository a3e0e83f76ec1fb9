"""Polygons: object crops whose outline is traced vertex by vertex, the
Polygon-RNN task, generated locally."""

import dataclasses
import numbers

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_cbm.datasets.local_builder import LocalBuilder
from keras_cbm.metrics.polygon_iou import rasterize_polygons

_SPLIT_INDEX = {"train": 0, "test": 1}
# Fraction of the crop, around its centre, where the object's centre lies
# (Polygon-RNN's crops are centred on the object, with a margin).
_CENTRE_JITTER = 0.08


@dataclasses.dataclass
class PolygonsConfig(tfds.core.BuilderConfig):
    """A configuration of `Polygons`.

    Attributes:
        image_size: Rows and columns of an image.
        grid_size: Rows and columns of the vertex grid.
        min_vertices: The fewest vertices of an object, >= 3.
        max_vertices: The most vertices of an object.
        convex_fraction: Fraction of objects drawn convex.
        num_distractors: Polygons behind the object (clutter).
        num_occluders: Polygons in front of the object, each covering part
            of its outline.
        noise: Standard deviation of the Gaussian pixel noise, in [0, 1]
            of the pixel range.
        blur: Whether to blur the image (3x3 binomial filter).
        train_examples: Examples in the `train` split.
        test_examples: Examples in the `test` split.
        seed: Base seed; example `i` of a split is drawn from
            `numpy.random.default_rng([seed, split, i])`.
    """

    image_size: int = 64
    grid_size: int = 28
    min_vertices: int = 5
    max_vertices: int = 20
    convex_fraction: float = 0.5
    num_distractors: int = 0
    num_occluders: int = 0
    noise: float = 0.02
    blur: bool = False
    train_examples: int = 2000
    test_examples: int = 400
    seed: int = 0

    def __post_init__(self):
        check_config(self)


def _fail(name, expected, value):
    raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")


def check_config(config):
    """Raises `ValueError` naming the first bad attribute of a
    `PolygonsConfig`."""

    def integer(name, minimum, maximum=None):
        value = getattr(config, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Integral)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            bound = "" if maximum is None else f" and <= {maximum}"
            _fail(name, f"an integer >= {minimum}{bound}", value)

    integer("grid_size", 4)
    integer("image_size", config.grid_size)
    integer("min_vertices", 3)
    integer("max_vertices", config.min_vertices, config.grid_size**2)
    integer("num_distractors", 0)
    integer("num_occluders", 0)
    integer("train_examples", 0)
    integer("test_examples", 0)
    integer("seed", 0)
    for name in ("convex_fraction", "noise"):
        value = getattr(config, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not 0 <= value <= 1
        ):
            _fail(name, "a number in [0, 1]", value)
    if not isinstance(config.blur, bool):
        _fail("blur", "True or False", config.blur)


class Polygons(LocalBuilder, tfds.core.GeneratorBasedBuilder):
    """Polygons: one textured polygonal object per crop, its outline a
    sequence of vertices on a coarse grid (the Polygon-RNN task).

    Every example is an RGB crop of `image_size x image_size` pixels
    centred (within a few pixels) on one object: a simple polygon of
    `min_vertices` to `max_vertices` vertices, convex or star-shaped
    (concave), filled with a random colour and a striped texture, on a
    textured background. Distractor polygons lie behind it (clutter),
    occluders in front of it cover part of its outline; Gaussian noise
    and an optional blur follow. The object's vertices lie on a
    `grid_size x grid_size` grid (cell `(row, col)` is the pixel square
    whose centre is `((row + 0.5), (col + 0.5)) * image_size / grid_size`),
    ordered clockwise on the image from a fixed start, the top vertex
    (leftmost among equals), as Polygon-RNN orders them. The mask is the
    whole polygon (occluded parts included), rasterised at the image's
    resolution from the grid vertices, so that predicting the vertices
    exactly gives IoU 1.

    Configs:

    * `easy` (default): one object on a textured background, noise 0.02;
      2000 train / 400 test crops of 64 x 64 (built in about 20 s on 2
      CPU cores).
    * `cluttered`: 3 distractors behind, 2 occluders in front, noise
      0.05, blurred.
    * `small`: 16 train / 8 test crops of 32 x 32 on a 14 x 14 grid, 4-8
      vertices, with clutter: for tests.

    Features: `image` (`(image_size, image_size, 3)` uint8), `vertices`
    (`(num_vertices, 2)` int32, `(row, col)` on the grid), `num_vertices`,
    `mask` (`(image_size, image_size, 1)` uint8, 1 inside), `example_id`.
    `polygon_sequences` turns them into `polygon_rnn`'s inputs and targets.

    Generation is deterministic: example `i` of a split comes from
    `numpy.random.default_rng([seed, split, i])`; nothing is downloaded.
    Bad config values are refused when the config is made, naming them.

    Example:

    >>> import tempfile
    >>> import tensorflow_datasets as tfds
    >>> import keras_cbm.datasets
    >>> crops = tfds.load("polygons/small", split="train",
    ...                   data_dir=tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Downloading and preparing dataset ...
    Dataset polygons downloaded and prepared to ...
    >>> element = next(iter(crops))
    >>> tuple(element["image"].shape), element["vertices"].shape[1]
    ((32, 32, 3), 2)
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        PolygonsConfig(name="easy", description="One object, little noise."),
        PolygonsConfig(
            name="cluttered",
            description="Distractors behind, occluders in front, blur.",
            num_distractors=3,
            num_occluders=2,
            noise=0.05,
            blur=True,
        ),
        PolygonsConfig(
            name="small",
            description="Tiny crops with clutter, for tests.",
            image_size=32,
            grid_size=14,
            min_vertices=4,
            max_vertices=8,
            num_distractors=1,
            num_occluders=1,
            blur=True,
            train_examples=16,
            test_examples=8,
        ),
    ]
    DEFAULT_CONFIG_NAME = "easy"

    def _info(self):
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 3)),
                    "vertices": tfds.features.Tensor(
                        shape=(None, 2), dtype=np.int32
                    ),
                    "num_vertices": tfds.features.Scalar(dtype=np.int32),
                    "mask": tfds.features.Image(shape=(size, size, 1)),
                    "example_id": tfds.features.Text(),
                }
            ),
        )

    def _generate_examples(self, split):
        yield from polygon_examples(self.builder_config, split)


def polygon_examples(config, split, num_examples=None):
    """Generates the examples of one split of a `PolygonsConfig`.

    Args:
        config: A `PolygonsConfig`.
        split: `"train"` or `"test"`.
        num_examples: How many of the split's examples to make, from the
            first; `None` for the config's count.

    Yields:
        `(key, example)`: `key` is the example id, `example` a dict of
        numpy values (see `Polygons`' features).
    """
    if split not in _SPLIT_INDEX:
        _fail("split", f"one of {tuple(_SPLIT_INDEX)}", split)
    if num_examples is None:
        num_examples = getattr(config, f"{split}_examples")
    for index in range(num_examples):
        rng = np.random.default_rng([config.seed, _SPLIT_INDEX[split], index])
        image, vertices, mask = render_polygon_crop(rng, config)
        example_id = f"{split}_{index:06d}"
        yield (
            example_id,
            {
                "image": image,
                "vertices": vertices,
                "num_vertices": len(vertices),
                "mask": mask[..., None],
                "example_id": example_id,
            },
        )


def rasterize(vertices, image_size, grid_size):
    """The `(image_size, image_size)` uint8 mask of the polygon with grid
    vertices `(n, 2)` (see `keras_cbm.metrics.rasterize_polygons`)."""
    masks = rasterize_polygons(
        np.asarray(vertices)[None], image_size, grid_size
    )
    return np.asarray(masks)[0].astype(np.uint8)


def canonical_order(vertices):
    """`vertices` `(n, 2)` clockwise on the image (rows down), starting at
    the top vertex, leftmost among equals."""
    rows, cols = vertices[:, 0].astype(float), vertices[:, 1].astype(float)
    # Shoelace area in (x=col, y=row) axes: positive is clockwise on an
    # image whose rows go down.
    area = np.sum(cols * np.roll(rows, -1) - np.roll(cols, -1) * rows)
    if area < 0:
        vertices = vertices[::-1]
    start = np.lexsort((vertices[:, 1], vertices[:, 0]))[0]
    return np.roll(vertices, -start, axis=0)


def _draw_polygon_vertices(rng, config, count, radius, centre, convex):
    """Grid vertices of a simple polygon: `count` angles around `centre`,
    at distances up to `radius`, rounded to the grid, repeats dropped."""
    gaps = rng.uniform(0.5, 1.0, size=count)
    angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.cumsum(gaps) / np.sum(
        gaps
    )
    low = 0.85 if convex else 0.35
    radii = radius * rng.uniform(low, 1.0, size=count)
    points = centre + radii[:, None] * np.stack(
        [np.sin(angles), np.cos(angles)], axis=1
    )
    vertices = np.clip(np.round(points), 0, config.grid_size - 1)
    vertices = vertices.astype(np.int32)
    keep = np.any(vertices != np.roll(vertices, 1, axis=0), axis=1)
    return vertices[keep]


def _object_vertices(rng, config):
    grid = config.grid_size
    while True:
        count = int(rng.integers(config.min_vertices, config.max_vertices + 1))
        convex = bool(rng.random() < config.convex_fraction)
        centre = (grid - 1) / 2 + rng.uniform(-1, 1, 2) * _CENTRE_JITTER * grid
        radius = rng.uniform(0.3, 0.42) * grid
        vertices = _draw_polygon_vertices(
            rng, config, count, radius, centre, convex
        )
        if len(vertices) >= config.min_vertices:
            return canonical_order(vertices)


def _texture(rng, size):
    """A random colour with stripes of random direction and period,
    `(size, size, 3)` floats in [0, 1]."""
    colour = rng.uniform(0.1, 0.9, 3)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(3, 10)
    rows, cols = np.mgrid[:size, :size]
    phase = (rows * np.sin(angle) + cols * np.cos(angle)) * 2 * np.pi / period
    stripes = 0.12 * np.sin(phase)[..., None]
    return np.clip(colour + stripes, 0, 1)


def _paint_random_polygon(rng, config, image, radius_range, centre_range):
    size = config.image_size
    grid = config.grid_size
    centre = rng.uniform(*centre_range, size=2) * grid
    radius = rng.uniform(*radius_range) * grid
    count = int(rng.integers(3, 9))
    vertices = _draw_polygon_vertices(
        rng, config, count, radius, centre, bool(rng.random() < 0.5)
    )
    if len(vertices) < 3:
        return
    mask = rasterize(vertices, size, grid)
    image[mask == 1] = _texture(rng, size)[mask == 1]


def render_polygon_crop(rng, config):
    """Draws one crop, its object's grid vertices and its mask.

    Args:
        rng: A `numpy.random.Generator`.
        config: A `PolygonsConfig`.

    Returns:
        `(image, vertices, mask)`: uint8 `(size, size, 3)`, int32
        `(num_vertices, 2)` in canonical order, uint8 `(size, size)`.
    """
    size = config.image_size
    vertices = _object_vertices(rng, config)
    mask = rasterize(vertices, size, config.grid_size)
    image = _texture(rng, size) * 0.6 + rng.uniform(0, 0.4, (size, size, 1))
    for _ in range(config.num_distractors):
        # Behind the object, centred anywhere in the crop.
        _paint_random_polygon(rng, config, image, (0.15, 0.3), (0.0, 1.0))
    image[mask == 1] = _texture(rng, size)[mask == 1]
    for _ in range(config.num_occluders):
        # In front, small and near the crop's border, where the object's
        # outline runs.
        _paint_random_polygon(rng, config, image, (0.08, 0.15), (0.15, 0.85))
    image = image + rng.normal(0, config.noise, image.shape)
    if config.blur:
        kernel = np.array([0.25, 0.5, 0.25])
        for axis in (0, 1):
            padded = np.pad(
                image,
                [(1, 1) if a == axis else (0, 0) for a in range(3)],
                mode="edge",
            )
            image = sum(
                weight * np.take(padded, range(k, k + size), axis=axis)
                for k, weight in enumerate(kernel)
            )
    image = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return image, vertices, mask


def vertex_tokens(vertices, num_vertices, grid_size, steps):
    """Grid vertices `(..., n, 2)` as a token sequence `(..., steps)`: cell
    `row * grid_size + col` per vertex, then the end token `grid_size ** 2`
    up to `steps`."""
    vertices = tf.cast(vertices, tf.int32)
    tokens = vertices[..., 0] * grid_size + vertices[..., 1]
    end = grid_size**2
    padding = steps - tf.shape(tokens)[-1]
    tokens = tf.pad(
        tokens[..., :steps], [[0, tf.maximum(padding, 0)]], constant_values=end
    )
    real = tf.range(steps) < num_vertices
    return tf.where(real, tokens, end)


def polygon_sequences(dataset, max_vertices, grid_size=28):
    """Turns `Polygons` examples into `polygon_rnn`'s training elements.

    Args:
        dataset: A `tf.data.Dataset` of unbatched `Polygons` examples.
        max_vertices: The most vertices a polygon may have: sequences have
            `max_vertices + 1` steps (the vertices, then the end token).
        grid_size: The grid's rows and columns.

    Returns:
        A dataset of `(inputs, tokens, weights)`: `inputs` a dict with
        `"image"` (float32 in [0, 1]) and `"vertices"` (the token
        sequence, for teacher forcing); `tokens` `(max_vertices + 1,)`
        int32, the cell of each vertex then the end token `grid_size ** 2`
        (repeated to the end); `weights` 1 up to and including the first
        end token, 0 after it.
    """
    steps = max_vertices + 1

    def convert(example):
        tokens = vertex_tokens(
            example["vertices"], example["num_vertices"], grid_size, steps
        )
        weights = tf.cast(tf.range(steps) <= example["num_vertices"], "float32")
        inputs = {
            "image": tf.cast(example["image"], "float32") / 255.0,
            "vertices": tokens,
        }
        return inputs, tokens, weights

    return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
