"""Decodes the frames of a video file with PyAV: all of them, or only given
ones, seeking to the keyframe before each run of wanted frames."""

import functools

import numpy as np

from keras_cbm.data.container_pool import ContainerPool
from keras_cbm.data.video_index import VideoFileError
from keras_cbm.data.video_index import frame_index
from keras_cbm.data.video_index import open_video
from keras_cbm.extras import require

av = require("av", "Reading video files")
VideoReformatter = require(
    "av.video.reformatter", "Reading video files"
).VideoReformatter

# A seek restarts the decoder at a keyframe: on small frames, decoding on
# through a few dozen frames is cheaper (measured on 32x32 H.264: spans of
# overlapping clips, 180 frames, read fastest with no seek inside them).
SEEK_AFTER_FRAMES = 64
# Clip reads come back to the same files every epoch. Up to 128 MiB of
# idle decoders a process: 12 files at 1280x720, 256 (the most) at 32x32.
CONTAINERS = ContainerPool(max_files=256, max_bytes=128 * 2**20)
# Pixel formats whose first plane is 8-bit luma, full resolution.
LUMA_FORMATS = (
    "yuv420p",
    "yuvj420p",
    "yuv422p",
    "yuvj422p",
    "yuv444p",
    "yuvj444p",
)
# color_mode -> (FFmpeg pixel format, channels).
PIXEL_FORMATS = {"rgb": ("rgb24", 3), "grayscale": ("gray", 1)}


def read_video(path, color_mode="rgb"):
    """Decodes every frame of a video file.

    Args:
        path: The file.
        color_mode: `"rgb"` or `"grayscale"`.

    Returns:
        uint8 array `(num_frames, height, width, channels)`.

    Raises:
        VideoFileError: when the file cannot be decoded or has no frames.
    """
    container, stream = open_video(path)
    with container:
        frames = FrameConverter(color_mode)
        try:
            for frame in container.decode(stream):
                frames.append(frame)
        except av.FFmpegError as error:
            raise VideoFileError(path, error) from error
    if not frames.arrays:
        raise VideoFileError(path, "it has no video frames")
    return frames.stack()


def read_frames(path, indices, color_mode="rgb"):
    """Decodes the frames of a video file at the given indices only.

    For each run of wanted frames it seeks to the last keyframe at or
    before the run's first frame and decodes to the run's last frame; a new
    run starts where the keyframe before the next wanted frame lies more
    than `SEEK_AFTER_FRAMES` frames ahead. Frames are identified by their
    timestamps (`video_index.frame_index`), never by counting after a seek,
    and a wanted frame the decoder does not output is an error: a frame is
    never silently another one.

    Args:
        path: The file.
        indices: Sorted, distinct frame indices (0 is the first frame).
        color_mode: `"rgb"` or `"grayscale"`.

    Returns:
        uint8 array `(len(indices), height, width, channels)`.

    Raises:
        VideoFileError: when the file cannot be decoded or lacks a wanted
            frame.
    """
    timestamps, keyframes = frame_index(path)
    indices = np.asarray(indices, "int64")
    if indices.size and (indices[0] < 0 or indices[-1] >= len(timestamps)):
        raise VideoFileError(
            path,
            f"frames {indices[0]}..{indices[-1]} were asked and it has "
            f"{len(timestamps)}",
        )
    wanted = timestamps[indices]
    keyframe, seek = keyframes_before(keyframes, wanted)
    # A new run starts at wanted frame i when its keyframe lies more than
    # SEEK_AFTER_FRAMES frames after wanted frame i - 1.
    gaps = np.searchsorted(timestamps, keyframe[1:]) - indices[:-1]
    starts_run = np.concatenate([[True], gaps > SEEK_AFTER_FRAMES])
    with CONTAINERS.open(path) as (container, stream):
        read = functools.partial(
            decode_runs, container, stream, wanted, seek, starts_run, color_mode
        )
        try:
            try:
                return read(skip_unwanted=True)
            except LookupError:
                # A packet may hold more frames than its timestamp names
                # (e.g. AVI's packed B-frames): read again, skipping none.
                return read(skip_unwanted=False)
        except av.FFmpegError as error:
            raise VideoFileError(path, error) from error
        except LookupError as error:
            raise VideoFileError(path, error) from error


def decode_runs(
    container, stream, wanted, seek, starts_run, color_mode, skip_unwanted
):
    """Decodes the wanted frames, run by run; returns them stacked.

    With `skip_unwanted`, the packets of unwanted frames that no frame
    refers to are not decoded (`skip_frame="NONREF"`; a tenth of the
    decoding of H.264 with B-frames read at a stride of 4 frames).

    Raises:
        LookupError: when a wanted frame is not decoded.
    """
    frames = FrameConverter(color_mode)
    codec = stream.codec_context
    wanted_set = set(wanted.tolist()) if skip_unwanted else None
    try:
        while len(frames.arrays) < len(wanted):
            decode_run(
                container, stream, wanted, seek, starts_run, frames, wanted_set
            )
    finally:
        codec.skip_frame = "DEFAULT"
    return frames.stack()


def decode_run(container, stream, wanted, seek, starts_run, frames, skipping):
    """Seeks to `seek` of the next wanted frame, then decodes wanted frames
    into `frames` until all are decoded or the next one starts a run;
    packets whose timestamp is not in the set `skipping` are decoded only
    if other frames refer to them (`None`: all are decoded).

    Raises:
        LookupError: when a wanted frame is not decoded.
    """
    target = wanted[len(frames.arrays)]
    container.seek(
        int(seek[len(frames.arrays)]),
        stream=stream,
        backward=True,
        any_frame=False,
    )
    codec = stream.codec_context
    codec.skip_frame = "DEFAULT"
    skipped = False
    for packet in container.demux(stream):
        if skipping is not None:
            unwanted = packet.pts is not None and packet.pts not in skipping
            if unwanted != skipped:
                codec.skip_frame = "NONREF" if unwanted else "DEFAULT"
                skipped = unwanted
        for frame in codec.decode(packet):
            target = wanted[len(frames.arrays)]
            if frame.pts is None or frame.pts < target:
                continue
            if frame.pts > target:
                raise LookupError(f"the frame at timestamp {target} is missing")
            frames.append(frame)
            done = len(frames.arrays)
            if done == len(wanted) or starts_run[done]:
                return
    raise LookupError(f"it ends before the frame at timestamp {target}")


def keyframes_before(keyframes, timestamps):
    """For each timestamp, the presentation and seek timestamps of the last
    keyframe shown at or before it (the timestamp itself where none is).

    A frame shown before its keyframe (an open GOP's leading B-frame)
    may need the GOP before: choosing by presentation time seeks there."""
    position = np.searchsorted(keyframes[:, 0], timestamps, side="right") - 1
    found = position >= 0
    chosen = keyframes[np.maximum(position, 0)]
    return (
        np.where(found, chosen[:, 0], timestamps),
        np.where(found, chosen[:, 1], timestamps),
    )


class FrameConverter:
    """Collects decoded frames as uint8 arrays of one pixel format."""

    def __init__(self, color_mode):
        self.pixel_format, self.channels = PIXEL_FORMATS[color_mode]
        # One converter for all frames: a new FFmpeg scaler per frame costs
        # ten times the decoding of a small frame.
        self.reformatter = VideoReformatter()
        self.arrays = []
        # Per frame, the `gray_table` arguments its luma plane needs, or
        # `None` for a converted frame.
        self.gray_tables = []

    def append(self, frame):
        if self.pixel_format == "gray" and frame.format.name in LUMA_FORMATS:
            # The luma plane, mapped to gray when stacked: FFmpeg's own gray
            # conversion is ~40x slower on small frames, and one table
            # lookup for all frames 3x faster than one per frame.
            plane = frame.planes[0]
            luma = np.frombuffer(plane, "uint8").reshape(-1, plane.line_size)
            self.arrays.append(luma[: frame.height, : frame.width])
            self.gray_tables.append(
                (frame.format.name.startswith("yuvj"), int(frame.color_range))
            )
        else:
            converted = self.reformatter.reformat(
                frame, format=self.pixel_format
            )
            self.arrays.append(converted.to_ndarray())
            self.gray_tables.append(None)

    def stack(self):
        tables = set(self.gray_tables)
        if tables == {None}:
            frames = np.stack(self.arrays)
        elif len(tables) == 1:
            frames = np.take(gray_table(*tables.pop()), np.stack(self.arrays))
        else:
            frames = np.stack(
                [
                    array if table is None else gray_table(*table)[array]
                    for array, table in zip(
                        self.arrays, self.gray_tables, strict=True
                    )
                ]
            )
        return frames.reshape(frames.shape[:3] + (self.channels,))


@functools.cache
def gray_table(full_range, color_range):
    """FFmpeg's gray value of each of the 256 luma values (full or limited
    range): a frame holding them all, converted once."""
    luma = np.arange(256, dtype="uint8").reshape(16, 16)
    chroma = np.full((8, 16), 128, "uint8")
    frame = av.VideoFrame.from_ndarray(
        np.concatenate([luma, chroma]),
        "yuvj420p" if full_range else "yuv420p",
    )
    gray = VideoReformatter().reformat(
        frame, format="gray", src_color_range=color_range
    )
    return gray.to_ndarray().reshape(256)
