"""The main job on video files (`--videos`) and on a TFDS video dataset of
ucf101's layout (`--tfds`, mocked)."""

import os

import pytest
import tensorflow_datasets as tfds

import keras_cbm.datasets
from tests.examples.examples_smoke_test import ROOT
from tests.examples.examples_smoke_test import TINY_FLAGS
from tests.examples.examples_smoke_test import run_script


@pytest.mark.slow
def test_main_job_trains_on_a_folder_of_video_files(tmp_path):
    directory = str(tmp_path / "videos")
    keras_cbm.datasets.export_videos(
        "motion_order/recognition_small",
        directory,
        data_dir=str(tmp_path / "tfds"),
    )
    stdout = run_script(
        "examples/action_recognition.py",
        f"--videos={directory}",
        # 6 train and 3 test videos leave most class folders empty.
        "--on-error=skip",
        "--frame-size=16",
        f"--output={tmp_path / 'out'}",
        *TINY_FLAGS,
    )
    assert "6 train / 3 test videos (16, 16, 1), 12 classes" in stdout
    assert "Test accuracy (per video, 3 videos)" in stdout


@pytest.mark.slow
def test_main_job_trains_on_a_tfds_dataset_of_ucf101_layout(
    tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "examples"))
    import action_recognition

    with tfds.testing.mock_data(num_examples=4):
        accuracy = action_recognition.run(
            action_recognition.parse_args(
                [
                    "--tfds=ucf101",
                    "--color-mode=rgb",
                    "--frame-size=16",
                    f"--data-dir={tmp_path / 'tfds'}",
                    f"--output={tmp_path / 'out'}",
                    *TINY_FLAGS,
                ]
            )
        )
    assert 0.0 <= accuracy <= 1.0
    assert (tmp_path / "out" / "model.keras").is_file()
