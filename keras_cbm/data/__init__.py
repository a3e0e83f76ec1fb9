"""Clip pipelines: `tf.data` functions from a dataset of whole videos to a
dataset of clips with alignment indices (the absolute frame index of every
clip step), and datasets of the video files of a directory (decoded with
PyAV).

This subpackage imports TensorFlow; `keras_cbm` does not import it.
"""

from keras_cbm.data.overlapping_clips import overlapping_clips
from keras_cbm.data.uniform_clips import padded_window_batch
from keras_cbm.data.uniform_clips import uniform_clips
from keras_cbm.data.video_directory import video_clips_from_directory
from keras_cbm.data.video_directory import video_dataset_from_directory

__all__ = [
    "overlapping_clips",
    "padded_window_batch",
    "uniform_clips",
    "video_clips_from_directory",
    "video_dataset_from_directory",
]
