import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_cbm.datasets  # noqa: F401  (registers the builders)
from keras_cbm.datasets import future_frame_pairs
from keras_cbm.datasets import moving_digits
from keras_cbm.datasets.moving_digits import MovingDigits
from keras_cbm.datasets.moving_digits import moving_digits_examples
from tests.datasets import single_frame


class MovingDigitsBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """Builds, reloads and counts the small config (the example dir only
    stands in for dummy data: the builder downloads nothing)."""

    DATASET_CLASS = MovingDigits
    BUILDER_CONFIG_NAMES_TO_TEST = ["small"]
    SPLITS = {"train": 6, "test": 3}
    EXAMPLE_DIR = str(single_frame.THIS_DIR)


def config(name):
    return MovingDigits.builder_configs[name]


def test_tfds_load_builds_offline_into_prediction_pairs(tmp_path, offline):
    videos = tfds.load("moving_digits/small", split="train", data_dir=tmp_path)
    elements = list(videos.as_numpy_iterator())
    assert len(elements) == 6
    for element in elements:
        assert element["video"].shape == (5, 16, 16, 1)
        assert element["video"].dtype == np.uint8
        assert element["video"].max() > 0
        assert element["digits"].shape == (1,)

    frames, targets = next(iter(future_frame_pairs(videos, 2)))
    assert frames.dtype == tf.float32 and frames.shape == (5, 16, 16, 1)
    np.testing.assert_array_equal(targets, frames[3:])
    assert (
        0.0
        <= float(tf.reduce_min(frames))
        <= float(tf.reduce_max(frames))
        <= 1.0
    )


@pytest.mark.parametrize(
    "name, frames, size",
    [
        ("observe10_predict10", 20, 64),
        ("observe10_predict20", 30, 64),
        ("observe5_predict5_32px", 10, 32),
    ],
)
def test_configs_set_observed_and_predicted_frames(name, frames, size):
    cfg = config(name)
    assert cfg.observed_frames + cfg.predicted_frames == frames
    (_, example), *_ = moving_digits_examples(cfg, "test", num_videos=1)
    assert example["video"].shape == (frames, size, size, 1)
    features = MovingDigits(config=name, data_dir="unused").info.features
    assert features["video"].shape == (frames, size, size, 1)


def test_digits_move_and_stay_inside_the_frame():
    for _, example in moving_digits_examples(config("small"), "train", 10):
        video = example["video"][..., 0].astype(int)
        # One digit that bounces stays whole: the same ink in every frame.
        ink = video.sum(axis=(1, 2))
        assert ink.min() > 0 and (ink == ink[0]).all()
    cfg = config("observe10_predict10")
    for _, example in moving_digits_examples(cfg, "train", 10):
        video = example["video"][..., 0].astype(int)
        assert (video.sum(axis=(1, 2)) > 0).all()
        # Digits move at 2-4 pixels per frame: no two frames alike.
        assert (np.abs(np.diff(video, axis=0)).sum(axis=(1, 2)) > 0).all()


def test_generation_is_deterministic_and_test_digits_are_unseen():
    cfg = config("small")
    first = list(moving_digits_examples(cfg, "test", 3))
    again = list(moving_digits_examples(cfg, "test", 3))
    for (key_a, a), (key_b, b) in zip(first, again, strict=True):
        assert key_a == key_b
        np.testing.assert_array_equal(a["video"], b["video"])
    train_images, _ = moving_digits.split_digits("train")
    test_images, _ = moving_digits.split_digits("test")
    assert len(train_images) + len(test_images) == 1797
    train_set = {image.tobytes() for image in train_images}
    shared = sum(image.tobytes() in train_set for image in test_images)
    # load_digits holds a few exact duplicates; the splits share no
    # writer's sample by index, and almost no image by content.
    assert shared < 0.01 * len(test_images)


def test_future_frame_pairs_rejects_bad_counts():
    videos = tf.data.Dataset.from_tensors({"video": tf.zeros((4, 2, 2, 1))})
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="predicted_frames"):
            future_frame_pairs(videos, bad)
