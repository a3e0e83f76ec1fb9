import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name, *args):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", name), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=ROOT,
    )


@pytest.mark.slow
def test_moving_objects_trains_and_saves(tmp_path):
    result = run_example(
        "moving_objects.py",
        "--train-clips=96",
        "--test-clips=32",
        "--epochs=1",
        f"--output={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test accuracy" in result.stdout
    assert (tmp_path / "model.keras").is_file()


def test_examples_have_help():
    for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        if name.endswith(".py"):
            result = run_example(name, "--help")
            assert result.returncode == 0, (name, result.stderr[-2000:])
            assert "usage:" in result.stdout
