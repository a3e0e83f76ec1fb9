"""How many frames a video file has, and where each frame sits in the file:
the facts clip sampling and seeking need, read once per file and cached.

Frame `k` of a file is the `k`-th frame a sequential decode outputs, whatever
its timestamps say. The frame index of a file is the sorted presentation
timestamps of its video packets and, for its keyframes, the timestamps to
seek to, read by demuxing (about 3 microseconds a frame), and trusted only
where the timestamps say the decode order: all present and distinct, none
restarting, and a decode of the file's first frames outputs them in sorted
order. Otherwise the file is read by decoding from its start (`sequential`),
and its frames are counted by decoding it once.

Indexing also refuses what is not a whole video: a still image, a file
without video frames, a file its header says is longer than it is
(truncated copies). Indices are cached in memory and on disk
(`$KERAS_HOME/video_index`, by default `~/.keras/video_index`), keyed by
path, size and modification time, so a changed file is indexed again.
"""

import array
import dataclasses
import functools
import hashlib
import os
import tempfile

import numpy as np

from keras_cbm.extras import require

av = require("av", "Reading video files")

# Frames a sequential decode checks at indexing: reordering (B-frames, an
# AVI's guessed timestamps) shows within the first group of pictures.
CHECKED_FRAMES = 32
# Demuxers whose header states the duration of what they hold; a file
# whose packets end earlier was cut (MPEG-TS and -PS durations are guessed
# from the bit rate).
DECLARED_DURATION_FORMATS = ("matroska", "mov")


class VideoFileError(ValueError):
    """A video file that cannot be read; the message names the file."""

    def __init__(self, path, reason):
        super().__init__(f"Cannot read video file {path!r}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):
        # Raised in decoding processes: comes back through pickle, with
        # the reason as text (an FFmpeg error object may not pickle).
        return type(self), (self.path, str(self.reason))


def open_video(path):
    """Opens `path` with PyAV; returns `(container, video_stream)`.

    Raises:
        VideoFileError: when FFmpeg cannot open the file, reads it as a
            still image or finds no video stream in it.
    """
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as error:
        raise VideoFileError(path, error) from error
    demuxer = container.format.name
    if demuxer == "image2" or demuxer.endswith("_pipe"):
        container.close()
        raise VideoFileError(
            path, f"it is a still image (FFmpeg reads it as {demuxer})"
        )
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams})
        container.close()
        raise VideoFileError(
            path,
            "it has no video stream"
            + (f" (only {', '.join(kinds)})" if kinds else ""),
        )
    stream = container.streams.video[0]
    # tf.data decodes videos in parallel; FFmpeg's own threads cost more
    # than they save on small frames (10 vs 16 microseconds a 32x32 frame).
    stream.codec_context.thread_count = 1
    return container, stream


@dataclasses.dataclass(frozen=True)
class FrameIndex:
    """Where the frames of a video file sit.

    Attributes:
        num_frames: The frames a sequential decode outputs.
        timestamps: The sorted presentation timestamps (in the stream's
            time base) of every frame, int64 `(num_frames,)`; empty when
            `sequential`.
        keyframes: For every keyframe, sorted, its presentation timestamp
            and its decoding timestamp, int64 `(num_keyframes, 2)`.
            Demuxers seek by the decoding timestamp (AVI, MP4) or the
            presentation timestamp (Matroska); the decoding one is never
            later, so a seek to it never lands after the keyframe.
        sequential: Why the timestamps cannot identify frames (the file is
            read by decoding from its start), or `""` where they can.
        first_size: `(width, height)` of the first frame, the size of all
            frames read (a file whose size changes is scaled to it).
    """

    num_frames: int
    timestamps: np.ndarray
    keyframes: np.ndarray
    sequential: str
    first_size: tuple


def count_frames(path):
    """The frames a sequential decode of the video file at `path` outputs.

    Raises:
        VideoFileError: when the file cannot be read, is not a whole video
            or has no frames.

    Example:

    >>> count_frames("no_such_file.mp4")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_cbm.data.video.video_index.VideoFileError: Cannot read video file ...
    """
    return frame_index(path).num_frames


def frame_index(path):
    """The `FrameIndex` of the file at `path`, from the caches or read.

    Raises:
        VideoFileError: when the file cannot be read, is not a whole video
            or has no frames.
    """
    try:
        status = os.stat(path)
    except OSError as error:
        raise VideoFileError(path, error) from error
    return cached_frame_index(
        os.path.abspath(path), status.st_size, status.st_mtime_ns
    )


@functools.lru_cache(maxsize=64)
def cached_frame_index(path, size, mtime_ns):
    """`frame_index` for one version of a file (the arguments are the
    cache key): from the disk cache, else read."""
    key = hashlib.sha1(f"{path}|{size}|{mtime_ns}".encode()).hexdigest()
    cache_path = os.path.join(cache_directory(), key + ".npz")
    fields = [field.name for field in dataclasses.fields(FrameIndex)]
    try:
        with np.load(cache_path) as cached:
            index = FrameIndex(**{name: cached[name] for name in fields})
        return dataclasses.replace(
            index,
            num_frames=int(index.num_frames),
            sequential=str(index.sequential),
            first_size=tuple(index.first_size.tolist()),
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    index = read_frame_index(path)
    try:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        # Parallel readers may index the same file: write, then rename.
        handle, temporary = tempfile.mkstemp(
            suffix=".npz", dir=os.path.dirname(cache_path)
        )
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **dataclasses.asdict(index))
        os.replace(temporary, cache_path)
    except OSError:
        pass  # The cache only saves time: a read-only home still works.
    return index


def cache_directory():
    """Where frame indices are cached: `$KERAS_HOME/video_index`."""
    home = os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras"))
    return os.path.join(home, "video_index")


def read_frame_index(path):
    """Reads the `FrameIndex` of a file: demuxes it, checks that it is
    whole, and that its timestamps say the decode order."""
    timestamps, packets = demux_timestamps(path)
    sorted_timestamps = np.sort(timestamps)
    decoded, first_size = decode_start(path, len(timestamps))
    reason = timestamp_fault(timestamps, packets)
    if not reason and decoded != sorted_timestamps[: len(decoded)].tolist():
        reason = "its decoder outputs frames out of timestamp order"
    if reason:
        return FrameIndex(
            num_frames=decoded_frames(path),
            timestamps=np.zeros(0, "int64"),
            keyframes=np.zeros((0, 2), "int64"),
            sequential=reason,
            first_size=first_size,
        )
    # Keyframes as (presentation, decoding) pairs, by presentation time.
    seek_points = packets[:, 1:][packets[:, 0] == 1]
    return FrameIndex(
        num_frames=len(timestamps),
        timestamps=sorted_timestamps,
        keyframes=seek_points[np.argsort(seek_points[:, 0], kind="stable")],
        sequential="",
        first_size=first_size,
    )


def demux_timestamps(path):
    """The presentation timestamps of a file's shown video packets in
    decode order (-1 for none), and per packet `(is_keyframe, pts, dts)`.

    Raises:
        VideoFileError: when the demuxer fails, finds no frame, or finds
            fewer frames or less time than the header states.
    """
    container, stream = open_video(path)
    # 8 bytes a value while reading (a list of ints takes 36).
    timestamps, packets = array.array("q"), array.array("q")
    count, end = 0, None
    with container:
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # Empty packets flush the demuxer.
                count += 1
                if packet.pts is not None and packet.duration is not None:
                    packet_end = packet.pts + packet.duration
                    end = packet_end if end is None else max(end, packet_end)
                # Discarded packets are not shown (e.g. before an MP4 edit
                # list's start).
                if packet.is_discard:
                    continue
                pts = -1 if packet.pts is None else packet.pts
                dts = pts if packet.dts is None else min(packet.dts, pts)
                timestamps.append(pts)
                packets.extend((int(packet.is_keyframe), pts, dts))
        except av.FFmpegError as error:
            raise VideoFileError(path, error) from error
        if not timestamps:
            raise VideoFileError(path, "it has no video frames")
        if stream.frames > count:
            raise VideoFileError(
                path,
                f"it is truncated: its header lists {stream.frames} frames "
                f"and {count} are in the file",
            )
        demuxer = container.format.name.split(",")[0]
        if (
            demuxer in DECLARED_DURATION_FORMATS
            and container.duration
            and end is not None
        ):
            declared = container.duration / av.time_base
            found = float((end - (stream.start_time or 0)) * stream.time_base)
            # Up to two frames short: rounding of durations.
            slack = 2 / float(stream.guessed_rate or 25)
            if found < declared - slack:
                raise VideoFileError(
                    path,
                    f"it is truncated: its header states {declared:.3f} s "
                    f"and its frames end at {found:.3f} s",
                )
    return (
        np.frombuffer(timestamps, "int64"),
        np.frombuffer(packets, "int64").reshape(-1, 3),
    )


def timestamp_fault(timestamps, packets):
    """Why timestamps in decode order cannot identify frames, or `""`.

    Args:
        timestamps: Presentation timestamps in decode order, -1 for none.
        packets: Per frame `(is_keyframe, pts, dts)`."""
    if (timestamps < 0).any():
        return "some frames have no timestamp"
    # Every frame decoded before a keyframe is shown before it, however
    # frames are reordered; a keyframe shown earlier starts the
    # timestamps again (recordings concatenated, a counter wrapped).
    shown_before = np.maximum.accumulate(timestamps)
    is_keyframe = packets[1:, 0] == 1
    if (timestamps[1:][is_keyframe] < shown_before[:-1][is_keyframe]).any():
        return "its timestamps restart"
    if len(np.unique(timestamps)) < len(timestamps):
        return "its timestamps repeat"
    return ""


def decode_start(path, num_frames):
    """Decodes the first `CHECKED_FRAMES` frames (of `num_frames`).

    Returns:
        `(timestamps, first_size)`: the timestamps of the frames in the
        order the decoder outputs them (-1 for none), and `(width,
        height)` of the first.
    """
    timestamps, first_size = [], None
    container, stream = open_video(path)
    with container:
        try:
            for frame in container.decode(stream):
                first_size = first_size or (frame.width, frame.height)
                timestamps.append(-1 if frame.pts is None else frame.pts)
                if len(timestamps) == min(CHECKED_FRAMES, num_frames):
                    break
        except av.FFmpegError as error:
            raise VideoFileError(path, error) from error
    if not timestamps:
        raise VideoFileError(path, "FFmpeg decodes none of its frames")
    return timestamps, first_size


def decoded_frames(path):
    """Counts the frames of a sequential decode of `path`."""
    container, stream = open_video(path)
    count = 0
    with container:
        try:
            for _ in container.decode(stream):
                count += 1
        except av.FFmpegError as error:
            raise VideoFileError(path, error) from error
    if not count:
        raise VideoFileError(path, "FFmpeg decodes none of its frames")
    return count
