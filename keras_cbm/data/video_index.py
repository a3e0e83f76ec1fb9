"""How many frames a video file has, and where each frame sits in the file:
the facts clip sampling and seeking need, read once per file and cached.

The frame index of a file is the sorted presentation timestamps of its video
packets and, for its keyframes, the timestamps to seek to, read by demuxing
(no decoding: about 3 microseconds a frame). Frame `i` of a file is the
frame with the `i`-th smallest timestamp, which is the `i`-th frame a
decoder outputs. Indices are cached in memory and on disk
(`$KERAS_HOME/video_index`, by default `~/.keras/video_index`), keyed by
path, size and modification time, so a changed file is indexed again.
"""

import array
import functools
import hashlib
import os
import tempfile

import numpy as np

from keras_cbm.extras import require

av = require("av", "Reading video files")

# Demuxers whose frame count is their per-frame sample table; AVI headers
# count packets (a packed B-frame holds two frames), Matroska has none.
RELIABLE_COUNT_FORMATS = ("mov", "mp4")


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
        VideoFileError: when FFmpeg cannot open the file or it has no
            video stream.
    """
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as error:
        raise VideoFileError(path, error) from error
    if not container.streams.video:
        container.close()
        raise VideoFileError(path, "it has no video stream")
    stream = container.streams.video[0]
    # tf.data decodes videos in parallel; FFmpeg's own threads cost more
    # than they save on small frames (10 vs 16 microseconds a 32x32 frame).
    stream.codec_context.thread_count = 1
    return container, stream


def count_frames(path):
    """The frames of the video file at `path`: the container's count where
    it is exact (MP4, MOV), else the length of its cached frame index.

    Raises:
        VideoFileError: when the file cannot be read or has no frames.

    Example:

    >>> count_frames("no_such_file.mp4")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_cbm.data.video_index.VideoFileError: Cannot read video file ...
    """
    container, stream = open_video(path)
    with container:
        demuxers = container.format.name.split(",")
        if stream.frames > 0 and set(demuxers) & set(RELIABLE_COUNT_FORMATS):
            return int(stream.frames)
    return len(frame_index(path)[0])


def frame_index(path):
    """The frame index of the file at `path`.

    Returns:
        `(timestamps, keyframes)`: the sorted presentation timestamps (in
        the stream's time base) of every frame, int64 `(num_frames,)`; and
        for every keyframe, sorted, its presentation timestamp and its
        decoding timestamp, int64 `(num_keyframes, 2)`. Demuxers seek by
        the decoding timestamp (AVI, MP4) or the presentation timestamp
        (Matroska); the decoding one is never later, so a seek to it never
        lands after the keyframe.

    Raises:
        VideoFileError: when the file cannot be read, has no frames or has
            frames without timestamps.
    """
    status = os.stat(path)
    return cached_frame_index(
        os.path.abspath(path), status.st_size, status.st_mtime_ns
    )


@functools.lru_cache(maxsize=64)
def cached_frame_index(path, size, mtime_ns):
    """`frame_index` for one version of a file (the arguments are the
    cache key): from the disk cache, else by demuxing."""
    key = hashlib.sha1(f"{path}|{size}|{mtime_ns}".encode()).hexdigest()
    cache_path = os.path.join(cache_directory(), key + ".npz")
    try:
        with np.load(cache_path) as cached:
            return cached["timestamps"], cached["keyframes"]
    except (OSError, ValueError, KeyError):
        pass
    timestamps, keyframes = demux_frame_index(path)
    try:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        # Parallel readers may index the same file: write, then rename.
        handle, temporary = tempfile.mkstemp(
            suffix=".npz", dir=os.path.dirname(cache_path)
        )
        with os.fdopen(handle, "wb") as file:
            np.savez(file, timestamps=timestamps, keyframes=keyframes)
        os.replace(temporary, cache_path)
    except OSError:
        pass  # The cache only saves time: a read-only home still works.
    return timestamps, keyframes


def cache_directory():
    """Where frame indices are cached: `$KERAS_HOME/video_index`."""
    home = os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras"))
    return os.path.join(home, "video_index")


def demux_frame_index(path):
    """Reads the frame index of a file from its packets."""
    container, stream = open_video(path)
    # 8 bytes a frame while reading (a list of ints takes 36).
    timestamps, keyframes = array.array("q"), array.array("q")
    with container:
        try:
            for packet in container.demux(stream):
                # Empty packets flush the demuxer; discarded ones are not
                # shown (e.g. before an MP4 edit list's start).
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    raise VideoFileError(
                        path,
                        "its frames have no timestamps; remux it, e.g. "
                        "`ffmpeg -i IN -c copy OUT.mp4`",
                    )
                timestamps.append(packet.pts)
                if packet.is_keyframe:
                    dts = packet.pts if packet.dts is None else packet.dts
                    keyframes.extend((packet.pts, min(dts, packet.pts)))
        except av.FFmpegError as error:
            raise VideoFileError(path, error) from error
    if not timestamps:
        raise VideoFileError(path, "it has no video frames")
    keyframes = np.frombuffer(keyframes, "int64").reshape(-1, 2)
    return np.sort(np.frombuffer(timestamps, "int64")), keyframes[
        np.argsort(keyframes[:, 0])
    ]
