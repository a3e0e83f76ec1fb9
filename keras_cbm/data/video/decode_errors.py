"""What a directory dataset does with a file that fails while it is
decoded (it changed after the dataset was made, or its decoder crashed or
hung): raise an error that names it, or leave it out and say so once."""

import threading
import warnings

import numpy as np
import tensorflow as tf

from keras_cbm.data.video.video_index import VideoFileError


class DecodeErrors:
    """Applies `on_error` to the files that fail while decoded.

    Args:
        on_error: `"raise"` or `"skip"`.
        channels: The channels of a frame (of the empty result of a
            skipped file).

    Example:

    >>> errors = DecodeErrors("skip", channels=1)
    >>> def read(path):
    ...     raise TimeoutError("the decoder hung")
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     errors.guard(read)(b"a.mp4").shape
    (0, 1, 1, 1)
    >>> errors.skipped, str(caught[0].message)  # doctest: +ELLIPSIS
    ({'a.mp4'}, "Skipped video file 'a.mp4' ... the decoder hung")
    """

    def __init__(self, on_error, channels):
        self.on_error = on_error
        self.channels = channels
        self.skipped = set()
        self.lock = threading.Lock()  # Guards run in tf.data's threads.

    def guard(self, read):
        """Wraps `read(path, *args)` for `tf.numpy_function`: any error is
        raised as a `VideoFileError` that names the file, or the file is
        skipped (no frames) and named in a warning the first time."""

        # Runs as NumPy code: AutoGraph, which converts what a traced map
        # calls, would turn its Python control flow into graph ops.
        @tf.autograph.experimental.do_not_convert
        def guarded(path, *args):
            path = path.decode()
            try:
                return read(path, *args)
            except VideoFileError as error:
                failure = error
            except Exception as error:
                # A decoder process that crashed or hung, or a bug:
                # whichever, the file that met it is named.
                failure = VideoFileError(
                    path, f"{type(error).__name__}: {error}"
                )
            if self.on_error == "raise":
                raise failure
            with self.lock:
                first = path not in self.skipped
                self.skipped.add(path)
                count = len(self.skipped)
            if first:
                warnings.warn(
                    f"Skipped video file {path!r} ({count} so far in "
                    f"this dataset), which failed to decode: "
                    f"{failure.reason}",
                    stacklevel=2,
                )
            return np.zeros((0, 1, 1, self.channels), "uint8")

        return guarded

    def filter(self, dataset, frames):
        """Drops the elements whose `frames(element)` came back empty."""
        if self.on_error == "raise":
            return dataset
        return dataset.filter(lambda element: tf.size(frames(element)) > 0)
