"""Open video files kept for the next read of the same file: opening an MP4
parses its whole sample table (10 ms for 30 minutes at 25 fps, 0.5 ms for a
minute: more than decoding a clip's frames of small videos)."""

import collections
import contextlib
import os
import threading

from keras_cbm.data.video.video_index import open_video

# What an idle container holds: its decoder's reference frames (measured
# with H.264: 10 MiB at 1280x720, some 7 frames of 4:2:0) and its
# demuxer's sample table.
DECODER_FRAMES = 8
TABLE_BYTES_PER_FRAME = 40


class ContainerPool:
    """Open `(container, video_stream)` pairs, each used by one reader at a
    time; the least recently used are closed beyond `max_files` idle ones
    or an estimated `max_bytes` of memory (see `idle_bytes`).

    Bounding memory rather than a count keeps many small videos open (a
    dataset of small long videos reads each file without opening it
    again) and few large ones. A file is known by its path, size and
    modification time, so a changed file is opened again. Readers must
    seek before decoding: a container comes back where its last reader
    left it.

    Args:
        max_files: The most idle containers (each holds a file open).
        max_bytes: The most memory the idle containers are estimated to
            hold; the last one given back is kept even if it alone holds
            more.

    Example:

    >>> pool = ContainerPool(max_files=2, max_bytes=2**20)
    >>> with pool.open("no_such_file.mp4"):  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ...
    keras_cbm.data.video.video_index.VideoFileError: Cannot read video file ...
    """

    def __init__(self, max_files, max_bytes):
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.idle = collections.OrderedDict()  # (key, serial) -> pair
        self.idle_bytes = {}  # (key, serial) -> estimate
        self.serial = 0
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def open(self, path):
        """Yields `(container, video_stream)` for `path`, opened or idle;
        a reader that fails closes it rather than giving it back."""
        try:
            status = os.stat(path)
            key = (os.path.abspath(path), status.st_size, status.st_mtime_ns)
        except OSError:
            key = None
        pair = self.take(key)
        if pair is None:
            pair = open_video(path)
        try:
            yield pair
        except BaseException:
            pair[0].close()
            raise
        self.give_back(key, pair)

    def take(self, key):
        with self.lock:
            for entry in reversed(self.idle):
                if entry[0] == key:
                    del self.idle_bytes[entry]
                    return self.idle.pop(entry)
        return None

    def give_back(self, key, pair):
        with self.lock:
            self.serial += 1
            self.idle[key, self.serial] = pair
            self.idle_bytes[key, self.serial] = idle_bytes(pair[1])
            closing = []
            while len(self.idle) > 1 and (
                len(self.idle) > self.max_files
                or sum(self.idle_bytes.values()) > self.max_bytes
            ):
                entry, oldest = self.idle.popitem(last=False)
                del self.idle_bytes[entry]
                closing.append(oldest)
        for container, _ in closing:
            container.close()


def idle_bytes(stream):
    """An estimate of the memory an open container of `stream` holds
    between reads: its decoder's reference frames and its sample table
    (where the container counts the frames)."""
    codec = stream.codec_context
    frame_bytes = codec.width * codec.height * 3 // 2
    return DECODER_FRAMES * frame_bytes + TABLE_BYTES_PER_FRAME * max(
        stream.frames, 0
    )
