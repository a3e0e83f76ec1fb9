import doctest
import importlib

import pytest

MODULES = ["arguments", "clip_inputs", "overlapping_clips", "uniform_clips"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    # The package exports functions named like their modules.
    module = importlib.import_module(f"keras_cbm.data.{name}")
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0
