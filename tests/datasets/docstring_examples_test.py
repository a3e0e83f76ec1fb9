import doctest
import importlib

import pytest

MODULES = ["export_videos", "motion_order", "moving_digits", "pipelines"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"keras_cbm.datasets.{name}")
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0
