"""Open video files kept for the next read of the same file: opening an MP4
parses its whole sample table (10 ms for 30 minutes at 25 fps, every read
of a clip otherwise)."""

import collections
import contextlib
import os
import threading

from keras_cbm.data.video_index import open_video


class ContainerPool:
    """A few open `(container, video_stream)` pairs, each used by one reader
    at a time, the least recently used closed beyond `size`.

    A file is known by its path, size and modification time, so a changed
    file is opened again. Readers must seek before decoding: a container
    comes back where its last reader left it.

    Example:

    >>> pool = ContainerPool(size=2)
    >>> with pool.open("no_such_file.mp4"):  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ...
    keras_cbm.data.video_index.VideoFileError: Cannot read video file ...
    """

    def __init__(self, size):
        self.size = size
        self.idle = collections.OrderedDict()  # (key, serial) -> pair
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
                    return self.idle.pop(entry)
        return None

    def give_back(self, key, pair):
        with self.lock:
            self.serial += 1
            self.idle[key, self.serial] = pair
            closing = []
            while len(self.idle) > self.size:
                closing.append(self.idle.popitem(last=False)[1])
        for container, _ in closing:
            container.close()
