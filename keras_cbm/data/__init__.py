"""Clip pipelines: `tf.data` functions from a dataset of whole videos to a
dataset of clips with alignment indices (the absolute frame index of every
clip step), and streams of consecutive chunks for videos too long to hold
(`streaming_chunks`). The datasets of the video files of a directory
(`video_dataset_from_directory`, `video_clips_from_directory`,
`video_chunks_from_directory`) come from the `keras_cbm.data.video`
subpackage, which reads and decodes the files (with PyAV, which
`pip install keras_cbm[video]` installs).

This subpackage imports TensorFlow; `keras_cbm` does not import it. The
video-file datasets load PyAV when first used.
"""

from keras_cbm.data.overlapping_clips import overlapping_clips
from keras_cbm.data.streaming_chunks import streaming_chunks
from keras_cbm.data.uniform_clips import padded_window_batch
from keras_cbm.data.uniform_clips import uniform_clips

__all__ = [
    "overlapping_clips",
    "padded_window_batch",
    "streaming_chunks",
    "uniform_clips",
    "video_chunks_from_directory",
    "video_clips_from_directory",
    "video_dataset_from_directory",
]


def __getattr__(name):
    # The names of `__all__` not imported above are the video-file
    # datasets: they need PyAV (the `video` extra); the clip pipelines,
    # which the main job uses, do not.
    if name in __all__:
        from keras_cbm.data import video

        return getattr(video, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
