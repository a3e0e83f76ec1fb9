"""The arguments both directory datasets share, checked once at the call,
with messages that name the argument, what it must be and what it got."""

import dataclasses
import os

from keras_cbm.data.arguments import check_choice
from keras_cbm.data.arguments import check_frame_size
from keras_cbm.data.arguments import check_seed
from keras_cbm.data.video.file_split import check_split_arguments
from keras_cbm.data.video.frame_resize import INTERPOLATIONS
from keras_cbm.data.video.video_reader import PIXEL_FORMATS

ON_ERROR = ("raise", "skip")


@dataclasses.dataclass(frozen=True)
class DirectoryOptions:
    """The checked arguments of `video_dataset_from_directory` and
    `video_clips_from_directory` that say which files to read and how to
    decode them (see there); `checked` makes one.

    Example:

    >>> import tempfile
    >>> options = DirectoryOptions.checked(tempfile.gettempdir(), seed=7)
    >>> options.channels, options.seed
    (3, 7)
    >>> DirectoryOptions.checked(tempfile.gettempdir(), seed="abc")
    Traceback (most recent call last):
    ...
    ValueError: `seed` must be None or an integer. Received: seed='abc'
    """

    directory: str
    labels: object = "inferred"
    class_names: tuple | None = None
    color_mode: str = "rgb"
    frame_size: tuple | None = None
    interpolation: str = "bilinear"
    apply_rotation: bool = True
    validation_split: float | None = None
    subset: str | None = None
    seed: int | None = None
    shuffle: bool = True
    follow_links: bool = False
    on_error: str = "raise"

    @classmethod
    def checked(cls, directory, **arguments):
        """Checks the arguments; returns them as `DirectoryOptions`.

        Raises:
            ValueError: naming the first argument that is wrong.
        """
        options = cls(directory, **arguments)
        check_directory(options.directory)
        check_choice("color_mode", options.color_mode, tuple(PIXEL_FORMATS))
        check_frame_size(options.frame_size)
        check_choice("interpolation", options.interpolation, INTERPOLATIONS)
        check_choice("on_error", options.on_error, ON_ERROR)
        seed = check_seed(options.seed)
        check_split_arguments(
            options.validation_split, options.subset, seed, options.shuffle
        )
        return dataclasses.replace(
            options, directory=os.fspath(options.directory), seed=seed
        )

    @property
    def channels(self):
        """The channels of a decoded frame."""
        return PIXEL_FORMATS[self.color_mode][1]


def check_directory(directory):
    """Raises `ValueError` unless `directory` is an existing folder named
    by a `str` or an `os.PathLike` of one (a `bytes` path would reach
    `tf.data` as bytes and FFmpeg as text)."""
    try:
        path = os.fspath(directory)
    except TypeError:
        path = None
    if not isinstance(path, str) or not os.path.isdir(path):
        raise ValueError(
            "`directory` must be the path of an existing folder, a str or "
            f"an os.PathLike. Received: directory={directory!r}"
        )
