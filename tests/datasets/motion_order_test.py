import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_cbm.datasets  # noqa: F401  (registers the builders)
from keras_cbm.data import overlapping_clips
from keras_cbm.datasets import motion_order
from keras_cbm.datasets.motion_order import MotionOrder
from keras_cbm.datasets.motion_order import motion_order_examples
from tests.datasets import single_frame


class MotionOrderBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """Builds, reloads and counts both small configs (nothing to mock:
    the builder downloads nothing, so the example dir is only a stand-in
    for the dummy data that TFDS' test case requires to exist)."""

    DATASET_CLASS = MotionOrder
    BUILDER_CONFIG_NAMES_TO_TEST = ["recognition_small", "anticipation_small"]
    SPLITS = {"train": 6, "test": 3}
    EXAMPLE_DIR = str(single_frame.THIS_DIR)


def config(name):
    return MotionOrder.builder_configs[name]


def test_tfds_load_builds_offline_and_feeds_overlapping_clips(
    tmp_path, offline
):
    videos, info = tfds.load(
        "motion_order/recognition_small",
        split="test",
        data_dir=tmp_path,
        with_info=True,
    )
    assert info.splits["train"].num_examples == 6
    assert info.features["label"].names == list(motion_order.CLASS_NAMES)
    elements = list(videos.as_numpy_iterator())
    assert len(elements) == 3
    for element in elements:
        assert element["video"].dtype == np.uint8
        assert element["video"].shape[1:] == (16, 16, 1)
        assert 24 <= len(element["video"]) == element["num_frames"] <= 32
    ids = sorted(element["video_id"] for element in elements)
    assert ids == [b"test_000000", b"test_000001", b"test_000002"]

    clips = overlapping_clips(videos, 2, 4, 8, seed=0).batch(3)
    inputs, labels = next(iter(clips))
    assert inputs["clips"].shape == (3, 2, 8, 16, 16, 1)
    assert inputs["video_id"].dtype == tf.string


def test_custom_config_through_tfds_load(tmp_path, offline):
    tiny = motion_order.MotionOrderConfig(
        name="tiny",
        frame_size=8,
        min_frames=5,
        max_frames=5,
        train_videos=2,
        test_videos=1,
    )
    videos = tfds.load(
        "motion_order",
        split="train",
        data_dir=tmp_path,
        builder_kwargs={"config": tiny},
    )
    shapes = [e["video"].shape for e in videos.as_numpy_iterator()]
    assert shapes == [(5, 8, 8, 1)] * 2


def test_default_configs_are_long_videos():
    for name in ("recognition", "anticipation"):
        examples = motion_order_examples(config(name), "train", num_videos=5)
        for _, example in examples:
            video = example["video"]
            assert video.shape[1:] == (32, 32, 1)
            assert 128 <= len(video) <= 160
    assert MotionOrder.default_builder_config.name == "recognition"


def test_generation_is_deterministic_and_splits_differ():
    first = [
        e for _, e in motion_order_examples(config("recognition"), "test", 3)
    ]
    again = [
        e for _, e in motion_order_examples(config("recognition"), "test", 3)
    ]
    train = [
        e for _, e in motion_order_examples(config("recognition"), "train", 3)
    ]
    for a, b, c in zip(first, again, train, strict=True):
        np.testing.assert_array_equal(a["video"], b["video"])
        assert a["label"] == b["label"]
        assert a["video"].shape != c["video"].shape or not np.array_equal(
            a["video"], c["video"]
        )


def test_agent_moves_in_the_label_order():
    """The brightest square moves one pixel per frame in the first
    direction, turns once in 30-70 % of the video, then moves in the
    second; in anticipation it never turns and the leader shows the
    second direction during the cue frames only."""
    for name in ("recognition", "anticipation"):
        cfg = config(name)
        for _, example in motion_order_examples(cfg, "train", 20):
            video = example["video"][..., 0]
            first, second = motion_order.CLASS_PAIRS[example["label"]]
            moves = single_frame.square_moves(video, motion_order.AGENT_VALUE)
            names = [motion_order.DIRECTION_NAMES[i] for i in (first, second)]
            if not cfg.anticipation:
                turn = moves.index(names[1])
                assert set(moves[:turn]) == {names[0]}
                assert set(moves[turn:]) == {names[1]}
                assert 0.3 * len(video) - 1 <= turn <= 0.7 * len(video) + 1
            else:
                assert set(moves) == {names[0]}
                leader = video == motion_order.LEADER_VALUE
                assert not leader[cfg.cue_frames :].any()
                leader_moves = single_frame.square_moves(
                    video[: cfg.cue_frames], motion_order.LEADER_VALUE
                )
                assert names[1] in leader_moves


@pytest.mark.slow
def test_recognition_labels_need_the_order_of_two_motions():
    """Acceptance 2: the same small CNN, trained on what it is shown from
    random positions of `recognition` videos, scores near chance (1/12)
    from a single frame, near 1/6 from one pair of consecutive frames (one
    motion: which leg it is stays unknown), and high from one pair early
    plus one pair late in the video (both motions, in order)."""
    scores = single_frame.accuracies(
        config("recognition"), ["frame", "pair", "early_and_late_pairs"]
    )
    chance = 1 / len(motion_order.CLASS_NAMES)
    print(f"recognition accuracies (chance {chance:.3f}): {scores}")
    assert scores["frame"] < chance + 0.07
    assert scores["pair"] < 1 / 6 + 0.1
    assert scores["early_and_late_pairs"] > 0.6


@pytest.mark.slow
def test_anticipation_labels_come_from_the_start():
    """In `anticipation` a single frame is again near chance, while one
    pair of frames from the cue (the agent's first motion and the leader's,
    which the agent will follow after the video) gives the label."""
    scores = single_frame.accuracies(
        config("anticipation"), ["frame", "cue_pair"]
    )
    chance = 1 / len(motion_order.CLASS_NAMES)
    print(f"anticipation accuracies (chance {chance:.3f}): {scores}")
    assert scores["frame"] < chance + 0.07
    assert scores["cue_pair"] > 0.6
