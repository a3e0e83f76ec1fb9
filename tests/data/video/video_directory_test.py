import os

import av
import numpy as np
import pytest
import tensorflow as tf

from keras_cbm.data import overlapping_clips
from keras_cbm.data import uniform_clips
from keras_cbm.data import video_clips_from_directory
from keras_cbm.data import video_dataset_from_directory
from keras_cbm.data.video import frame_resize
from keras_cbm.data.video import video_reader
from keras_cbm.data.video.video_index import count_frames
from keras_cbm.data.video.video_reader import read_frames
from tests.data.video.index_videos import frame_indices
from tests.data.video.index_videos import write_video
from tests.data.videos import collect

# Path -> frames: every class holds every container.
VIDEOS = {
    "jump/a.mp4": 37,
    "jump/b.webm": 23,
    "jump/c.avi": 41,
    "run/d.avi": 12,
    "run/e.mp4": 30,
    "run/f.webm": 45,
}


@pytest.fixture(autouse=True)
def index_cache(tmp_path, monkeypatch):
    """Frame indices are cached in the test's own folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "video_index"


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for name, num_frames in VIDEOS.items():
        write_video(str(root / name), num_frames)
    return str(root)


def relative(path):
    """`class/file` of a path."""
    return "/".join(path.split(os.sep)[-2:])


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_frame_counts_match_the_frames_decoded(video_dir, name, index_cache):
    path = os.path.join(video_dir, name)
    with av.open(path) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert count_frames(path) == decoded == VIDEOS[name]
    assert len(os.listdir(index_cache)) == 1  # Indexed once, cached.


@pytest.mark.parametrize("seek_after_frames", [0, 64])
@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_read_frames_returns_the_frames_asked(
    video_dir, name, seek_after_frames, monkeypatch
):
    # 0: a new seek before every run of wanted frames after a keyframe.
    monkeypatch.setattr(video_reader, "SEEK_AFTER_FRAMES", seek_after_frames)
    path = os.path.join(video_dir, name)
    num_frames = count_frames(path)
    # Runs that start inside a GOP (gop 5), far apart and adjacent, up to
    # the last frame.
    wanted = sorted(
        {1, 2, 3, 7, 8, 13, num_frames - 4, num_frames - 1}
        & set(range(num_frames))
    )
    frames = read_frames(path, wanted)
    assert frames.shape == (len(wanted), 32, 32, 3)
    np.testing.assert_array_equal(frame_indices(frames), wanted)
    # Grayscale is FFmpeg's own conversion of each frame, value for value.
    with av.open(path) as container:
        reference = [
            frame.to_ndarray(format="gray")
            for frame in container.decode(video=0)
        ]
    gray = read_frames(path, wanted, color_mode="grayscale")
    assert gray.shape == (len(wanted), 32, 32, 1)
    np.testing.assert_array_equal(gray[..., 0], np.stack(reference)[wanted])


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_a_read_that_skipping_breaks_is_read_again_without(
    video_dir, name, monkeypatch
):
    # Unwanted frames that no frame refers to are not decoded; where that
    # loses a wanted frame (a packet holding two frames), nothing is lost.
    decode_run = video_reader.decode_run
    skipping = []

    def decode_run_losing_frames_when_skipping(*args):
        skipping.append(args[-1] is not None)
        if args[-1] is not None:
            raise LookupError("a wanted frame was in a skipped packet")
        return decode_run(*args)

    monkeypatch.setattr(
        video_reader, "decode_run", decode_run_losing_frames_when_skipping
    )
    path = os.path.join(video_dir, name)
    wanted = list(range(1, count_frames(path), 3))
    frames = read_frames(path, wanted)
    np.testing.assert_array_equal(frame_indices(frames), wanted)
    assert skipping[0] and not any(skipping[1:])


def test_a_read_that_seeking_breaks_decodes_from_the_start(
    video_dir, monkeypatch
):
    def decode_run_losing_every_frame(*args):
        raise LookupError("the frame at timestamp 3 is missing")

    monkeypatch.setattr(
        video_reader, "decode_run", decode_run_losing_every_frame
    )
    path = os.path.join(video_dir, "jump/a.mp4")
    with pytest.warns(UserWarning, match="a.mp4.*decoded from its start"):
        frames = read_frames(path, [3, 4, 20])
    np.testing.assert_array_equal(frame_indices(frames), [3, 4, 20])


def test_whole_videos_show_every_frame_in_order(video_dir):
    videos = video_dataset_from_directory(
        video_dir, color_mode="grayscale", frame_size=(16, 16), seed=0
    )
    assert videos.class_names == ["jump", "run"]
    elements = collect(videos)
    names = [relative(videos.file_paths[e["video_id"]]) for e in elements]
    assert sorted(names) == sorted(VIDEOS)
    for element, name in zip(elements, names, strict=True):
        video = element["video"]
        assert video.shape[1:] == (16, 16, 1) and video.dtype == np.uint8
        np.testing.assert_array_equal(
            frame_indices(video), np.arange(VIDEOS[name])
        )
        assert videos.class_names[element["label"]] == name.split("/")[0]


@pytest.mark.parametrize("frame_stride", [1, 3])
def test_clip_frames_show_their_alignment(video_dir, frame_stride):
    clips = video_clips_from_directory(
        video_dir,
        clips_per_video=3,
        min_length=4,
        max_length=9,
        min_overlap=2,
        frame_stride=frame_stride,
        seed=1,
    )
    # Two epochs: new clips, still the right frames.
    for _ in range(2):
        for inputs, label in collect(clips):
            name = relative(clips.file_paths[inputs["video_id"]])
            assert clips.class_names[label] == name.split("/")[0]
            mask, alignment = inputs["mask"], inputs["alignment"]
            np.testing.assert_array_equal(mask, alignment >= 0)
            shown = frame_indices(inputs["clips"])
            np.testing.assert_array_equal(shown[mask], alignment[mask])
            assert not inputs["clips"][~mask].any()
            assert alignment.max() < VIDEOS[name]
            steps = np.diff(alignment, axis=1)[mask[:, 1:]]
            np.testing.assert_array_equal(steps, frame_stride)


@pytest.mark.parametrize(
    "placed",
    [{}, {"targets": ("last", 5), "placement": "weighted"}],
)
def test_clip_level_decoding_equals_clipping_decoded_videos(video_dir, placed):
    arguments = dict(
        clips_per_video=4, min_length=3, max_length=8, seed=5, **placed
    )
    from_files = video_clips_from_directory(
        video_dir, frame_size=(16, 16), shuffle=False, **arguments
    )
    videos = video_dataset_from_directory(
        video_dir, frame_size=(16, 16), shuffle=False
    )
    from_videos = overlapping_clips(videos, **arguments)
    for (clip_level, label), (whole, whole_label) in zip(
        collect(from_files), collect(from_videos), strict=True
    ):
        assert label == whole_label
        assert sorted(clip_level) == sorted(whole)
        for key in whole:
            np.testing.assert_array_equal(clip_level[key], whole[key])
        if placed:
            # Every clip ends on one of the file's last 5 frames.
            frames = VIDEOS[relative(from_files.file_paths[whole["video_id"]])]
            assert (whole["alignment"].max(axis=1) >= frames - 5).all()
            assert whole["frame_weights"].shape == whole["alignment"].shape
            np.testing.assert_array_equal(
                whole["frame_weights"] > 0, whole["alignment"] >= frames - 5
            )


def test_uniform_clips_of_decoded_videos(video_dir):
    videos = video_dataset_from_directory(video_dir, shuffle=False)
    for inputs, _ in collect(uniform_clips(videos, 8, 4, frame_stride=2)):
        mask, alignment = inputs["mask"], inputs["alignment"]
        shown = frame_indices(inputs["clips"])
        np.testing.assert_array_equal(shown[mask], alignment[mask])


def test_validation_split_partitions_the_files(video_dir):
    training, validation = video_dataset_from_directory(
        video_dir, validation_split=0.34, subset="both", seed=3
    )
    assert len(validation.file_paths) == int(0.34 * len(VIDEOS))
    paths = training.file_paths + validation.file_paths
    assert sorted(map(relative, paths)) == sorted(VIDEOS)
    again = video_clips_from_directory(
        video_dir, 2, 3, 5, validation_split=0.34, subset="validation", seed=3
    )
    assert again.file_paths == validation.file_paths
    assert len(collect(validation)) == len(validation.file_paths)


def test_given_labels_and_class_names(video_dir):
    paths = [os.path.join(video_dir, name) for name in sorted(VIDEOS)]
    labels = list(range(len(paths)))
    videos = video_dataset_from_directory(
        video_dir, labels=labels, shuffle=False
    )
    assert videos.file_paths == paths and videos.class_names is None
    assert [e["label"] for e in collect(videos)] == labels
    only_run = video_dataset_from_directory(
        video_dir, class_names=["run"], shuffle=False
    )
    assert only_run.class_names == ["run"]
    assert [relative(p)[:4] for p in only_run.file_paths] == ["run/"] * 3
    assert {e["label"] for e in collect(only_run)} == {0}


@pytest.fixture()
def bad_dir(tmp_path):
    root = tmp_path / "bad"
    write_video(str(root / "good" / "a.avi"), 12)
    write_video(str(root / "good" / "b.mp4"), 9)
    (root / "empty").mkdir()
    (root / "good" / "corrupt.mp4").write_bytes(os.urandom(2000))
    with av.open(str(root / "good" / "audio.webm"), "w") as container:
        stream = container.add_stream("libopus", rate=48000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 960), "float32"), format="flt", layout="mono"
        )
        frame.sample_rate = 48000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return root


@pytest.mark.parametrize(
    "make", [video_dataset_from_directory, video_clips_from_directory]
)
def test_bad_files_raise_naming_every_one(bad_dir, make):
    arguments = (
        {}
        if make is video_dataset_from_directory
        else {"clips_per_video": 2, "min_length": 2, "max_length": 4}
    )
    with pytest.raises(ValueError) as error:
        make(str(bad_dir), **arguments)
    message = str(error.value)
    assert "3 problem(s)" in message
    for name in ("empty", "corrupt.mp4", "audio.webm"):
        assert name in message
    assert "no video stream" in message


def test_bad_files_are_skipped_with_a_warning_when_asked(bad_dir):
    with pytest.warns(UserWarning, match="Skipped 3 of 5"):
        videos = video_dataset_from_directory(
            str(bad_dir), on_error="skip", shuffle=False
        )
    # The empty class keeps its place: no label moves.
    assert videos.class_names == ["empty", "good"]
    assert [os.path.basename(p) for p in videos.file_paths] == [
        "a.avi",
        "b.mp4",
    ]
    elements = collect(videos)
    assert [e["label"] for e in elements] == [1, 1]
    assert [len(e["video"]) for e in elements] == [12, 9]


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_file_that_breaks_after_indexing(tmp_path, on_error):
    for name in ("a.avi", "b.mp4"):
        write_video(str(tmp_path / "good" / name), 12)
    clips = video_clips_from_directory(
        str(tmp_path), 2, 2, 4, on_error=on_error, shuffle=False
    )
    broken = tmp_path / "good" / "a.avi"
    broken.write_bytes(broken.read_bytes()[:300])
    if on_error == "raise":
        with pytest.raises(Exception, match="a.avi"):
            collect(clips)
        return
    with pytest.warns(UserWarning, match=r"Skipped video file .*a\.avi"):
        elements = collect(clips)
    assert [clips.file_paths[i["video_id"]] for i, _ in elements] == [
        str(tmp_path / "good" / "b.mp4")
    ]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"color_mode": "rgba"}, "`color_mode` must be one of"),
        ({"frame_size": 32}, "`frame_size` must be None or"),
        ({"on_error": "ignore"}, "`on_error` must be one of"),
        ({"validation_split": 0.2}, "must be set together"),
        ({"validation_split": 0.2, "subset": "training"}, "`seed` must be"),
        ({"labels": [0, 1]}, "one per video file (6 found)"),
        ({"class_names": ["walk"]}, "`class_names` must name subfolders"),
    ],
)
def test_bad_arguments_are_named(video_dir, arguments, message):
    with pytest.raises(ValueError) as error:
        video_dataset_from_directory(video_dir, **arguments)
    assert message in str(error.value)
    assert "Received:" in str(error.value)


@pytest.mark.parametrize("interpolation", frame_resize.INTERPOLATIONS)
@pytest.mark.parametrize("frame_size", [(5, 7), (6, 9)])
def test_resize_rounds_tf_image_resize_and_keeps_frames_of_that_size(
    interpolation, frame_size
):
    frames = np.random.RandomState(0).randint(0, 256, (3, 5, 7, 2))
    frames = tf.constant(frames.astype("uint8"))
    expected = tf.image.resize(frames, frame_size, method=interpolation)
    expected = np.clip(np.round(expected.numpy()), 0, 255)
    # Frames of unknown size, as decoded in a tf.data map.
    resize = tf.function(
        lambda frames: frame_resize.resize(frames, frame_size, interpolation),
        input_signature=[tf.TensorSpec((None, None, None, 2), tf.uint8)],
    )
    traced = resize.get_concrete_function().structured_outputs
    assert traced.shape.as_list() == [None, *frame_size, 2]
    resized = resize(frames)
    assert resized.dtype == tf.uint8
    np.testing.assert_array_equal(resized, expected)
