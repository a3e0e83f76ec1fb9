import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

import keras_cbm.datasets
from keras_cbm.data import video_dataset_from_directory


def test_exported_files_hold_each_video_under_its_class(tmp_path, offline):
    data_dir, directory = str(tmp_path / "tfds"), str(tmp_path / "videos")
    name = "motion_order/recognition_small"
    written = keras_cbm.datasets.export_videos(
        name, directory, data_dir=data_dir
    )
    assert written == {"train": 6, "test": 3}
    classes = list(keras_cbm.datasets.MOTION_ORDER_CLASSES)
    for split in ("train", "test"):
        # Every class has its folder, so the folders carry the labels.
        assert sorted(os.listdir(os.path.join(directory, split))) == sorted(
            classes
        )
        # 6 or 3 videos leave most of the 12 class folders empty.
        with pytest.warns(UserWarning, match="a class folder without"):
            videos = video_dataset_from_directory(
                os.path.join(directory, split),
                class_names=classes,
                color_mode="grayscale",
                shuffle=False,
                on_error="skip",
            )
        exported = {
            os.path.basename(videos.file_paths[e["video_id"]]): e
            for e in videos.as_numpy_iterator()
        }
        originals = tfds.as_numpy(
            tfds.load(name, split=split, data_dir=data_dir, shuffle_files=False)
        )
        for index, original in enumerate(originals):
            element = exported[f"{index:05d}.mp4"]
            assert element["label"] == original["label"]
            assert element["video"].shape == original["video"].shape
            # H.264 at crf 17: every frame within a few grey levels.
            error = np.abs(
                element["video"].astype(int) - original["video"].astype(int)
            )
            assert error.mean() < 2.0
