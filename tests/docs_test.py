"""Runs the Python blocks of README.md and of every docs/*.md page.

A page's blocks run in order in one namespace (a block may use what an
earlier one defined), in a temporary working directory. Blocks fenced
```python no-run``` are shown, not run (they need your files or hours). A
page runs on the TensorFlow backend; one whose text holds the line
`<!-- docs_test: any backend -->` runs on the backend of the test run, so
also in the JAX part of `tests/run`.
"""

import pathlib
import re

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
ANY_BACKEND = "<!-- docs_test: any backend -->"
# A fence's info string: "python" and optional words ("no-run").
BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```\s*$", re.M | re.S)


def python_blocks(text):
    """`(first line number, code)` of every block to run."""
    return [
        (text[: match.start()].count("\n") + 2, match.group(2))
        for match in BLOCK.finditer(text)
        if "no-run" not in match.group(1).split()
    ]


def test_blocks_are_found_and_no_run_ones_left_out():
    text = (
        "a\n```python\nx = 1\n```\n"
        "```python no-run\ny = 2\n```\n"
        "```\nz = 3\n```\n"
        "```python\nx += 1\n```\n"
    )
    assert python_blocks(text) == [(3, "x = 1\n"), (12, "x += 1\n")]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    text = page.read_text()
    if ANY_BACKEND not in text and keras.backend.backend() != "tensorflow":
        pytest.skip("a TensorFlow backend page")
    blocks = python_blocks(text)
    if not blocks:
        pytest.skip("no Python block to run")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    keras.utils.set_random_seed(0)
    namespace = {"__name__": f"docs_{page.stem}"}
    for line, code in blocks:
        compiled = compile(code, f"{page.relative_to(ROOT)}:{line}", "exec")
        exec(compiled, namespace)
