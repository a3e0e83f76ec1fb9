"""Probes of what the frames of `motion_order` tell about its labels."""

import pathlib

import keras
import numpy as np

from keras_cbm.datasets import motion_order
from keras_cbm.datasets.motion_order import motion_order_examples

THIS_DIR = pathlib.Path(__file__).parent
_MOVES = {step: name for name, step in motion_order.DIRECTIONS.items()}


def square_moves(video, value):
    """The direction name of every move of the square drawn with `value`
    (top-left corner on the torus), between consecutive frames in which it
    is visible."""
    size = video.shape[1]
    corners = []
    for frame in video:
        covered = frame == value
        if not covered.any():
            break
        # The corner is the covered pixel whose left and upper neighbours
        # (on the torus) are not covered.
        corner = covered & ~np.roll(covered, 1, 0) & ~np.roll(covered, 1, 1)
        found = np.argwhere(corner)
        corners.append(found[0] if len(found) else None)
    moves = []
    for before, after in zip(corners, corners[1:], strict=False):
        if before is None or after is None:
            continue
        step = (after - before + size // 2) % size - size // 2
        moves.append(_MOVES.get(tuple(int(s) for s in step)))
    return [move for move in moves if move is not None]


def views(config, split, num_videos, draws, seed):
    """Inputs drawn at random positions of the split's first videos.

    Returns:
        `(inputs, labels)`: `inputs` maps a view to float32 images
        `(num_videos * draws, size, size, channels)`: `"frame"` one frame;
        `"pair"` the difference of two consecutive frames; `"cue_pair"` the
        same inside the first `cue_frames`; `"early_and_late_pairs"` two
        such differences, one in the first and one in the last quarter of
        the video, stacked as channels.
    """
    rng = np.random.default_rng(seed)
    inputs = {
        "frame": [],
        "pair": [],
        "cue_pair": [],
        "early_and_late_pairs": [],
    }
    labels = []
    for _, example in motion_order_examples(config, split, num_videos):
        video = example["video"].astype("float32") / 255
        length = len(video)

        def difference(t):
            return video[t + 1] - video[t]  # noqa: B023

        for _ in range(draws):
            inputs["frame"].append(video[rng.integers(length)])
            inputs["pair"].append(difference(rng.integers(length - 1)))
            cue = rng.integers(min(config.cue_frames, length) - 1)
            inputs["cue_pair"].append(difference(cue))
            early = rng.integers(length // 4)
            late = rng.integers(3 * length // 4, length - 1)
            inputs["early_and_late_pairs"].append(
                np.concatenate([difference(early), difference(late)], -1)
            )
            labels.append(example["label"])
    return {k: np.stack(v) for k, v in inputs.items()}, np.array(labels)


def small_cnn(input_shape, num_classes):
    """Three convolutions and a global max pool: no recurrence, no view
    of any other frame than those given."""
    model = keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, 2, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.GlobalMaxPooling2D(),
            keras.layers.Dense(num_classes),
        ]
    )
    model.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def accuracies(config, view_names, train_videos=600, test_videos=200):
    """Test accuracy of `small_cnn` trained on each view, 3 draws per
    video, 6 epochs, seeded."""
    train, labels = views(config, "train", train_videos, 3, seed=0)
    test, test_labels = views(config, "test", test_videos, 3, seed=1)
    scores = {}
    for name in view_names:
        keras.utils.set_random_seed(0)
        model = small_cnn(train[name].shape[1:], len(motion_order.CLASS_NAMES))
        model.fit(train[name], labels, batch_size=64, epochs=6, verbose=0)
        _, accuracy = model.evaluate(test[name], test_labels, verbose=0)
        scores[name] = round(float(accuracy), 3)
    return scores
