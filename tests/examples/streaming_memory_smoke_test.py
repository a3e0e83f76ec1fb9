"""`benchmarks/streaming_memory.py`'s row, in this process on short files
(a few seconds): it writes the videos, streams them through one epoch and
reports the batches and a peak."""

import importlib.util
import os

import pytest

ROOT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)
)


@pytest.fixture
def streaming_memory(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "streaming_memory",
        os.path.join(ROOT, "benchmarks", "streaming_memory.py"),
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_row_streams_the_files_it_wrote(streaming_memory, tmp_path):
    folder = streaming_memory.write_videos(str(tmp_path / "videos"), 40, 2)
    assert sorted(os.listdir(os.path.join(folder, "bars"))) == [
        "0.mp4",
        "1.mp4",
    ]
    result = streaming_memory.row(folder, videos=2, chunk=16, epochs=1)
    # 40 frames in chunks of 16: 3 batches of 2 rows.
    assert result["batches"] == 3
    assert result["total"] >= result["peak"] >= 0
