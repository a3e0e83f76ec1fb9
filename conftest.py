"""Collects the docstring examples of keras_cbm's modules as tests (what
`--doctest-modules` does, for the package only: the helper scripts under
`tests/` are not modules to import), on the backend of the run."""

import pathlib

import keras
import numpy as np
import pytest
from _pytest.doctest import DoctestModule

PACKAGE = pathlib.Path(__file__).parent / "keras_cbm"

# Modules whose examples need the TensorFlow backend: TensorFlow's own
# parts (`keras_cbm/__init__.py` lists them).
TENSORFLOW_ONLY = (
    "keras_cbm.data",
    "keras_cbm.datasets",
    "keras_cbm.metrics",
    "keras_cbm.serving",
    "keras_cbm.training.multi_worker",
    "keras_cbm.tuning",
)


def pytest_collect_file(file_path, parent):
    if (
        file_path.suffix == ".py"
        and file_path.is_relative_to(PACKAGE)
        and not parent.config.option.doctestmodules
    ):
        return DoctestModule.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == "tensorflow":
        return
    skip = pytest.mark.skip(reason="a TensorFlow backend example")
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.name.startswith(
            TENSORFLOW_ONLY
        ):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def doctest_setup(request, doctest_namespace, tmp_path, monkeypatch):
    """`np` and `keras` for every example; the frame indices of the video
    examples are cached in the test's folder."""
    doctest_namespace.update(np=np, keras=keras)
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.setenv("KERAS_HOME", str(tmp_path))
