"""`studies/memory_tasks.py --quick` end to end (about a minute on 2
CPU cores)."""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)
)


@pytest.mark.benchmark
def test_quick_run_prints_one_row_per_model_depth_and_readout(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "studies", "memory_tasks.py"),
            "--quick",
            f"--results-dir={tmp_path}",
            "--models",
            "cbm",
            "convlstm",
            "cbm-leaky",
            "cbm-gated-add-tanhT",
            "cbm-rgated-add-tanhT",
        ],
        capture_output=True,
        text=True,
        # This checkout's package, whatever else is installed.
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT},
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("| ") and "readout" not in line
    ]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table]
    assert [row[:3] for row in rows] == [
        [model, "1", readout]
        for model in (
            "cbm",
            "convlstm",
            "cbm-leaky",
            "cbm-gated-add-tanhT",
            "cbm-rgated-add-tanhT",
        )
        for readout in ("pooled", "flat")
    ]
    for row in rows:
        # Two tasks, each "mean ± std (learning rate)" over 8 test videos.
        assert len(row) == 5
        for cell in row[3:]:
            mean, std, rate = re.fullmatch(
                r"(\d\.\d\d) ± (\d\.\d\d) \((\S+)\)", cell
            ).groups()
            # A multiple of 1/8, printed to 2 decimals.
            assert abs(float(mean) * 8 - round(float(mean) * 8)) < 0.041
            assert float(std) == 0.0  # one seed
            assert float(rate) == 0.003
    with open(os.path.join(tmp_path, "memory_tasks.json")) as file:
        results = json.load(file)
    assert results["command"].startswith("python studies/memory_tasks.py")
    assert len(results["values"]) == 10 * 2  # rows x tasks
    assert results["values"]["cbm:1:pooled:order"]["learning_rate"] == 0.003
