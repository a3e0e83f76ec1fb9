"""`examples/polygon_annotation.py` and `studies/polygon_depth.py
--quick` (marked `benchmark`) end to end with tiny flags."""

import json
import os

import pytest

from tests.examples.examples_smoke_test import run_script

TINY = (
    "--config=small",
    "--epochs=1",
    "--batch-size=8",
    "--filters=4",
    "--feature-channels=4",
    "--encoder-filters",
    "4",
    "8",
    "--verbose=0",
)


@pytest.mark.slow
def test_polygon_annotation(tmp_path):
    stdout = run_script(
        "examples/polygon_annotation.py",
        *TINY,
        "--depth=2",
        "--grid-examples=3",
        f"--data-dir={tmp_path / 'data'}",
        f"--output={tmp_path / 'out'}",
    )
    assert "Test mask IoU:" in stdout and "bounding-box baseline:" in stdout
    out = tmp_path / "out"
    assert (out / "model.keras").is_file()
    assert (out / "annotator" / "saved_model.pb").is_file()
    assert (out / "polygons.png").stat().st_size > 0


@pytest.mark.benchmark
def test_polygon_depth_quick(tmp_path):
    stdout = run_script(
        "studies/polygon_depth.py",
        "--quick",
        f"--data-dir={tmp_path / 'data'}",
        f"--results-dir={tmp_path}",
        timeout=300,
    )
    assert "| cbm |" in stdout and "| convlstm |" in stdout
    with open(os.path.join(tmp_path, "polygon_depth.json")) as file:
        results = json.load(file)
    assert sorted(results["values"]["runs"]) == [
        "cbm_1",
        "cbm_2",
        "convlstm_1",
        "convlstm_2",
    ]
    assert results["command"].startswith("python studies/polygon_depth.py")
