"""Searches deep CBM classifiers with keras-tuner and `CBMHyperModel`.

A small per-frame CNN backbone, coherence training on overlapping clips of
generated videos (class 1 is brighter), per-video validation on uniform
clips; prints the search space, the best hyperparameters and the best
model's validation accuracy.

    python examples/tuning.py                          # ~1 minute, 2 CPUs
    python examples/tuning.py --tuner hyperband --max-epochs 3
    python examples/tuning.py --help
"""

import argparse
import tempfile

import numpy as np

FRAME_SHAPE = (16, 16, 3)
# `--tuner` names and their keras_tuner classes.
TUNERS = {
    "random": "RandomSearch",
    "bayesian": "BayesianOptimization",
    "hyperband": "Hyperband",
}


def generated_videos(count, frames, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    videos = rng.random((count, frames) + FRAME_SHAPE).astype("float32")
    videos = 0.5 * videos + 0.5 * labels[:, None, None, None, None]
    return tf.data.Dataset.from_tensor_slices(
        {"video": videos, "label": labels}
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--tuner", choices=sorted(TUNERS), default="random", help="Tuner.")
    add("--trials", type=int, default=3, help="Trials (not Hyperband).")
    add("--epochs", type=int, default=3, help="Epochs (not Hyperband).")
    add("--max-epochs", type=int, default=2, help="Hyperband's max_epochs.")
    add("--videos", type=int, default=8, help="Generated videos a split.")
    add("--max-depth", type=int, default=3, help="Narrows depth for speed.")
    add("--directory", default=None, help="Trials folder; none: a new temp.")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Imported after parsing, so that `--help` answers at once.
    import keras
    import keras_tuner

    from keras_cbm import data
    from keras_cbm.tuning import CBMHyperModel

    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [keras.Input(FRAME_SHAPE), keras.layers.Conv2D(4, 3, strides=2)]
    )
    # Batch normalisation's moving statistics need more steps than a
    # short search runs; serving and evaluation use them.
    hypermodel = CBMHyperModel(
        backbone, num_classes=2, head_units=8, batch_norm=False
    )
    space = keras_tuner.HyperParameters()
    space.Int("depth", 2, args.max_depth)
    space.Choice("filters", [4, 8])
    options = dict(
        objective="val_loss",
        hyperparameters=space,
        seed=0,
        directory=args.directory or tempfile.mkdtemp(),
        project_name=args.tuner,
    )
    if args.tuner == "hyperband":
        options["max_epochs"] = args.max_epochs
    else:
        options["max_trials"] = args.trials
    tuner = getattr(keras_tuner, TUNERS[args.tuner])(hypermodel, **options)
    tuner.search_space_summary()

    train = data.overlapping_clips(
        generated_videos(args.videos, 16, seed=0), 2, 4, 8, seed=0
    ).batch(4)
    validation = data.uniform_clips(
        generated_videos(args.videos, 16, seed=1), 8, 8
    ).batch(4)
    search = dict(validation_data=validation, verbose=0)
    if args.tuner != "hyperband":
        search["epochs"] = args.epochs
    tuner.search(train, **search)

    best = tuner.get_best_hyperparameters(1)[0]
    print("best hyperparameters:", best.values)
    model = tuner.get_best_models(1)[0]
    scores = model.evaluate(validation, verbose=0, return_dict=True)
    print(
        f"best model: validation loss {scores['loss']:.3f}, accuracy "
        f"{scores['accuracy']:.2f} (chance 0.50)"
    )


if __name__ == "__main__":
    main()
