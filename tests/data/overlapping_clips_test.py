import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_cbm.data import overlapping_clips
from tests.data.videos import FRAME_SHAPE
from tests.data.videos import assert_frames_match_alignment
from tests.data.videos import clip_frames
from tests.data.videos import collect
from tests.data.videos import counting_videos


@pytest.mark.parametrize(
    "frame_stride, dtype", [(1, "uint8"), (3, "uint8"), (1, "float32")]
)
def test_frames_equal_alignment_and_padding_is_masked(frame_stride, dtype):
    lengths = [12, 30, 47, 100, 200]
    clips = overlapping_clips(
        counting_videos(lengths, dtype=dtype),
        clips_per_video=5,
        min_length=4,
        max_length=16,
        frame_stride=frame_stride,
        seed=1,
    )
    elements = collect(clips)
    assert len(elements) == len(lengths)
    for (inputs, label), length in zip(elements, lengths, strict=True):
        assert inputs["clips"].shape == (5, 16) + FRAME_SHAPE
        assert inputs["clips"].dtype == np.dtype(dtype)
        assert label == length
        assert_frames_match_alignment(inputs)
        assert inputs["alignment"].max() < length
        steps = np.diff(inputs["alignment"], axis=1)
        np.testing.assert_array_equal(
            steps[inputs["mask"][:, 1:]], frame_stride
        )


def test_lengths_and_starts_are_in_range_and_vary():
    num_frames, min_length, max_length = 60, 5, 20
    clips = overlapping_clips(
        counting_videos([num_frames] * 250),
        clips_per_video=4,
        min_length=min_length,
        max_length=max_length,
        seed=2,
    )
    alignments = np.concatenate([i["alignment"] for i, _ in collect(clips)])
    assert len(alignments) == 1000
    lengths = (alignments >= 0).sum(axis=1)
    starts = alignments[:, 0]
    assert lengths.min() >= min_length and lengths.max() <= max_length
    assert starts.min() >= 0
    assert np.all(starts <= num_frames - lengths)
    possible_lengths = max_length - min_length + 1
    assert len(np.unique(lengths)) >= 0.8 * possible_lengths
    possible_starts = num_frames - min_length + 1
    assert len(np.unique(starts)) >= 0.8 * possible_starts


@pytest.mark.parametrize("frame_stride", [1, 2])
def test_every_clip_overlaps_another_clip_of_its_video(frame_stride):
    min_length, min_overlap = 6, 4
    # From videos just long enough for one clip to much longer ones.
    lengths = [min_length * frame_stride + extra for extra in range(0, 120, 3)]
    clips = overlapping_clips(
        counting_videos(lengths * 5),
        clips_per_video=6,
        min_length=min_length,
        max_length=10,
        min_overlap=min_overlap,
        frame_stride=frame_stride,
        seed=3,
    )
    for inputs, _ in collect(clips):
        frames = [clip_frames(row) for row in inputs["alignment"]]
        for k, own in enumerate(frames):
            shared = max(
                len(own & other) for j, other in enumerate(frames) if j != k
            )
            assert shared >= min_overlap


def test_clips_of_a_video_are_not_all_alike():
    clips = overlapping_clips(
        counting_videos([200] * 20),
        clips_per_video=4,
        min_length=4,
        max_length=12,
        seed=4,
    )
    for inputs, _ in collect(clips):
        assert len({tuple(row) for row in inputs["alignment"]}) > 1


def alignments(dataset):
    return np.stack([inputs["alignment"] for inputs, _ in collect(dataset)])


def clip_pipeline(seed, num_parallel_calls=tf.data.AUTOTUNE):
    return overlapping_clips(
        counting_videos([40, 90, 25, 60] * 4),
        clips_per_video=3,
        min_length=4,
        max_length=12,
        seed=seed,
        num_parallel_calls=num_parallel_calls,
    )


def test_same_seed_gives_same_clips_for_any_parallelism():
    reference = alignments(clip_pipeline(seed=5, num_parallel_calls=None))
    for calls in [1, 4, tf.data.AUTOTUNE]:
        np.testing.assert_array_equal(
            alignments(clip_pipeline(seed=5, num_parallel_calls=calls)),
            reference,
        )
    assert not np.array_equal(alignments(clip_pipeline(seed=6)), reference)


def test_each_epoch_gives_new_clips_and_same_seed_repeats_epochs():
    first_run = clip_pipeline(seed=7)
    epochs = [alignments(first_run) for _ in range(3)]
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[1], epochs[2])
    second_run = clip_pipeline(seed=7)
    for epoch in epochs:
        np.testing.assert_array_equal(alignments(second_run), epoch)
    repeated = alignments(clip_pipeline(seed=7).repeat(2))
    np.testing.assert_array_equal(repeated, np.concatenate(epochs[:2]))


class AlignmentTotal(keras.layers.Layer):
    """Adds up the alignment indices it sees, to tell epochs apart."""

    def build(self, input_shape):
        self.total = self.add_weight(
            shape=(), initializer="zeros", trainable=False
        )

    def call(self, alignment):
        self.total.assign_add(
            keras.ops.sum(keras.ops.cast(alignment, "float32"))
        )
        return keras.ops.cast(alignment, "float32")


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="AlignmentTotal assigns a variable inside call",
)
def test_model_fit_sees_new_clips_each_epoch():
    dataset = clip_pipeline(seed=8).map(
        lambda inputs, label: (inputs["alignment"], label)
    )
    total = AlignmentTotal()
    alignment = keras.Input((3, 12), dtype="int32")
    outputs = keras.layers.Dense(1)(keras.layers.Flatten()(total(alignment)))
    model = keras.Model(alignment, outputs)
    model.compile(optimizer="sgd", loss="mse")
    totals = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: totals.append(
            float(total.total.numpy())
        )
    )
    model.fit(
        dataset.batch(4),
        epochs=3,
        shuffle=False,
        callbacks=[record],
        verbose=0,
    )
    per_epoch = np.diff([0.0] + totals)
    assert len(set(per_epoch)) == 3


def test_clip_lengths_shrink_to_videos_shorter_than_max_length():
    clips = overlapping_clips(
        counting_videos([9] * 30),
        clips_per_video=4,
        min_length=5,
        max_length=16,
        seed=9,
    )
    for inputs, _ in collect(clips):
        lengths = inputs["mask"].sum(axis=1)
        assert lengths.min() >= 5 and lengths.max() <= 9
        assert inputs["alignment"].max() <= 8


@pytest.mark.parametrize(
    "num_frames, frame_stride, whole_video",
    [
        (3, 1, [[0, 1, 2]]),
        # At stride 2 a 7-frame video is read at phase 0 or 1.
        (7, 2, [[0, 2, 4, 6], [1, 3, 5]]),
    ],
)
def test_video_shorter_than_min_length_gives_the_whole_video_padded(
    num_frames, frame_stride, whole_video
):
    clips = overlapping_clips(
        counting_videos([num_frames] * 10),
        clips_per_video=3,
        min_length=5,
        max_length=8,
        frame_stride=frame_stride,
        seed=10,
    )
    for inputs, _ in collect(clips):
        assert_frames_match_alignment(inputs)
        rows = [row[row >= 0].tolist() for row in inputs["alignment"]]
        assert rows[0] in whole_video
        assert rows == [rows[0]] * 3


def test_video_without_frames_fails_naming_its_id():
    clips = overlapping_clips(
        counting_videos([20, 0], ids=["v_long", "v_empty"]),
        clips_per_video=2,
        min_length=2,
        max_length=4,
        seed=11,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="v_empty"):
        collect(clips)


def test_video_id_is_the_id_feature_or_the_position():
    by_position = collect(
        overlapping_clips(counting_videos([10, 20, 30]), 2, 2, 4, seed=12)
    )
    assert [inputs["video_id"] for inputs, _ in by_position] == [0, 1, 2]
    assert by_position[0][0]["video_id"].dtype == np.int64
    by_feature = collect(
        overlapping_clips(
            counting_videos([10, 20], ids=["a", "b"]), 2, 2, 4, seed=12
        )
    )
    assert [inputs["video_id"] for inputs, _ in by_feature] == [b"a", b"b"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            dict(min_length=8, max_length=4),
            "`max_length` must be an integer >= 8 (min_length); "
            "received max_length=4",
        ),
        (
            dict(clips_per_video=0),
            "`clips_per_video` must be an integer >= 1; "
            "received clips_per_video=0",
        ),
        (
            dict(min_length=4, min_overlap=4),
            "`min_overlap` must be an integer in [0, 3 (min_length - 1)]; "
            "received min_overlap=4",
        ),
        (
            dict(frame_stride=0),
            "`frame_stride` must be an integer >= 1; received frame_stride=0",
        ),
        (
            dict(min_length=0),
            "`min_length` must be an integer >= 1; received min_length=0",
        ),
        (
            dict(clips_per_video=2.5),
            "`clips_per_video` must be an integer >= 1; "
            "received clips_per_video=2.5",
        ),
        (
            dict(video_key="frames"),
            "`video_key` must name a feature of `dataset`, one of "
            "['label', 'video']; received video_key='frames'",
        ),
    ],
)
def test_invalid_arguments_raise_naming_them(arguments, message):
    valid = dict(clips_per_video=2, min_length=4, max_length=8)
    with pytest.raises(ValueError) as error:
        overlapping_clips(counting_videos([10]), **{**valid, **arguments})
    assert message in str(error.value)


@pytest.mark.parametrize("frame_stride", [1, 3])
def test_past_holds_every_frame_before_the_last_clip_start(frame_stride):
    clips = overlapping_clips(
        counting_videos([9, 40, 64]),
        clips_per_video=3,
        min_length=4,
        max_length=8,
        frame_stride=frame_stride,
        seed=13,
        past_length=64,
    )
    for inputs, _ in collect(clips):
        alignment = inputs["alignment"]
        starts = np.where(alignment >= 0, alignment, 10**6).min(axis=1)
        phase = starts.max() % frame_stride
        expected = np.arange(phase, starts.max(), frame_stride)
        past_alignment = inputs["past_alignment"]
        assert past_alignment.shape == (64,)
        np.testing.assert_array_equal(past_alignment[: len(expected)], expected)
        assert (past_alignment[len(expected) :] == -1).all()
        # Every pixel of frame i is i; padding is zero.
        np.testing.assert_array_equal(
            inputs["past"][:, 0, 0, 0], np.maximum(past_alignment, 0)
        )
        assert inputs["past"].shape == (64,) + FRAME_SHAPE


def test_past_longer_than_past_length_fails_naming_the_video():
    clips = overlapping_clips(
        counting_videos([200], ids=["v_long"]),
        clips_per_video=4,
        min_length=2,
        max_length=4,
        seed=14,
        past_length=2,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="v_long"):
        collect(clips)


def test_past_length_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="received past_length=0"):
        overlapping_clips(counting_videos([10]), 2, 4, 8, past_length=0)


def test_ucf101_from_tfds_gives_well_formed_batches():
    size, max_length = 24, 8
    with tfds.testing.mock_data(
        num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        videos = tfds.load("ucf101", split="train")
    resized = videos.map(
        lambda element: {
            **element,
            "video": tf.cast(
                tf.image.resize(element["video"], (size, size)), "uint8"
            ),
        }
    )
    batches = overlapping_clips(
        resized, clips_per_video=2, min_length=4, max_length=max_length, seed=0
    ).batch(2)
    num_videos = 0
    for inputs, labels in batches:
        batch = labels.shape[0]
        num_videos += batch
        assert inputs["clips"].shape == (batch, 2, max_length, size, size, 3)
        assert inputs["clips"].dtype == tf.uint8
        assert inputs["mask"].shape == (batch, 2, max_length)
        assert inputs["alignment"].dtype == tf.int32
        assert inputs["video_id"].dtype == tf.int64
        assert labels.dtype == tf.int64
        mask = inputs["mask"].numpy()
        np.testing.assert_array_equal(mask, inputs["alignment"].numpy() >= 0)
        assert mask.sum(axis=-1).min() >= 1
        padding = inputs["clips"].numpy()[~mask]
        assert not padding.any()
    assert num_videos == 4


@pytest.mark.parametrize(
    "targets, first", [(("last", 10), lambda n: n - 10), (("from", 7), 7)]
)
def test_frame_targets_weight_the_frames_they_name(targets, first):
    lengths = [12, 30, 47]
    clips = overlapping_clips(
        counting_videos(lengths),
        clips_per_video=4,
        min_length=4,
        max_length=16,
        seed=1,
        targets=targets,
    )
    for (inputs, _), length in zip(collect(clips), lengths, strict=True):
        start = first(length) if callable(first) else first
        alignment = inputs["alignment"]
        expected = (alignment >= start) & (alignment >= 0)
        np.testing.assert_array_equal(inputs["frame_weights"], expected)
    without = collect(
        overlapping_clips(counting_videos(lengths), 4, 4, 16, seed=1)
    )
    assert "frame_weights" not in without[0][0]


def test_frame_targets_must_name_frames():
    with pytest.raises(ValueError, match="`targets` must be"):
        overlapping_clips(counting_videos([12]), 4, 4, 16, targets="last")


def test_given_frame_targets_are_the_videos_weights_at_the_clip_frames():
    lengths = [12, 30]
    videos = counting_videos(lengths).map(
        lambda e: {
            **e,
            # Weight of frame i: i / 100, so a gathered weight names its frame.
            "frame_weights": tf.range(tf.shape(e["video"])[0]) / 100,
        }
    )
    clips = overlapping_clips(videos, 3, 4, 8, seed=2, targets="given")
    for inputs, _ in collect(clips):
        alignment = inputs["alignment"]
        expected = np.where(alignment >= 0, alignment / 100, 0.0)
        np.testing.assert_allclose(inputs["frame_weights"], expected, 1e-6)


def test_given_frame_targets_need_the_feature():
    with pytest.raises(ValueError, match="'frame_weights'.*lacks"):
        overlapping_clips(counting_videos([12]), 4, 4, 16, targets="given")
