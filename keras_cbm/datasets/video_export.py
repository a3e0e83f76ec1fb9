"""Writes a TFDS video dataset as video files in the class-folder layout
that `keras_cbm.data.video_dataset_from_directory` reads."""

import os

import numpy as np
import tensorflow_datasets as tfds

from keras_cbm.extras import require

av = require("av", "Writing video files")

# Near-lossless H.264: small, sharp objects (motion_order's squares) keep
# their values; FFmpeg's default (crf 23) softens them.
DEFAULT_OPTIONS = {"libx264": {"crf": "17"}}


def export_videos(
    name,
    directory,
    splits=("train", "test"),
    data_dir=None,
    fps=25,
    codec="libx264",
    options=None,
):
    """Writes the videos of a TFDS dataset as files, one folder per class.

    The dataset needs a `video` feature (`tfds.features.Video`, 1 or 3
    channels) and a `label` `tfds.features.ClassLabel`, as `ucf101` and
    `motion_order` have. Video `i` of a split is written to
    `directory/split/class_name/{i:05d}.mp4`, so that
    `video_dataset_from_directory(os.path.join(directory, split))` reads
    it with the dataset's labels; every class has a folder in every split
    (an empty one where the split has none of its videos).

    Args:
        name: The TFDS name, e.g. `"motion_order/recognition"` (after
            `import keras_cbm.datasets`).
        directory: The folder to write into.
        splits: The splits to write.
        data_dir: Where TFDS builds or finds the dataset.
        fps: Frames per second written in the files.
        codec: The FFmpeg encoder; its container is MP4.
        options: Encoder options (default: `{"crf": "17"}` for `libx264`,
            else FFmpeg's).

    Returns:
        A dict of split name to the number of videos written.

    Example:

    >>> import keras_cbm.datasets
    >>> export_videos(  # doctest: +SKIP
    ...     "motion_order/recognition", "outputs/motion_order_videos"
    ... )
    {'train': 1600, 'test': 400}
    """
    if options is None:
        options = DEFAULT_OPTIONS.get(codec, {})
    builder = tfds.builder(name, data_dir=data_dir)
    builder.download_and_prepare()
    class_names = builder.info.features["label"].names
    written = {}
    for split in splits:
        # Every class gets its folder, so that the folders carry the
        # dataset's classes even where a split has no video of one.
        for class_name in class_names:
            os.makedirs(
                os.path.join(directory, split, class_name), exist_ok=True
            )
        written[split] = 0
        for example in tfds.as_numpy(builder.as_dataset(split=split)):
            path = os.path.join(
                directory,
                split,
                class_names[example["label"]],
                f"{written[split]:05d}.mp4",
            )
            write_video(path, example["video"], fps, codec, options)
            written[split] += 1
    return written


def write_video(path, frames, fps=25, codec="libx264", options=None):
    """Writes uint8 frames `(num_frames, height, width, 1 or 3)` to a file
    (the container follows the path's extension), creating its folder.

    Example:

    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "gray.mp4")
    >>> write_video(path, np.zeros((10, 32, 32, 1), "uint8"))
    """
    frames = np.asarray(frames)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    height, width, channels = frames.shape[1:]
    pixel_format = {1: "gray", 3: "rgb24"}[channels]
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height = width, height
        # 4:2:0 chroma needs even sides.
        even = height % 2 == 0 and width % 2 == 0
        stream.pix_fmt = "yuv420p" if even else "yuv444p"
        for frame in frames:
            image = frame[:, :, 0] if channels == 1 else frame
            container.mux(
                stream.encode(av.VideoFrame.from_ndarray(image, pixel_format))
            )
        container.mux(stream.encode())
