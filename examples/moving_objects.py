"""Trains a small ConvCBM2D classifier on generated moving-object clips.

Each clip shows a square moving in one of four directions; the label is the
direction. No single frame tells it (the square starts anywhere), so the
model has to use time. The script trains with `model.fit`, prints the test
accuracy next to chance, and saves the model as a `.keras` file.

    python examples/moving_objects.py            # about a minute on 2 CPUs
    python examples/moving_objects.py --help
"""

import argparse
import os

import numpy as np

DIRECTIONS = np.array([(0, 1), (0, -1), (1, 0), (-1, 0)])  # right left down up


def moving_squares(count, frames=10, size=16, square=3, speed=1, seed=0):
    """Generates `count` clips of a square moving in a random direction.

    Returns:
        `(clips, labels)`: float32 `(count, frames, size, size, 1)` in
        [0, 1] with a little noise, and int32 direction labels in [0, 4).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(DIRECTIONS), count)
    travel = (frames - 1) * speed
    clips = rng.normal(0.0, 0.05, (count, frames, size, size, 1))
    for clip, label in zip(clips, labels, strict=True):
        step = DIRECTIONS[label] * speed
        # Start where the whole path stays inside the frame.
        low = np.where(step < 0, travel, 0)
        high = size - square - np.where(step > 0, travel, 0)
        row, col = rng.integers(low, high + 1)
        for t in range(frames):
            r, c = row + step[0] * t, col + step[1] * t
            clip[t, r : r + square, c : c + square] += 1.0
    return clips.astype("float32"), labels.astype("int32")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--train-clips", type=int, default=2000, help="Training clips.")
    add("--test-clips", type=int, default=500, help="Test clips.")
    add("--frames", type=int, default=8, help="Frames per clip.")
    add("--size", type=int, default=16, help="Frame rows and cols.")
    add("--filters", type=int, default=16, help="ConvCBM2D filters.")
    add("--epochs", type=int, default=5, help="Training epochs.")
    add("--batch-size", type=int, default=32, help="Clips per batch.")
    add("--output", default="outputs/moving_objects", help="Model folder.")
    return parser.parse_args(argv)


def build_model(frames, size, filters):
    import keras

    from keras_cbm.layers import ConvCBM2D

    return keras.Sequential(
        [
            keras.Input((frames, size, size, 1)),
            ConvCBM2D(filters, 3, padding="same", temporal_dropout=0.5),
            keras.layers.GlobalMaxPooling2D(),
            keras.layers.Dense(len(DIRECTIONS)),
        ],
        name="moving_objects_cbm",
    )


def main(argv=None):
    args = parse_args(argv)
    # Imported after parsing, so that `--help` answers at once.
    import keras

    keras.utils.set_random_seed(0)
    x_train, y_train = moving_squares(
        args.train_clips, args.frames, args.size, seed=1
    )
    x_test, y_test = moving_squares(
        args.test_clips, args.frames, args.size, seed=2
    )
    model = build_model(args.frames, args.size, args.filters)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_split=0.1,
    )
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "model.keras")
    model.save(path)
    print(f"model saved to {path}")
    print(
        f"test accuracy {accuracy:.3f} "
        f"(chance {1 / len(DIRECTIONS):.3f}, {len(y_test)} clips)"
    )


if __name__ == "__main__":
    main()
