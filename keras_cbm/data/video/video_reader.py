"""Decodes the frames of a video file with PyAV: all of them, or only given
ones, seeking to the keyframe before each run of wanted frames, or decoding
from the start where the file's timestamps cannot identify frames.

Frames come out as a player shows them: turned and mirrored as the
stream's display matrix says (phones' portrait videos), and scaled to the
first frame's size where the size changes in the middle of the file.
"""

import fractions
import functools
import warnings

import numpy as np

from keras_cbm.data.video.container_pool import ContainerPool
from keras_cbm.data.video.video_index import VideoFileError
from keras_cbm.data.video.video_index import frame_index
from keras_cbm.data.video.video_index import open_video
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
# FFmpeg's own decoders that read `skip_frame` at every frame. libdav1d
# (AV1) reads it once, when opened: opened while skipping, it never
# outputs a non-reference frame again.
SKIPPING_DECODERS = (
    "h264",
    "hevc",
    "mpeg1video",
    "mpeg2video",
    "mpeg4",
    "vp8",
    "vp9",
)
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


def read_video(path, color_mode="rgb", apply_rotation=True):
    """Decodes every frame of a video file.

    Args:
        path: The file.
        color_mode: `"rgb"` or `"grayscale"`.
        apply_rotation: Whether to turn the frames as the file's display
            matrix says.

    Returns:
        uint8 array `(num_frames, height, width, channels)`.

    Raises:
        VideoFileError: when the file cannot be decoded or has no frames.
    """
    return read_sequentially(
        path, None, FrameConverter(color_mode, apply_rotation)
    )


def read_frames(path, indices, color_mode="rgb", apply_rotation=True):
    """Decodes the frames of a video file at the given indices only.

    Frame `k` is the `k`-th frame a sequential decode outputs. Where the
    file's frame index trusts its timestamps (`video_index.frame_index`),
    for each run of wanted frames it seeks to the last keyframe at or
    before the run's first frame and decodes to the run's last frame; a
    new run starts where the keyframe before the next wanted frame lies
    more than `SEEK_AFTER_FRAMES` frames ahead. Frames are identified by
    their timestamps, never by counting after a seek. Otherwise, and where
    a seek loses a wanted frame, it decodes from the start and counts: a
    frame is never silently another one.

    Args:
        path: The file.
        indices: Sorted, distinct frame indices (0 is the first frame).
        color_mode: `"rgb"` or `"grayscale"`.
        apply_rotation: Whether to turn the frames as the file's display
            matrix says.

    Returns:
        uint8 array `(len(indices), height, width, channels)`.

    Raises:
        VideoFileError: when the file cannot be decoded or lacks a wanted
            frame.
    """
    index = frame_index(path)
    indices = np.asarray(indices, "int64")
    if indices.size and (indices[0] < 0 or indices[-1] >= index.num_frames):
        raise VideoFileError(
            path,
            f"frames {indices[0]}..{indices[-1]} were asked and it has "
            f"{index.num_frames}",
        )
    frames = FrameConverter(color_mode, apply_rotation, index.first_size)
    if index.sequential:
        return read_sequentially(path, indices, frames)
    timestamps = index.timestamps
    wanted = timestamps[indices]
    keyframe, seek = keyframes_before(index.keyframes, wanted)
    # A new run starts at wanted frame i when its keyframe lies more than
    # SEEK_AFTER_FRAMES frames after wanted frame i - 1.
    gaps = np.searchsorted(timestamps, keyframe[1:]) - indices[:-1]
    starts_run = np.concatenate([[True], gaps > SEEK_AFTER_FRAMES])
    with CONTAINERS.open(path) as (container, stream):
        read = functools.partial(
            decode_runs,
            container,
            stream,
            wanted,
            seek,
            starts_run,
            frames,
        )
        try:
            try:
                return read(
                    skip_unwanted=stream.codec_context.name in SKIPPING_DECODERS
                )
            except LookupError:
                # A packet may hold more frames than its timestamp names
                # (e.g. AVI's packed B-frames): read again, skipping none.
                return read(skip_unwanted=False)
        except av.FFmpegError as error:
            raise VideoFileError(path, error) from error
        except LookupError as error:
            # The timestamps misled past the frames checked when indexing.
            warnings.warn(
                f"Video file {path!r} is decoded from its start for this "
                f"read: {error} after a seek.",
                stacklevel=2,
            )
    return read_sequentially(path, indices, frames)


def read_sequentially(path, indices, frames):
    """Decodes `path` from its start into the `FrameConverter` `frames`
    (emptied first), keeping the frames at `indices` (sorted; `None`:
    all); returns them stacked."""
    frames.clear()
    # A fresh container: after a seek, a file whose timestamps restart
    # could not seek back to its start by timestamp.
    container, stream = open_video(path)
    with container:
        wanted = None if indices is None else iter(indices.tolist())
        target = None if wanted is None else next(wanted, None)
        try:
            for position, frame in enumerate(container.decode(stream)):
                if wanted is None:
                    frames.append(frame)
                    continue
                if target is None:
                    break
                if position == target:
                    frames.append(frame)
                    target = next(wanted, None)
        except av.FFmpegError as error:
            raise VideoFileError(path, error) from error
    if wanted is not None and target is not None:
        raise VideoFileError(
            path, f"it ends before frame {target} in a decode from its start"
        )
    if wanted is None and not frames.arrays:
        raise VideoFileError(path, "it has no video frames")
    return frames.stack()


def decode_runs(
    container, stream, wanted, seek, starts_run, frames, skip_unwanted
):
    """Decodes the wanted frames, run by run, into `frames` (emptied
    first); returns them stacked.

    With `skip_unwanted`, the packets of unwanted frames that no frame
    refers to are not decoded (`skip_frame="NONREF"`; a tenth of the
    decoding of H.264 with B-frames read at a stride of 4 frames).

    Raises:
        LookupError: when a wanted frame is not decoded.
    """
    frames.clear()
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
    """Collects decoded frames as uint8 arrays of one pixel format and
    size, turned as the stream's display matrix says.

    Args:
        color_mode: `"rgb"` or `"grayscale"`.
        apply_rotation: Whether to turn frames as the display matrix says.
        size: `(width, height)` to scale stored frames of another size to
            (`None`: the first frame's).
    """

    def __init__(self, color_mode, apply_rotation=True, size=None):
        self.pixel_format, self.channels = PIXEL_FORMATS[color_mode]
        self.apply_rotation = apply_rotation
        self.first_size = size
        # One converter for all frames: a new FFmpeg scaler per frame costs
        # ten times the decoding of a small frame.
        self.reformatter = VideoReformatter()
        self.clear()

    def clear(self):
        """Forgets the frames collected."""
        self.arrays = []
        # Per frame, the `gray_table` arguments its luma plane needs, or
        # `None` for a converted frame.
        self.gray_tables = []
        self.size = self.first_size
        self.turner = None

    def append(self, frame):
        if not self.arrays:
            self.size = self.size or (frame.width, frame.height)
            # The display matrix is the stream's (coded side data, copied
            # to every frame): read once.
            filters = display_filters(frame) if self.apply_rotation else []
            self.turner = FrameTurner(filters) if filters else None
        if (frame.width, frame.height) != self.size:
            # Scaled to the first frame's size, so that a file's frames
            # stack (a stream that changes size).
            width, height = self.size
            frame = self.reformatter.reformat(frame, width=width, height=height)
        if self.turner is not None:
            frame = self.turner(frame)
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


def display_filters(frame):
    """The FFmpeg filters, `(name, arguments)`, that show `frame` as its
    display matrix says, rounded to the nearest right angle (none where
    it has no matrix or the identity).

    FFmpeg's display matrix maps a stored pixel at column `p`, row `q` to
    the shown position `(a * p + c * q, b * p + d * q)`."""
    matrix = frame.side_data.get("DISPLAYMATRIX")
    if matrix is None:
        return []
    a, b, _, c, d = np.frombuffer(bytes(matrix), "<i4")[:5].tolist()
    if abs(a) + abs(d) >= abs(b) + abs(c):
        # Columns stay columns, mirrored where a < 0; rows where d < 0.
        flips = [("hflip", a < 0), ("vflip", d < 0)]
        return [(name, "") for name, flipped in flips if flipped]
    # Shown rows are stored columns (reversed where b < 0), shown columns
    # stored rows (reversed where c < 0): FFmpeg's transpose directions.
    direction = {
        (1, 1): "cclock_flip",
        (-1, 1): "cclock",
        (1, -1): "clock",
        (-1, -1): "clock_flip",
    }[1 if b > 0 else -1, 1 if c > 0 else -1]
    return [("transpose", direction)]


class FrameTurner:
    """Applies `filters` (see `display_filters`) to decoded frames with an
    FFmpeg filter graph, rebuilt when the frames' size or format changes.

    FFmpeg turns the decoded (YUV) frame before its conversion: whole RGB
    reads of a turned 320x240 video take 0.93x the time of the same reads
    as stored, where NumPy turning the converted arrays (3-byte pixels
    copied one by one) took 1.74x (`benchmarks/video_index_cost.py`; see
    docs/video_files.md)."""

    def __init__(self, filters):
        self.filters = filters
        self.key = None

    def __call__(self, frame):
        key = (frame.width, frame.height, frame.format.name)
        if key != self.key:
            self.key = key
            self.graph = av.filter.Graph()
            node = self.graph.add_buffer(
                width=frame.width,
                height=frame.height,
                format=frame.format.name,
                time_base=frame.time_base or fractions.Fraction(1, 1),
            )
            for name, arguments in self.filters:
                following = self.graph.add(name, arguments)
                node.link_to(following)
                node = following
            node.link_to(self.graph.add("buffersink"))
            self.graph.configure()
        self.graph.push(frame)
        return self.graph.pull()


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
