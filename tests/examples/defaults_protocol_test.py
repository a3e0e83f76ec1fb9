"""`studies/defaults.py`: the choice by the worst cell, the runs shared
by candidates that differ only in batch normalisation, and `--quick` end
to end (a benchmark smoke test, a few minutes on 2 CPU cores)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)
)
sys.path.insert(0, os.path.join(ROOT, "studies"))

import defaults  # noqa: E402


def runs_of(scores):
    """Results-file runs from `{(candidate, cell): [score per seed]}`."""
    return {
        defaults.run_key(candidate, cell, seed): {"score": score}
        for (candidate, cell), values in scores.items()
        for seed, score in enumerate(values)
    }


def test_the_default_is_chosen_by_its_worst_cell():
    cells = ["main_job", "memory:order:1:pooled"]
    # tanh-add is best on average, but sigmoid-add falls behind by less
    # where it falls behind.
    runs = runs_of(
        {
            ("tanh-add", "main_job"): [0.60, 0.62],
            ("tanh-add", "memory:order:1:pooled"): [1.0, 1.0],
            ("sigmoid-add", "main_job"): [0.90, 0.90],
            ("sigmoid-add", "memory:order:1:pooled"): [0.85, 0.85],
        }
    )
    summary = defaults.summarise(runs, ["tanh-add", "sigmoid-add"], cells)
    assert summary["chosen"] == "sigmoid-add"
    assert summary["worst"]["tanh-add"]["cell"] == "main_job"
    # (0.90 - 0.61) / (0.90 - 1/12) of the main job's room.
    assert summary["worst"]["tanh-add"]["shortfall"] == pytest.approx(
        0.29 / (0.90 - 1 / 12)
    )
    assert summary["worst"]["sigmoid-add"]["shortfall"] == pytest.approx(0.3)
    assert summary["table"]["tanh-add"]["main_job"]["mean"] == pytest.approx(
        0.61
    )
    assert summary["table"]["tanh-add"]["main_job"]["seeds"] == 2


def test_a_candidate_missing_a_cell_is_not_chosen():
    runs = runs_of(
        {
            ("tanh-add", "main_job"): [0.9],
            ("sigmoid-add", "main_job"): [0.5],
            ("sigmoid-add", "prediction"): [1.0],
        }
    )
    summary = defaults.summarise(
        runs, ["tanh-add", "sigmoid-add"], ["main_job", "prediction"]
    )
    assert summary["chosen"] == "sigmoid-add"
    assert "tanh-add" not in summary["worst"]


def test_runs_of_other_cells_do_not_make_a_candidate_complete():
    runs = runs_of(
        {
            ("tanh-add", "main_job"): [0.9],
            ("tanh-add", "claim1:5"): [0.6],
            ("sigmoid-add", "main_job"): [0.8],
            ("sigmoid-add", "claim1:15"): [0.5],
        }
    )
    summary = defaults.summarise(
        runs, ["tanh-add", "sigmoid-add"], ["claim1:5", "claim1:15"]
    )
    assert summary["worst"] == {}
    assert summary["chosen"] is None


def test_builder_variants_share_the_runs_of_the_other_cells():
    assert defaults.run_key("tanh-add-no-bn", "memory:order:15:flat", 2) == (
        "tanh-add|memory:order:15:flat|2"
    )
    assert defaults.run_key("tanh-add-reference-init", "prediction", 1) == (
        "tanh-add|prediction|1"
    )
    assert defaults.run_key("tanh-add-reference-init", "claim1:5", 1) == (
        "tanh-add-reference-init|claim1:5|1"
    )
    # The predictor takes the cell's flags, not the builders'.
    assert defaults.cell_flags("tanh-add-no-bn", builder=False) == []
    assert defaults.cell_flags("tanh-add-orthogonal") == [
        "--kernel-initializer",
        "reference",
        "--recurrent-initializer",
        "orthogonal",
    ]
    assert defaults.run_key("tanh-add-no-bn", "prediction", 0) == (
        "tanh-add|prediction|0"
    )
    assert defaults.run_key("tanh-add-no-bn", "main_job", 0) == (
        "tanh-add-no-bn|main_job|0"
    )
    assert defaults.cell_flags("sigmoid-multiply-no-bn") == [
        "--recurrent-activation",
        "sigmoid",
        "--merge",
        "multiply",
        "--batch-norm=false",
    ]


def test_protocols_side_by_side_keep_each_others_runs(tmp_path):
    path = str(tmp_path / "defaults.json")
    args = defaults.parse_args(["--stage=full", "--candidates", "tanh-add"])
    first = {"tanh-add|main_job|0": {"score": 0.9, "seconds": 1.0}}
    second = {"tanh-add|claim1:5|0": {"score": 0.5, "seconds": 1.0}}
    # Both started from the empty file; each merges its run into it.
    defaults.record(path, args, "python studies/defaults.py --a", first)
    runs, commands, _ = defaults.record(
        path, args, "python studies/defaults.py --b", second
    )
    assert runs == {**first, **second}
    assert commands == [
        "python studies/defaults.py --a",
        "python studies/defaults.py --b",
    ]
    with open(path) as file:
        assert json.load(file)["values"]["runs"] == runs


@pytest.mark.benchmark
def test_quick_run_writes_its_results_file(tmp_path):
    results = tmp_path / "defaults.json"
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "studies", "defaults.py"),
            "--quick",
            f"--results={results}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT},
        cwd=ROOT,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads(results.read_text())
    assert written["command"].startswith("python studies/defaults.py")
    assert {"date", "versions"} <= set(written)
    values = written["values"]
    assert set(values["runs"]) == {
        f"{candidate}|{cell}|0"
        for candidate in ("tanh-add", "sigmoid-multiply")
        for cell in ("main_job", "memory:order:1:pooled", "claim1:5")
    }
    assert values["chosen"] in ("tanh-add", "sigmoid-multiply")
    assert f"Chosen by the worst cell: {values['chosen']}" in result.stdout


def test_reference_initializer_flag():
    from action_recognition import cell_arguments
    from action_recognition import parse_args

    from keras_cbm.layers.deep_cbm import REFERENCE_INITIALIZER

    args = parse_args(
        ["--kernel-initializer=reference", "--recurrent-initializer=orthogonal"]
    )
    assert cell_arguments(args) == {
        "kernel_initializer": REFERENCE_INITIALIZER,
        "recurrent_initializer": "orthogonal",
    }
