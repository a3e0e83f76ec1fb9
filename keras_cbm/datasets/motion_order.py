"""Motion Order: action recognition that needs time, generated locally."""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from keras_cbm.datasets.local_builder import LocalBuilder

# (row step, column step) of one frame of motion at speed 1.
DIRECTIONS = {
    "right": (0, 1),
    "up": (-1, 0),
    "left": (0, -1),
    "down": (1, 0),
}
DIRECTION_NAMES = tuple(DIRECTIONS)
# Class k is the ordered pair CLASS_PAIRS[k] of direction indices.
CLASS_PAIRS = tuple(
    (first, second)
    for first in range(len(DIRECTIONS))
    for second in range(len(DIRECTIONS))
    if first != second
)
CLASS_NAMES = tuple(
    f"{DIRECTION_NAMES[first]}_then_{DIRECTION_NAMES[second]}"
    for first, second in CLASS_PAIRS
)
"""The 12 class names of `motion_order`, by label: which motion came first
(e.g. `"up_then_left"`)."""

AGENT_VALUE = 255
LEADER_VALUE = 160
DISTRACTOR_VALUE = 96
# The agent (and every distractor) turns once, at a frame drawn uniformly
# in this fraction of the video.
TURN_RANGE = (0.3, 0.7)
_SPLIT_INDEX = {"train": 0, "test": 1}


@dataclasses.dataclass
class MotionOrderConfig(tfds.core.BuilderConfig):
    """A configuration of `MotionOrder`.

    Attributes:
        anticipation: `False` for recognition (the agent turns inside the
            video), `True` for anticipation (the agent's turn lies after the
            video; a leader shows its direction at the start).
        frame_size: Rows and columns of a frame.
        min_frames: The shortest video, in frames.
        max_frames: The longest video, in frames.
        num_distractors: Distractor squares per video.
        cue_frames: Anticipation only: the frames during which the leader
            is visible, from the first frame.
        train_videos: Videos in the `train` split.
        test_videos: Videos in the `test` split.
        seed: Base seed; video `i` of a split is drawn from
            `numpy.random.default_rng([seed, split, i])`.
    """

    anticipation: bool = False
    frame_size: int = 32
    min_frames: int = 128
    max_frames: int = 160
    num_distractors: int = 3
    cue_frames: int = 32
    train_videos: int = 1600
    test_videos: int = 400
    seed: int = 0


class MotionOrder(LocalBuilder, tfds.core.GeneratorBasedBuilder):
    """Motion Order: which way a square moves first, and which way next.

    Every video shows, on a black `frame_size x frame_size` torus (objects
    leaving one edge come back at the opposite one), one bright *agent*
    square (value 255) and `num_distractors` dim distractor squares (value
    96), all of side `frame_size // 8`, all moving one pixel per frame
    right, up, left or down. Every square starts at a uniformly random
    position and turns once, to a different direction, at a frame drawn
    uniformly in 30-70 % of the video; a distractor's two directions are
    uniformly random. The label is the agent's ordered pair of directions,
    e.g. `"right_then_up"`: 12 classes, chance 1/12.

    Why a single frame cannot tell the class: on a torus a uniformly
    placed square moved by any displacement is still uniformly placed, so
    every frame (its positions and its values) has the same distribution
    for every class. Two consecutive frames give one direction of the
    agent, but not whether it is the first or the second leg: the class
    needs the order of two motions that are on average half a video apart.
    Motion-based per-clip guesses (`{A, B}` as a set) also tie between
    `A_then_B` and `B_then_A`: only a view across the turn, or a memory of
    what came before, separates them. `tests/datasets/` trains the same
    small CNN on single frames (near chance) and on two frame pairs
    (well above).

    Configs:

    * `recognition` (default): 32 x 32 x 1 frames, 128-160 frames per
      video, 1600 train / 400 test videos (36 MB, built in about 30 s on
      2 CPU cores); the agent turns inside the video.
    * `anticipation`: the same frames and lengths, but each video is the
      first part of a longer episode, cut before the agent turns. A third
      kind of square, the *leader* (value 160), is visible during the first
      `cue_frames` (32) frames only, moving in the direction in which the
      agent will turn after the video ends (the agent follows the leader);
      the agent moves along its first direction for the whole video. The
      label is the same ordered pair as in recognition, so its second half
      is a future event: it is predicted from the leader's motion seen
      early and remembered for the 96-128 frames that follow. Single
      frames are again uninformative (the leader's presence does not
      depend on the class).
    * `recognition_small`, `anticipation_small`: 16 x 16 frames, 24-32
      frames per video, 6 train / 3 test videos, for tests.

    Other sizes: `tfds.load("motion_order", builder_kwargs={"config":
    MotionOrderConfig(name="big", train_videos=8000)})`.

    Features: `video` (`tfds.features.Video`, `(None, frame_size,
    frame_size, 1)` uint8, PNG-encoded frames), `label` (`ClassLabel`, the
    names in `CLASS_NAMES`), `video_id` (`"train_000042"`), `num_frames`.
    Elements of `tfds.load(...)` can go straight into
    `keras_cbm.data.overlapping_clips`, which reads `video`, `label` and
    `video_id`.

    Generation is deterministic: video `i` of a split comes from
    `numpy.random.default_rng([seed, split, i])`; nothing is downloaded.

    Example:

    >>> import tempfile
    >>> import tensorflow_datasets as tfds
    >>> import keras_cbm.datasets
    >>> videos = tfds.load("motion_order/recognition_small", split="train",
    ...                    data_dir=tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Downloading and preparing dataset ...
    Dataset motion_order downloaded and prepared to ...
    >>> element = next(iter(videos))
    >>> element["video"].shape[1:], element["video"].dtype.name
    (TensorShape([16, 16, 1]), 'uint8')
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        MotionOrderConfig(
            name="recognition",
            description="The agent turns inside the video (recognition).",
        ),
        MotionOrderConfig(
            name="anticipation",
            description=(
                "Videos cut before the agent turns; a leader shows the "
                "turn's direction at the start (anticipation)."
            ),
            anticipation=True,
        ),
        MotionOrderConfig(
            name="recognition_small",
            description="Tiny recognition videos for tests.",
            frame_size=16,
            min_frames=24,
            max_frames=32,
            cue_frames=8,
            train_videos=6,
            test_videos=3,
        ),
        MotionOrderConfig(
            name="anticipation_small",
            description="Tiny anticipation videos for tests.",
            anticipation=True,
            frame_size=16,
            min_frames=24,
            max_frames=32,
            cue_frames=8,
            train_videos=6,
            test_videos=3,
        ),
    ]
    DEFAULT_CONFIG_NAME = "recognition"

    def _info(self):
        size = self.builder_config.frame_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "video": tfds.features.Video(
                        shape=(None, size, size, 1), encoding_format="png"
                    ),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                    "video_id": tfds.features.Text(),
                    "num_frames": tfds.features.Scalar(dtype=np.int32),
                }
            ),
            supervised_keys=("video", "label"),
        )

    def _generate_examples(self, split):
        yield from motion_order_examples(self.builder_config, split)


def motion_order_examples(config, split, num_videos=None):
    """Generates the examples of one split of a `MotionOrder` config.

    Args:
        config: A `MotionOrderConfig`.
        split: `"train"` or `"test"`.
        num_videos: How many of the split's videos to make, from the
            first; `None` for the config's count.

    Yields:
        `(key, example)`: `key` is the video id, `example` a dict of numpy
        values: `video` `(num_frames, size, size, 1)` uint8, `label` int,
        `video_id` str, `num_frames` int.
    """
    if num_videos is None:
        num_videos = getattr(config, f"{split}_videos")
    for index in range(num_videos):
        rng = np.random.default_rng([config.seed, _SPLIT_INDEX[split], index])
        video, label = render_motion_order(rng, config)
        video_id = f"{split}_{index:06d}"
        yield (
            video_id,
            {
                "video": video,
                "label": label,
                "video_id": video_id,
                "num_frames": len(video),
            },
        )


def render_motion_order(rng, config):
    """Draws one video and its label.

    Args:
        rng: A `numpy.random.Generator`.
        config: A `MotionOrderConfig`.

    Returns:
        `(video, label)`: uint8 `(num_frames, size, size, 1)` and an int in
        `[0, len(CLASS_NAMES))`.
    """
    size = config.frame_size
    side = max(size // 8, 1)
    num_frames = int(rng.integers(config.min_frames, config.max_frames + 1))
    label = int(rng.integers(len(CLASS_PAIRS)))
    first, second = CLASS_PAIRS[label]
    video = np.zeros((num_frames, size, size, 1), np.uint8)

    def draw(track, value, frames=None):
        rows = (track[:, :1] + np.arange(side)) % size
        cols = (track[:, 1:] + np.arange(side)) % size
        times = np.arange(num_frames)[:, None, None]
        if frames is not None:
            times, rows, cols = times[:frames], rows[:frames], cols[:frames]
        video[times, rows[:, :, None], cols[:, None, :], 0] = value

    for _ in range(config.num_distractors):
        pair = CLASS_PAIRS[rng.integers(len(CLASS_PAIRS))]
        draw(_track(rng, num_frames, size, *pair), DISTRACTOR_VALUE)
    if config.anticipation:
        leader = _track(rng, num_frames, size, second, second)
        draw(leader, LEADER_VALUE, frames=config.cue_frames)
        agent = _track(rng, num_frames, size, first, first)
    else:
        agent = _track(rng, num_frames, size, first, second)
    draw(agent, AGENT_VALUE)
    return video, label


def _track(rng, num_frames, size, first, second):
    """Positions `(num_frames, 2)` of a square that starts uniformly at
    random, moves in direction `first`, then turns to `second` at a frame
    drawn in `TURN_RANGE` of the video."""
    low, high = (round(fraction * num_frames) for fraction in TURN_RANGE)
    turn = int(rng.integers(low, high + 1))
    start = rng.integers(size, size=2)
    steps = np.zeros((num_frames, 2), np.int64)
    steps[1 : turn + 1] = DIRECTIONS[DIRECTION_NAMES[first]]
    steps[turn + 1 :] = DIRECTIONS[DIRECTION_NAMES[second]]
    return (start + np.cumsum(steps, axis=0)) % size
