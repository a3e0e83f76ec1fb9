import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from keras_cbm.datasets import temporal_tasks

# Half-way between the background (0) and a burst (+-1), 10 noise
# standard deviations from either.
THRESHOLD = 0.5


def burst_frames(video):
    """Per frame: whether a bright and whether a dark burst shows."""
    return (
        (video > THRESHOLD).any(axis=(1, 2, 3)),
        (video < -THRESHOLD).any(axis=(1, 2, 3)),
    )


def order_label(video):
    """0 if the first bright frame comes before the first dark one."""
    bright, dark = burst_frames(video)
    return int(np.argmax(dark) < np.argmax(bright))


def square_corners(video):
    """The top-left corner of the bright square in every frame."""
    corners = []
    for frame in video[..., 0] > THRESHOLD:
        rows, cols = np.nonzero(frame)
        corners.append((rows.min(), cols.min()))
    return np.array(corners)


def jump_count(video):
    corners = square_corners(video)
    return int(np.any(corners[1:] != corners[:-1], axis=1).sum())


def frame_features(frames):
    """What a single-frame probe sees: every pixel, every squared pixel
    (where anything shows, whatever its sign) and the frame's extremes and
    burst areas."""
    flat = frames.reshape(len(frames), -1)
    return np.concatenate(
        [
            flat,
            flat**2,
            flat.max(1, keepdims=True),
            flat.min(1, keepdims=True),
            (flat > THRESHOLD).sum(1, keepdims=True),
            (flat < -THRESHOLD).sum(1, keepdims=True),
        ],
        axis=1,
    )


def single_frames(videos, seed):
    """One frame per video at a random index (the index is not given)."""
    rng = np.random.default_rng(seed)
    return videos[
        np.arange(len(videos)), rng.integers(videos.shape[1], size=len(videos))
    ]


def probe_accuracy(train, test):
    (train_x, train_y), (test_x, test_y) = train, test
    # "sag" converges in a second where lbfgs takes ten on 516 features.
    probe = LogisticRegression(C=0.1, solver="sag", max_iter=200)
    probe.fit(train_x, train_y)
    return probe.score(test_x, test_y)


TASKS = {
    "order": lambda n, seed: temporal_tasks.order_of_events(n, seed=seed),
    "recall_5": lambda n, seed: temporal_tasks.delayed_recall(
        n, gap=5, seed=seed
    ),
    "recall_40": lambda n, seed: temporal_tasks.delayed_recall(
        n, gap=40, seed=seed
    ),
    "count": lambda n, seed: temporal_tasks.count_events(n, seed=seed),
}


def test_order_of_events_labels_from_the_frames():
    videos, labels = temporal_tasks.order_of_events(
        300, frames=20, quiet_frames=5, seed=3
    )
    assert videos.shape == (300, 20, 16, 16, 1)
    assert videos.dtype == np.float32
    assert [order_label(v) for v in videos] == labels.tolist()
    assert 0.4 < labels.mean() < 0.6
    for video in videos:
        bright, dark = burst_frames(video)
        # Two frames each, never together, none in the quiet end.
        assert bright.sum() == dark.sum() == 2
        assert not (bright & dark).any()
        assert not (bright | dark)[-5:].any()
        bright_area = video[bright] > THRESHOLD
        dark_area = video[dark] < -THRESHOLD
        # Each burst is one 3x3 square, in a place the other does not
        # cover.
        assert bright_area.sum() == dark_area.sum() == 2 * 9
        assert not (bright_area[0] & dark_area[0]).any()


@pytest.mark.parametrize("gap", [5, 10, 20, 40])
def test_delayed_recall_labels_from_the_frames(gap):
    videos, labels = temporal_tasks.delayed_recall(200, gap=gap, seed=gap)
    assert videos.shape == (200, 4 + gap, 16, 16, 1)
    assert [order_label(v) for v in videos] == labels.tolist()
    for video in videos:
        bright, dark = burst_frames(video)
        assert bright.sum() == dark.sum() == 1
        assert not (bright | dark)[4:].any()
    assert 0.4 < labels.mean() < 0.6


def test_count_events_labels_from_the_frames():
    videos, labels = temporal_tasks.count_events(
        300, frames=24, max_count=3, seed=4
    )
    assert videos.shape == (300, 24, 16, 16, 1)
    assert [jump_count(v) for v in videos] == labels.tolist()
    assert np.bincount(labels).tolist() == pytest.approx([75] * 4, abs=25)
    for video in videos:
        corners = square_corners(video)
        # Always exactly one square, still over the last 4 frames.
        assert ((video > THRESHOLD).sum(axis=(1, 2, 3)) == 9).all()
        assert (corners[-4:] == corners[-1]).all()
    assert (videos < -THRESHOLD).sum() == 0


def test_equal_seeds_give_equal_videos():
    first = temporal_tasks.count_events(5, seed=7)
    second = temporal_tasks.count_events(5, seed=7)
    other = temporal_tasks.count_events(5, seed=8)
    np.testing.assert_array_equal(first[0], second[0])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "task, chance", [("order", 0.5), ("recall_40", 0.5), ("count", 0.25)]
)
def test_single_frame_probe_at_chance(task, chance):
    train_videos, train_labels = TASKS[task](1500, seed=0)
    test_videos, test_labels = TASKS[task](1000, seed=1)
    for pick in (
        lambda videos, seed: single_frames(videos, seed),
        lambda videos, seed: videos[:, -1],
    ):
        accuracy = probe_accuracy(
            (frame_features(pick(train_videos, 0)), train_labels),
            (frame_features(pick(test_videos, 1)), test_labels),
        )
        # 1000 test videos: the standard error at chance is <= 0.016.
        assert abs(accuracy - chance) < 0.06, accuracy


@pytest.mark.parametrize("task", ["order", "recall_5", "count"])
def test_the_same_probe_solves_the_task_from_the_whole_video(task):
    """The frames' summaries over time hold the label, linearly: the probe
    is able, the single frame is not enough."""
    train_videos, train_labels = TASKS[task](600, seed=0)
    test_videos, test_labels = TASKS[task](400, seed=1)

    def summaries(videos):
        if task == "count":
            # Pixels that change between consecutive frames: 18 per jump.
            changes = np.abs(np.diff(videos, axis=1)) > THRESHOLD
            return changes.sum(axis=(1, 2, 3, 4))[:, None] / 18.0
        shows = [np.stack(burst_frames(video), -1) for video in videos]
        return np.stack(shows).reshape(len(videos), -1).astype("float32")

    accuracy = probe_accuracy(
        (summaries(train_videos), train_labels),
        (summaries(test_videos), test_labels),
    )
    assert accuracy > 0.95, accuracy
