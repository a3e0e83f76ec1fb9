"""Trains Polygon-RNN with a deep CBM decoder on generated object crops and
serves it for interactive annotation.

The model (`keras_cbm.models.polygon_rnn`: a convolutional encoder with
skip features at the 28 x 28 grid, a first-vertex head, a `DeepCBM`
decoder) learns with teacher forcing on whole vertex sequences of the
`polygons` dataset (built locally), then traces each test object's polygon
greedily (`keras_cbm.models.decode_polygons`). The script prints the test
mask IoU beside the bounding-box baseline (the IoU of each object's tight
box), and saves the model (`.keras`), the `annotate` SavedModel and a PNG
grid of test images with their true and predicted polygons.

    python examples/polygon_annotation.py      # 16.7 min on 2 shared cores
    python examples/polygon_annotation.py --config cluttered
"""

import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from action_recognition import add_cell_flags  # noqa: E402
from action_recognition import cell_arguments  # noqa: E402

# TensorFlow, Keras and keras_cbm are imported in the functions that use
# them, so that `--help` answers before they load.


def add_polygon_flags(parser):
    """The data and training flags, shared with
    `studies/polygon_depth.py`."""
    add = parser.add_argument
    add("--config", default="easy", help="polygons config.")
    add(
        "--train-examples",
        type=int,
        default=None,
        help="Train crops used; none: all of the split.",
    )
    add("--test-examples", type=int, default=None, help="As --train-examples.")
    add(
        "--data-dir",
        default="outputs/tensorflow_datasets",
        help="Where TFDS builds the dataset.",
    )
    add("--filters", type=int, default=16, help="Filters a decoder layer.")
    add(
        "--encoder-filters",
        type=int,
        nargs="+",
        default=[16, 32, 64],
        help="Filters of the encoder's stride-2 convolutions.",
    )
    add(
        "--feature-channels",
        type=int,
        default=16,
        help="Channels of the image features at the grid.",
    )
    add("--epochs", type=int, default=5, help="Training epochs.")
    add("--batch-size", type=int, default=16, help="Crops per batch.")
    add("--learning-rate", type=float, default=3e-3, help="Adam's.")
    add("--seed", type=int, default=0, help="Seed of the weights.")
    add("--verbose", type=int, default=1, help="model.fit verbosity.")
    add_cell_flags(parser)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_polygon_flags(parser)
    add = parser.add_argument
    add("--depth", type=int, default=3, help="Decoder layers.")
    add(
        "--layer-type",
        choices=["cbm", "convlstm"],
        default="cbm",
        help="The decoder's recurrent layers.",
    )
    add("--grid-examples", type=int, default=8, help="Test crops drawn.")
    add(
        "--output",
        default="outputs/polygon_annotation",
        help="Folder of the outputs.",
    )
    return parser.parse_args(argv)


def load(args):
    """`(train, test, config)`: training elements of `polygon_sequences`
    and the raw test examples."""
    import tensorflow_datasets as tfds

    import keras_cbm.datasets  # registers the builders

    builder = tfds.builder(f"polygons/{args.config}", data_dir=args.data_dir)
    builder.download_and_prepare()
    config = builder.builder_config
    train = builder.as_dataset(split="train")
    test = builder.as_dataset(split="test")
    if args.train_examples is not None:
        train = train.take(args.train_examples)
    if args.test_examples is not None:
        test = test.take(args.test_examples)
    train = keras_cbm.datasets.polygon_sequences(
        train, config.max_vertices, config.grid_size
    ).cache()
    return train, test.cache(), config


def train_model(args, train, config, depth, layer_type, seed):
    """A `polygon_rnn` trained with teacher forcing; returns `(model,
    history)`."""
    import keras
    import tensorflow as tf

    from keras_cbm import models

    keras.utils.set_random_seed(seed)
    model = models.polygon_rnn(
        image_size=config.image_size,
        grid_size=config.grid_size,
        encoder_filters=tuple(args.encoder_filters),
        feature_channels=args.feature_channels,
        depth=depth,
        filters=args.filters,
        layer_type=layer_type,
        seed=seed,
        **cell_arguments(args),
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipvalue=5.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=["accuracy"],
    )
    history = model.fit(
        train.shuffle(4096, seed=seed)
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE),
        epochs=args.epochs,
        shuffle=False,
        verbose=args.verbose,
    ).history
    return model, history


def evaluate(model, test, config, batch_size=100):
    """Mean mask IoU of the greedy polygons and of the bounding-box
    baseline on the test crops; and the first batch's images, true and
    predicted vertices."""
    import tensorflow as tf

    from keras_cbm import metrics
    from keras_cbm import models

    iou = metrics.PolygonMaskIoU(config.image_size, config.grid_size)
    box_iou = []
    decode = tf.function(
        lambda image: models.decode_polygons(
            model, image, max_vertices=config.max_vertices
        )
    )
    first = None
    crops = test.map(lambda e: (e["image"], e["mask"], e["vertices"]))
    zero = tf.constant(0, tf.uint8)
    for pixels, masks, true_vertices in crops.padded_batch(
        batch_size, padding_values=(zero, zero, -1)
    ):
        masks = masks[..., 0]
        predicted = decode(tf.cast(pixels, "float32") / 255.0)["vertices"]
        iou.update_state(masks, predicted)
        boxes = metrics.bounding_box_masks(masks)
        box_iou.append(metrics.mask_iou(masks, boxes))
        if first is None:
            first = (pixels.numpy(), true_vertices.numpy(), predicted.numpy())
    box = float(tf.reduce_mean(tf.concat(box_iou, 0)))
    return float(iou.result()), box, first


def plot_grid(images, true_vertices, predicted, config, path, title):
    """Test crops with the true (green) and predicted (red) polygons; the
    first vertex of each is a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(images)
    columns = min(count, 4)
    rows = -(-count // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.4 * columns, 2.5 * rows), squeeze=False
    )
    scale = config.image_size / config.grid_size
    for axis in axes.ravel():
        axis.axis("off")
    for index in range(count):
        axis = axes.ravel()[index]
        axis.imshow(images[index])
        for vertices, colour in (
            (true_vertices[index], "lime"),
            (predicted[index], "red"),
        ):
            vertices = vertices[np.all(vertices >= 0, axis=-1)]
            if not len(vertices):
                continue
            points = (vertices + 0.5) * scale - 0.5
            closed = np.concatenate([points, points[:1]])
            axis.plot(closed[:, 1], closed[:, 0], color=colour, lw=1.2)
            axis.plot(points[0, 1], points[0, 0], "o", color=colour, ms=3)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None):
    args = parse_args(argv)
    from keras_cbm import serving  # noqa: F401  (TensorFlow backend)
    from keras_cbm.serving.polygon_export import export_annotator

    start = time.perf_counter()
    os.makedirs(args.output, exist_ok=True)
    train, test, config = load(args)
    print(
        f"Dataset polygons/{config.name}: {config.image_size}x"
        f"{config.image_size} crops, {config.min_vertices}-"
        f"{config.max_vertices} vertices on a {config.grid_size}x"
        f"{config.grid_size} grid"
    )
    model, history = train_model(
        args, train, config, args.depth, args.layer_type, args.seed
    )
    iou, box, (images, true_vertices, predicted) = evaluate(model, test, config)
    model_path = os.path.join(args.output, "model.keras")
    saved_path = os.path.join(args.output, "annotator")
    grid_path = os.path.join(args.output, "polygons.png")
    model.save(model_path)
    export_annotator(model, saved_path, max_vertices=config.max_vertices)
    count = min(args.grid_examples, len(images))
    plot_grid(
        images[:count],
        true_vertices[:count],
        predicted[:count],
        config,
        grid_path,
        f"{args.depth}-layer {args.layer_type} decoder, polygons/"
        f"{config.name}: true (green) vs predicted (red)",
    )
    print(f"Model (.keras):   {model_path}")
    print(f"SavedModel:       {saved_path} (signature annotate)")
    print(f"Polygon grid:     {grid_path}")
    print(
        f"Test mask IoU: {iou:.3f}   bounding-box baseline: {box:.3f}   "
        f"(final training loss {history['loss'][-1]:.3f}; total time "
        f"{(time.perf_counter() - start) / 60:.1f} min)"
    )
    return {"iou": iou, "bounding_box_iou": box}


if __name__ == "__main__":
    main()
