"""Small generated video tasks that only a model with memory can solve.

Every task returns NumPy arrays: videos `(num_videos, frames, size, size, 1)`
float32 and integer labels `(num_videos,)`. A frame is faint Gaussian noise
around 0 (`noise`, 0.05 by default) on which *bursts* are drawn: squares of
`square` x `square` pixels, bright (+1) or dark (-1). The label is a fact
about time (the order of two bursts, or a number of events); the bursts are
drawn so that any one frame, taken without its index, has the same
distribution under every label, so a single-frame model stays at chance.
The last `quiet_frames` frames (or the gap of `delayed_recall`) hold no
evidence, so a model read out at the last frame must remember.

* `order_of_events`: one bright and one dark burst at random times and
  places; the label is which came first.
* `delayed_recall`: the same two bursts, both in the first `cue_frames`
  frames, then `gap` frames of noise; the label is which came first.
* `count_events`: a bright square that jumps to a new place 0 to
  `max_count` times; the label is the number of jumps.

Videos are drawn from `numpy.random.default_rng(seed)`: equal arguments
give equal arrays. The functions import no TensorFlow or Keras.
"""

import numpy as np

BRIGHT = 1.0
DARK = -1.0


def _noise(rng, num_videos, frames, size, noise):
    return (
        noise * rng.standard_normal((num_videos, frames, size, size, 1))
    ).astype("float32")


def _separate_places(rng, size, square):
    """Top-left corners of two squares that do not overlap."""
    while True:
        corners = rng.integers(0, size - square + 1, size=(2, 2))
        if np.any(np.abs(corners[0] - corners[1]) >= square):
            return corners


def _draw_square(frames, corner, value, square):
    row, col = corner
    frames[..., row : row + square, col : col + square, :] = value


def _order_videos(
    rng, num_videos, frames, window, burst_frames, size, square, noise
):
    """Videos with a bright and a dark burst that both start and end inside
    the first `window` frames, at distinct times; label 1 if dark came
    first."""
    videos = _noise(rng, num_videos, frames, size, noise)
    labels = rng.integers(0, 2, size=num_videos)
    # Start times of the earlier and the later burst: drawn as an ordered
    # pair of non-overlapping bursts, uniform over such pairs, so that the
    # bright burst's time has the same distribution under both labels.
    starts = np.arange(window - burst_frames + 1)
    pairs = [
        (first, second)
        for first in starts
        for second in starts
        if second >= first + burst_frames
    ]
    if not pairs:
        raise ValueError(
            "Two bursts of `burst_frames` frames must fit, one after the "
            f"other, in {window} frames. Received: burst_frames="
            f"{burst_frames}"
        )
    for video, label, pair in zip(
        videos,
        labels,
        rng.integers(0, len(pairs), size=num_videos),
        strict=True,
    ):
        first, second = pairs[pair]
        bright_place, dark_place = _separate_places(rng, size, square)
        bright_start, dark_start = (second, first) if label else (first, second)
        _draw_square(
            video[bright_start : bright_start + burst_frames],
            bright_place,
            BRIGHT,
            square,
        )
        _draw_square(
            video[dark_start : dark_start + burst_frames],
            dark_place,
            DARK,
            square,
        )
    return videos, labels.astype("int32")


def order_of_events(
    num_videos,
    frames=32,
    size=16,
    square=3,
    burst_frames=2,
    quiet_frames=4,
    noise=0.05,
    seed=0,
):
    """Which of two bursts came first: the bright or the dark one.

    Each video holds one bright and one dark burst (a square of value +1 or
    -1 for `burst_frames` frames) at different, non-overlapping places and
    times, both ending before the last `quiet_frames` frames. The pair of
    times is uniform over non-overlapping pairs and the label decides which
    burst takes the earlier time, so the frames in which either burst
    shows, taken without their index, are equally distributed under both
    labels.

    Args:
        num_videos: Number of videos.
        frames: Frames per video.
        size: Rows and columns of a frame.
        square: Side of a burst's square, in pixels.
        burst_frames: Frames a burst lasts.
        quiet_frames: Final frames without evidence.
        noise: Standard deviation of the Gaussian background.
        seed: Seed of the NumPy generator.

    Returns:
        `(videos, labels)`: float32 `(num_videos, frames, size, size, 1)`
        and int32 `(num_videos,)`, 0 if the bright burst came first, 1 if
        the dark one did.

    Example:

    >>> videos, labels = order_of_events(4, frames=12, size=8, seed=1)
    >>> videos.shape, labels.dtype.name, set(labels.tolist()) <= {0, 1}
    ((4, 12, 8, 8, 1), 'int32', True)
    """
    return _order_videos(
        np.random.default_rng(seed),
        num_videos,
        frames,
        frames - quiet_frames,
        burst_frames,
        size,
        square,
        noise,
    )


def delayed_recall(
    num_videos,
    gap,
    cue_frames=4,
    size=16,
    square=3,
    noise=0.05,
    seed=0,
):
    """Which of two early bursts came first, read `gap` frames later.

    The first `cue_frames` frames hold a bright and a dark burst of one
    frame each, at different places and distinct times (drawn as in
    `order_of_events`); `gap` frames of noise follow. The video has
    `cue_frames + gap` frames, and the later burst lies between `gap + 1`
    and `gap + cue_frames - 1` frames before the last one.

    Args:
        num_videos: Number of videos.
        gap: Frames of noise after the cue.
        cue_frames: Frames in which the two bursts lie (at least 2).
        size: Rows and columns of a frame.
        square: Side of a burst's square, in pixels.
        noise: Standard deviation of the Gaussian background.
        seed: Seed of the NumPy generator.

    Returns:
        `(videos, labels)`: float32 `(num_videos, cue_frames + gap, size,
        size, 1)` and int32 `(num_videos,)`, 0 if the bright burst came
        first, 1 if the dark one did.

    Example:

    >>> videos, labels = delayed_recall(3, gap=5, size=8)
    >>> videos.shape
    (3, 9, 8, 8, 1)
    """
    return _order_videos(
        np.random.default_rng(seed),
        num_videos,
        cue_frames + gap,
        cue_frames,
        1,
        size,
        square,
        noise,
    )


def count_events(
    num_videos,
    frames=32,
    max_count=3,
    size=16,
    square=3,
    quiet_frames=4,
    noise=0.05,
    seed=0,
):
    """How many times a bright square jumps to a new place.

    A bright square is visible in every frame. It jumps, between two
    frames, to a place that does not overlap its previous one, `label`
    times (uniform in `[0, max_count]`), at distinct frames at least two
    apart, none in the last `quiet_frames` frames. The first place is drawn
    so that every frame's place has one law whatever the label: one frame
    says nothing about the count.

    Args:
        num_videos: Number of videos.
        frames: Frames per video.
        max_count: The largest number of jumps; there are `max_count + 1`
            classes.
        size: Rows and columns of a frame.
        square: Side of the square, in pixels.
        quiet_frames: Final frames without a jump.
        noise: Standard deviation of the Gaussian background.
        seed: Seed of the NumPy generator.

    Returns:
        `(videos, labels)`: float32 `(num_videos, frames, size, size, 1)`
        and int32 `(num_videos,)`, the number of jumps.

    Example:

    >>> videos, labels = count_events(5, frames=16, max_count=2, size=8)
    >>> videos.shape, int(labels.max()) <= 2
    ((5, 16, 8, 8, 1), True)
    """
    # Jumps happen at the start of a frame in [2, frames - quiet_frames],
    # every other frame at the finest, so a jump is never hidden by the
    # next one.
    slots = np.arange(2, frames - quiet_frames + 1, 2)
    if len(slots) < max_count:
        raise ValueError(
            f"`max_count` jumps must fit, two frames apart, in "
            f"{frames - quiet_frames} frames. Received: max_count="
            f"{max_count}, frames={frames}, quiet_frames={quiet_frames}"
        )
    rng = np.random.default_rng(seed)
    videos = _noise(rng, num_videos, frames, size, noise)
    labels = rng.integers(0, max_count + 1, size=num_videos)
    places = size - square + 1
    corners = np.stack(
        np.meshgrid(np.arange(places), np.arange(places), indexing="ij"), -1
    ).reshape(-1, 2)
    apart = np.any(np.abs(corners[:, None] - corners[None]) >= square, axis=-1)
    # A jump is a step of a random walk on the graph of non-overlapping
    # places, whose stationary law is proportional to each place's number of
    # neighbours: starting from it, every frame's place has that law,
    # however many jumps came before.
    first_law = apart.sum(1) / apart.sum()
    for video, count in zip(videos, labels, strict=True):
        jumps = np.sort(rng.choice(slots, size=count, replace=False))
        place = rng.choice(len(corners), p=first_law)
        for start, stop in zip([0, *jumps], [*jumps, frames], strict=True):
            _draw_square(video[start:stop], corners[place], BRIGHT, square)
            place = rng.choice(np.flatnonzero(apart[place]))
    return videos, labels.astype("int32")
