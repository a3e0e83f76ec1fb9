"""Trains a deep CBM future-frame predictor on Moving Digits and scores
every predicted frame with PSNR and SSIM.

The model (`keras_cbm.models.future_frame_predictor`: a convolutional
encoder, a `DeepCBM` stack, a transposed-convolution decoder) sees the
observed frames and rolls forward one frame at a time, fed the true frame
in training (teacher forcing) and its own prediction at test time. The
script prints PSNR and SSIM per predicted frame next to the "repeat the
last observed frame" baseline, and saves the model (`.keras`), the scores
(markdown) and a PNG strip of true vs predicted frames.

    python examples/future_frame_prediction.py       # ~5 min on 2 CPU cores
    python examples/future_frame_prediction.py --config observe10_predict10
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--config", default="observe5_predict5_32px", help="moving_digits.")
    add(
        "--train-videos",
        type=int,
        default=None,
        help="Train videos used; none: all of the split.",
    )
    add("--test-videos", type=int, default=None, help="As --train-videos.")
    add(
        "--data-dir",
        default="outputs/tensorflow_datasets",
        help="Where TFDS builds the dataset.",
    )
    add("--depth", type=int, default=5, help="CBM layers.")
    add("--filters", type=int, default=16, help="Filters a CBM layer.")
    add(
        "--encoder-filters",
        type=int,
        nargs="+",
        default=[16, 32],
        help="Filters of the encoder's strided convolutions.",
    )
    add("--epochs", type=int, default=10, help="Training epochs.")
    add("--batch-size", type=int, default=16, help="Videos per batch.")
    add("--learning-rate", type=float, default=2e-3, help="Adam's.")
    add("--strip-videos", type=int, default=4, help="Test videos drawn.")
    add("--seed", type=int, default=0, help="Seed of the weights.")
    add(
        "--output",
        default="outputs/future_frame_prediction",
        help="Folder of the outputs.",
    )
    add("--verbose", type=int, default=1, help="model.fit verbosity.")
    add_cell_flags(parser)
    return parser.parse_args(argv)


def load(args):
    import tensorflow_datasets as tfds

    import keras_cbm.datasets  # registers the builders

    builder = tfds.builder(
        f"moving_digits/{args.config}", data_dir=args.data_dir
    )
    builder.download_and_prepare()
    config = builder.builder_config
    splits = []
    for split, count in (
        ("train", args.train_videos),
        ("test", args.test_videos),
    ):
        videos = builder.as_dataset(split=split)
        if count is not None:
            videos = videos.take(count)
        splits.append(
            keras_cbm.datasets.future_frame_pairs(
                videos, config.predicted_frames
            ).cache()
        )
    return splits[0], splits[1], config


def per_frame_scores(model, test, config, batch_size):
    """PSNR and SSIM of every predicted frame (mean over the test videos)
    for the model and for repeating the last observed frame; and the
    first test batch's frames and predictions."""
    import tensorflow as tf

    from keras_cbm.metrics.frame_metrics import frame_psnr
    from keras_cbm.metrics.frame_metrics import frame_ssim

    observed = config.observed_frames
    scores = {"psnr": [], "ssim": [], "copy_psnr": [], "copy_ssim": []}
    first = None
    for frames, targets in test.batch(batch_size):
        predicted = model.predict(frames[:, :observed], verbose=0)
        predicted = tf.convert_to_tensor(predicted)
        copied = tf.repeat(
            frames[:, observed - 1 : observed], config.predicted_frames, 1
        )
        scores["psnr"].append(frame_psnr(targets, predicted))
        scores["ssim"].append(frame_ssim(targets, predicted))
        scores["copy_psnr"].append(frame_psnr(targets, copied))
        scores["copy_ssim"].append(frame_ssim(targets, copied))
        if first is None:
            first = (frames.numpy(), predicted.numpy())
    means = {
        key: tf.reduce_mean(tf.concat(value, 0), axis=0).numpy()
        for key, value in scores.items()
    }
    return means, first


def plot_strip(frames, predicted, observed, path, title):
    """True frames (observed, then future) over the predicted frames, one
    pair of rows per video."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    videos = len(frames)
    steps = frames.shape[1]
    figure, axes = plt.subplots(
        2 * videos, steps, figsize=(steps * 0.9, 2 * videos * 0.95)
    )
    axes = np.asarray(axes).reshape(2 * videos, steps)
    for v in range(videos):
        for t in range(steps):
            top, bottom = axes[2 * v, t], axes[2 * v + 1, t]
            top.imshow(frames[v, t, ..., 0], cmap="gray", vmin=0, vmax=1)
            if t >= observed:
                bottom.imshow(
                    predicted[v, t - observed, ..., 0],
                    cmap="gray",
                    vmin=0,
                    vmax=1,
                )
            for axis in (top, bottom):
                axis.set_xticks([])
                axis.set_yticks([])
                if t < observed and axis is bottom:
                    axis.axis("off")
            if v == 0:
                label = f"t{t + 1}" if t < observed else f"+{t - observed + 1}"
                top.set_title(label, fontsize=8)
        axes[2 * v, 0].set_ylabel("true", fontsize=8)
        axes[2 * v + 1, observed].set_ylabel("predicted", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def scores_table(means):
    rows = [
        "| predicted frame | PSNR | SSIM | copy-last PSNR | copy-last SSIM |",
        "|---|---|---|---|---|",
    ]
    for t in range(len(means["psnr"])):
        rows.append(
            f"| +{t + 1} | {means['psnr'][t]:.2f} | {means['ssim'][t]:.3f} "
            f"| {means['copy_psnr'][t]:.2f} | {means['copy_ssim'][t]:.3f} |"
        )
    rows.append(
        f"| mean | {means['psnr'].mean():.2f} | {means['ssim'].mean():.3f} "
        f"| {means['copy_psnr'].mean():.2f} "
        f"| {means['copy_ssim'].mean():.3f} |"
    )
    return "\n".join(rows)


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from keras_cbm import models

    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.output, exist_ok=True)
    train, test, config = load(args)
    frame_shape = (config.frame_size, config.frame_size, 1)
    print(
        f"Dataset moving_digits/{config.name}: {config.observed_frames} "
        f"observed -> {config.predicted_frames} predicted frames "
        f"{frame_shape}"
    )
    model = models.future_frame_predictor(
        frame_shape=frame_shape,
        input_frames=config.observed_frames,
        output_frames=config.predicted_frames,
        encoder_filters=tuple(args.encoder_filters),
        depth=args.depth,
        filters=args.filters,
        jump_stride=min(5, args.depth),
        **cell_arguments(args),
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipvalue=5.0),
        loss="binary_crossentropy",
        metrics=["mse"],
    )
    history = model.fit(
        train.shuffle(2048, seed=args.seed)
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE),
        epochs=args.epochs,
        # The pipeline shuffles; Keras' default `shuffle=True` only warns
        # that a dataset ignores it.
        shuffle=False,
        verbose=args.verbose,
    ).history
    means, (frames, predicted) = per_frame_scores(
        model, test, config, args.batch_size
    )
    table = scores_table(means)

    model_path = os.path.join(args.output, "model.keras")
    strip_path = os.path.join(args.output, "predictions.png")
    table_path = os.path.join(args.output, "scores.md")
    model.save(model_path)
    count = min(args.strip_videos, len(frames))
    plot_strip(
        frames[:count],
        predicted[:count],
        config.observed_frames,
        strip_path,
        f"{args.depth}-layer CBM on moving_digits/{config.name}: true (top) "
        "vs predicted (bottom)",
    )
    with open(table_path, "w") as file:
        file.write(table + "\n")
    print(table)
    print(f"Model (.keras):   {model_path}")
    print(f"Frame strip:      {strip_path}")
    print(f"Scores:           {table_path}")
    print(
        f"Final training loss {history['loss'][-1]:.4f}; mean PSNR "
        f"{means['psnr'].mean():.2f} dB (copy-last "
        f"{means['copy_psnr'].mean():.2f}), mean SSIM "
        f"{means['ssim'].mean():.3f} (copy-last "
        f"{means['copy_ssim'].mean():.3f}); total time "
        f"{(time.perf_counter() - start) / 60:.1f} min"
    )
    return {name: values.tolist() for name, values in means.items()}


if __name__ == "__main__":
    main()
