"""Moving Digits: future-frame prediction in the spirit of Moving MNIST,
generated locally from scikit-learn's bundled handwritten digits."""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from keras_cbm.datasets.local_builder import LocalBuilder
from keras_cbm.extras import require

# The first 80 % of scikit-learn's 1797 digit images feed the train split,
# the rest the test split: test videos show digits never seen in training.
TRAIN_DIGIT_FRACTION = 0.8
_SPLIT_INDEX = {"train": 0, "test": 1}
# The source of scikit-learn's `load_digits`.
DIGITS_CITATION = """
@misc{alpaydin1998optical,
  author = {Alpaydin, E. and Kaynak, C.},
  title = {Optical Recognition of Handwritten Digits},
  year = {1998},
  howpublished = {UCI Machine Learning Repository},
  doi = {10.24432/C50P49}
}
"""


@dataclasses.dataclass
class MovingDigitsConfig(tfds.core.BuilderConfig):
    """A configuration of `MovingDigits`.

    Attributes:
        observed_frames: Context frames, first in every video.
        predicted_frames: Frames to predict, after the observed ones.
        frame_size: Rows and columns of a frame.
        digit_size: Side of a digit after upscaling the 8 x 8 original.
        num_digits: Digits per video.
        min_speed: Slowest digit, in pixels per frame.
        max_speed: Fastest digit, in pixels per frame.
        train_videos: Videos in the `train` split.
        test_videos: Videos in the `test` split.
        seed: Base seed; video `i` of a split is drawn from
            `numpy.random.default_rng([seed, split, i])`.
    """

    observed_frames: int = 10
    predicted_frames: int = 10
    frame_size: int = 64
    digit_size: int = 24
    num_digits: int = 2
    min_speed: float = 2.0
    max_speed: float = 4.0
    train_videos: int = 10000
    test_videos: int = 2000
    seed: int = 0


class MovingDigits(LocalBuilder, tfds.core.GeneratorBasedBuilder):
    """Moving Digits: handwritten digits that move and bounce, to predict.

    Like Moving MNIST: `num_digits` handwritten digits move on a black
    `frame_size x frame_size` frame, each in a uniformly random direction at
    a uniformly random speed in `[min_speed, max_speed]` pixels per frame,
    bouncing off the edges; overlapping digits combine by maximum. The
    digits are the 8 x 8 images of scikit-learn's `load_digits` (real
    handwriting, bundled with scikit-learn, so nothing is downloaded),
    upscaled bilinearly to `digit_size`. Train videos draw from the first
    80 % of those images, test videos from the other 20 %.

    Each video has `observed_frames + predicted_frames` frames: a model sees
    the first `observed_frames` and predicts the last `predicted_frames`
    (`future_frame_pairs` makes those pairs).

    Configs (observed -> predicted frames, frame size, videos):

    * `observe10_predict10` (default): 10 -> 10, 64 x 64, two 24 x 24
      digits, 10000 train / 2000 test (the Moving MNIST protocol; 173 MB,
      built in about 70 s on 2 CPU cores).
    * `observe10_predict20`: 10 -> 20, 64 x 64, two digits, 5000 / 1000
      (the KTH protocol's 20 predicted frames).
    * `observe5_predict5_32px`: 5 -> 5, 32 x 32, two 12 x 12 digits,
      2000 / 400, for quick experiments.
    * `small`: 3 -> 2, 16 x 16, one 8 x 8 digit, 6 / 3, for tests.

    Features: `video` (`tfds.features.Video`, `(observed + predicted,
    frame_size, frame_size, 1)` uint8, PNG-encoded frames), `digits` (the
    class of each digit shown, `ClassLabel` 0-9), `video_id`
    (`"train_000042"`).

    Generation is deterministic: video `i` of a split comes from
    `numpy.random.default_rng([seed, split, i])`.

    Example:

    >>> import tempfile
    >>> import tensorflow_datasets as tfds
    >>> import keras_cbm.datasets
    >>> videos = tfds.load("moving_digits/small", split="train",
    ...                    data_dir=tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Downloading and preparing dataset ...
    Dataset moving_digits downloaded and prepared to ...
    >>> element = next(iter(videos))
    >>> element["video"].shape, element["digits"].shape
    (TensorShape([5, 16, 16, 1]), TensorShape([1]))
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        MovingDigitsConfig(
            name="observe10_predict10",
            description="10 observed, 10 predicted 64 x 64 frames.",
        ),
        MovingDigitsConfig(
            name="observe10_predict20",
            description="10 observed, 20 predicted 64 x 64 frames.",
            predicted_frames=20,
            train_videos=5000,
            test_videos=1000,
        ),
        MovingDigitsConfig(
            name="observe5_predict5_32px",
            description="5 observed, 5 predicted 32 x 32 frames.",
            observed_frames=5,
            predicted_frames=5,
            frame_size=32,
            digit_size=12,
            min_speed=1.0,
            max_speed=2.0,
            train_videos=2000,
            test_videos=400,
        ),
        MovingDigitsConfig(
            name="small",
            description="Tiny videos for tests.",
            observed_frames=3,
            predicted_frames=2,
            frame_size=16,
            digit_size=8,
            num_digits=1,
            min_speed=1.0,
            max_speed=2.0,
            train_videos=6,
            test_videos=3,
        ),
    ]
    DEFAULT_CONFIG_NAME = "observe10_predict10"

    def _info(self):
        config = self.builder_config
        frames = config.observed_frames + config.predicted_frames
        size = config.frame_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "video": tfds.features.Video(
                        shape=(frames, size, size, 1), encoding_format="png"
                    ),
                    "digits": tfds.features.Sequence(
                        tfds.features.ClassLabel(num_classes=10),
                        length=config.num_digits,
                    ),
                    "video_id": tfds.features.Text(),
                }
            ),
            homepage=(
                "https://archive.ics.uci.edu/dataset/80/"
                "optical+recognition+of+handwritten+digits"
            ),
            citation=DIGITS_CITATION,
        )

    def _generate_examples(self, split):
        yield from moving_digits_examples(self.builder_config, split)


def moving_digits_examples(config, split, num_videos=None):
    """Generates the examples of one split of a `MovingDigits` config.

    Args:
        config: A `MovingDigitsConfig`.
        split: `"train"` or `"test"`.
        num_videos: How many of the split's videos to make, from the
            first; `None` for the config's count.

    Yields:
        `(key, example)`: `key` is the video id, `example` a dict of numpy
        values: `video` `(frames, size, size, 1)` uint8, `digits`
        `(num_digits,)` int64, `video_id` str.
    """
    images, classes = split_digits(split)
    images = _resize(images, config.digit_size)
    if num_videos is None:
        num_videos = getattr(config, f"{split}_videos")
    for index in range(num_videos):
        rng = np.random.default_rng([config.seed, _SPLIT_INDEX[split], index])
        chosen = rng.integers(len(images), size=config.num_digits)
        video = render_moving_digits(rng, images[chosen], config)
        video_id = f"{split}_{index:06d}"
        yield (
            video_id,
            {"video": video, "digits": classes[chosen], "video_id": video_id},
        )


def split_digits(split):
    """The digit images of a split: uint8 `(n, 8, 8)` and int64 `(n,)`."""
    load_digits = require(
        "sklearn.datasets", "moving_digits' handwritten digits"
    ).load_digits
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    classes = digits.target.astype(np.int64)
    cut = int(TRAIN_DIGIT_FRACTION * len(images))
    part = slice(None, cut) if split == "train" else slice(cut, None)
    return images[part], classes[part]


def render_moving_digits(rng, digits, config):
    """Draws the frames of one video.

    Args:
        rng: A `numpy.random.Generator`.
        digits: uint8 `(num_digits, digit_size, digit_size)`.
        config: A `MovingDigitsConfig`.

    Returns:
        uint8 `(observed_frames + predicted_frames, size, size, 1)`.
    """
    frames = config.observed_frames + config.predicted_frames
    size, side = config.frame_size, config.digit_size
    limit = size - side
    video = np.zeros((frames, size, size), np.uint8)
    for digit in digits:
        position = rng.uniform(0, limit, size=2)
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(config.min_speed, config.max_speed)
        velocity = speed * np.array([np.sin(angle), np.cos(angle)])
        for t in range(frames):
            row, col = np.round(position).astype(int)
            window = video[t, row : row + side, col : col + side]
            np.maximum(window, digit, out=window)
            position = position + velocity
            # Bounce: reflect the position and the velocity at an edge.
            low, high = position < 0, position > limit
            position = np.where(low, -position, position)
            position = np.where(high, 2 * limit - position, position)
            velocity = np.where(low | high, -velocity, velocity)
    return video[..., None]


def _resize(images, side):
    """Bilinear resize of `(n, rows, cols)` uint8 images to `side x side`
    (pixel centres aligned, as `tf.image.resize` does)."""
    matrices = [_interpolation_matrix(n, side) for n in images.shape[1:]]
    resized = np.einsum(
        "ri,nij,cj->nrc", matrices[0], images.astype(np.float64), matrices[1]
    )
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def _interpolation_matrix(size_in, size_out):
    source = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    source = np.clip(source, 0, size_in - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    weight = source - low
    matrix = np.zeros((size_out, size_in))
    matrix[np.arange(size_out), low] += 1 - weight
    matrix[np.arange(size_out), high] += weight
    return matrix
