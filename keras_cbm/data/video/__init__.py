"""Datasets of the video files of a directory: whole videos
(`video_dataset_from_directory`), overlapping clips of which only the
sampled frames are decoded (`video_clips_from_directory`) and streams of
consecutive chunks (`video_chunks_from_directory`); `keras_cbm.data`
exports all three.

This subpackage reads the files: it lists and splits them, indexes their
frames, decodes them with PyAV (which `pip install keras_cbm[video]`
installs) in worker processes and hands the frames to `keras_cbm.data`'s
clip samplers. Importing it needs PyAV.
"""

from keras_cbm.data.video.video_chunks import video_chunks_from_directory
from keras_cbm.data.video.video_directory import video_clips_from_directory
from keras_cbm.data.video.video_directory import video_dataset_from_directory

__all__ = [
    "video_chunks_from_directory",
    "video_clips_from_directory",
    "video_dataset_from_directory",
]
