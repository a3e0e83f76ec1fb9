import doctest
import importlib

import pytest

MODULES = [
    "arguments",
    "clip_inputs",
    "container_pool",
    "decode_errors",
    "decoding_processes",
    "directory_options",
    "file_split",
    "overlapping_clips",
    "uniform_clips",
    "video_directory",
    "video_index",
    "video_listing",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    # Frame indices of the examples' videos are cached in the test's folder.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    module = importlib.import_module(f"keras_cbm.data.{name}")
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0
