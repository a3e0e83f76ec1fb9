"""Each example, and the studies `claims.py`, `coherence_weight.py`,
`long_videos.py`, `depth_gradients.py` and `temporal_reach.py` with
`--quick` or tiny flags (marked `benchmark`: `pytest -m benchmark`), end to
end (each within a minute on 2 CPU cores); a study writes its results
file."""

import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
ROOT = os.path.abspath(ROOT)


def run_script(path, *args, timeout=180, quiet=False, backend=None):
    """The script's stdout; `quiet`: it must print no Python warning;
    `backend`: Keras' backend, else the environment's."""
    if path != "-c":
        path = os.path.join(ROOT, path)
    result = subprocess.run(
        [sys.executable, path, *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            **({"KERAS_BACKEND": backend} if backend else {}),
        },
        cwd=ROOT,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    if quiet:
        assert "Warning:" not in result.stderr, result.stderr[-3000:]
    return result.stdout


def study_results(folder, name):
    """The `values` of the results file `<folder>/<name>.json` that
    `studies/<name>.py` wrote."""
    with open(os.path.join(folder, f"{name}.json")) as file:
        results = json.load(file)
    assert results["command"].startswith(f"python studies/{name}.py")
    return results["values"]


# The main job's smallest training: tiny clips, model and epoch.
TINY_FLAGS = (
    "--frame-stride=2",
    "--clips-per-video=3",
    "--min-length=4",
    "--max-length=8",
    "--min-overlap=1",
    "--stage-filters",
    "4",
    "--epochs=1",
    "--batch-size=4",
    "--verbose=0",
)


def tiny_classifier_flags(tmp_path, config):
    return (
        f"--config={config}",
        f"--data-dir={tmp_path / 'data'}",
        f"--output={tmp_path / 'out'}",
    ) + TINY_FLAGS


@pytest.mark.parametrize(
    "name",
    sorted(
        name[: -len(".py")]
        for name in os.listdir(os.path.join(ROOT, "examples"))
        if name.endswith(".py")
    ),
)
def test_help(name):
    """`--help` answers before Keras or TensorFlow load, and states the
    default of every flag once."""
    path = os.path.join(ROOT, "examples", f"{name}.py")
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{path!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_path({path!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('loaded:', sorted({'keras', 'tensorflow'} & set(sys.modules)))\n"
    )
    stdout = run_script("-c", probe)
    assert "usage:" in stdout
    assert "loaded: []" in stdout
    options = stdout.split("options:\n")[1].split("\n  -")[2:]  # not -h
    assert options
    for option in options:
        assert " ".join(option.split()).count("(default:") == 1, option


@pytest.mark.slow
def test_moving_objects_trains_and_saves(tmp_path):
    stdout = run_script(
        "examples/moving_objects.py",
        "--train-clips=96",
        "--test-clips=32",
        "--epochs=1",
        f"--output={tmp_path}",
    )
    assert "test accuracy" in stdout
    assert (tmp_path / "model.keras").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, config, backend",
    [
        # The main job as a JAX user runs it: it trains on JAX and exports
        # its SavedModel in a TensorFlow process.
        ("action_recognition", "recognition_small", "jax"),
        ("anticipation", "anticipation_small", "tensorflow"),
    ],
)
def test_classifier_examples_train_evaluate_and_save(
    tmp_path, name, config, backend
):
    # The main job prints no warning of its own making (TensorFlow's and
    # TFDS' logging lines are not Python warnings).
    stdout = run_script(
        f"examples/{name}.py",
        *tiny_classifier_flags(tmp_path, config),
        backend=backend,
        quiet=True,
        timeout=300,
    )
    assert "Test accuracy (per video, 3 videos)" in stdout
    assert "chance: 0.083" in stdout
    assert ("(exported under TensorFlow)" in stdout) == (backend == "jax")
    out = tmp_path / "out"
    with zipfile.ZipFile(out / "model.keras") as saved:
        saved_config = json.loads(saved.read("config.json"))
    # The default temporal unit is the gated one (the paper's T does not
    # learn the motions' order in the job's budget).
    assert '"temporal_gate": "recurrent"' in json.dumps(saved_config)
    assert (out / "training_curves.png").stat().st_size > 1000
    assert (out / "saved_model" / "saved_model.pb").is_file()
    if backend == "tensorflow":
        # The printed accuracy (the last epoch's validation) is the saved
        # model's on the test windows.
        printed = float(re.search(r"Test accuracy .*?: ([\d.]+)", stdout)[1])
        assert evaluated_accuracy(tmp_path, name, config) == pytest.approx(
            printed, abs=1e-3
        )


def evaluated_accuracy(tmp_path, name, config):
    """The saved `.keras` trainer's accuracy on an example's test windows."""
    import keras

    sys.path.insert(0, os.path.join(ROOT, "examples"))
    from action_recognition import clip_datasets
    from action_recognition import load_splits
    from action_recognition import parse_args

    args = parse_args(list(tiny_classifier_flags(tmp_path, config)))
    _, windows = clip_datasets(args, load_splits(args, config))
    trainer = keras.saving.load_model(tmp_path / "out" / "model.keras")
    return trainer.evaluate(windows, return_dict=True, verbose=0)["accuracy"]


@pytest.mark.slow
def test_future_frame_prediction(tmp_path):
    stdout = run_script(
        "examples/future_frame_prediction.py",
        "--config=small",
        f"--data-dir={tmp_path / 'data'}",
        f"--output={tmp_path / 'out'}",
        "--depth=2",
        "--filters=4",
        "--encoder-filters",
        "4",
        "8",
        "--epochs=1",
        "--batch-size=3",
        "--verbose=0",
    )
    assert "| +2 |" in stdout and "mean PSNR" in stdout
    out = tmp_path / "out"
    assert (out / "model.keras").is_file()
    assert (out / "predictions.png").stat().st_size > 1000
    assert (out / "scores.md").is_file()


@pytest.mark.slow
def test_serving(tmp_path):
    stdout = run_script(
        "examples/serving.py",
        "--videos=4",
        "--frames=8",
        "--epochs=1",
        f"--output={tmp_path / 'served'}",
    )
    assert stdout.count("classify") == 2 and "mean of 8 steps" in stdout
    assert (tmp_path / "served" / "saved_model.pb").is_file()


# Hyperband only: `tests/tuning/cbm_hypermodel_test.py` runs a random search.
@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["hyperband"])
def test_tuning(tmp_path, tuner):
    stdout = run_script(
        "examples/tuning.py",
        f"--tuner={tuner}",
        "--trials=2",
        "--epochs=1",
        "--max-epochs=2",
        "--videos=4",
        "--max-depth=2",
        f"--directory={tmp_path}",
    )
    assert "best hyperparameters: {'depth': 2" in stdout
    assert "best model: validation loss" in stdout
    assert (tmp_path / tuner).is_dir()


@pytest.mark.benchmark
def test_claims_quick(tmp_path):
    stdout = run_script(
        "studies/claims.py",
        "--quick",
        "--rows",
        "baseline",
        "deep-convlstm",
        f"--data-dir={tmp_path / 'data'}",
        f"--output={tmp_path / 'out'}",
        f"--results-dir={tmp_path}",
        timeout=300,
    )
    # Each row's first seed trains at both rates; the table keeps the one
    # with the best validation accuracy (the first of equals).
    runs = re.findall(
        r"seed 0  (.+?) +lr (\S+)  validation accuracy (\S+)", stdout
    )
    table = re.findall(r"^\| \S+ \| (.+?) \| (\S+) \| .+±", stdout, re.M)
    assert [name for name, _ in table] == [
        "single-frame (2-layer CBM, 1-frame clips)",
        "2-layer ConvLSTM, clips + coherence",
    ]
    for name, chosen in table:
        tried = [(rate, float(acc)) for run, rate, acc in runs if run == name]
        assert [rate for rate, _ in tried] == ["0.001", "0.003"]
        assert chosen == max(tried, key=lambda tried: tried[1])[0]
    assert (tmp_path / "out" / "claims.md").is_file()
    results = study_results(tmp_path, "claims")["results"]
    assert sorted(results) == ["baseline", "deep-convlstm"]


@pytest.mark.benchmark
def test_coherence_weight_quick(tmp_path):
    stdout = run_script(
        "studies/coherence_weight.py",
        "--quick",
        f"--data-dir={tmp_path / 'data'}",
        f"--results-dir={tmp_path}",
        timeout=300,
    )
    rows = [line for line in stdout.splitlines() if line.startswith("| 0")]
    rows += [line for line in stdout.splitlines() if line.startswith("| 80")]
    assert len(rows) == 2 and all("±" in row for row in rows)
    results = study_results(tmp_path, "coherence_weight")
    assert f"{results['0']['accuracy_mean']:.3f}" in rows[0]


@pytest.mark.benchmark
def test_long_videos_quick(tmp_path):
    stdout = run_script(
        "studies/long_videos.py",
        "--quick",
        f"--results-dir={tmp_path}",
        timeout=300,
    )
    rows = [line for line in stdout.splitlines() if line.startswith("| ")]
    cells = [row.split(" | ")[:2] for row in rows[1:]]
    assert cells == [
        [f"| {scheme}", targets]
        for scheme in (
            "full video",
            "truncated, last 8",
            "TBPTT, chunks of 8",
            "clips, donor handover",
            "clips, whole past",
        )
        for targets in ("all", "knowable")
    ]
    rows = study_results(tmp_path, "long_videos")["rows"]
    assert len(rows) == len(cells) and "donor:knowable" in rows


@pytest.mark.benchmark
def test_depth_gradients_tiny(tmp_path):
    stdout = run_script(
        "studies/depth_gradients.py",
        "--depth=5",
        "--filters=4",
        "--channels=4",
        "--steps=2",
        "--seeds=1",
        f"--results-dir={tmp_path}",
        timeout=300,
    )
    results = study_results(tmp_path, "depth_gradients")
    ratio = results["cbm"]["first_layer_over_convlstm"]
    assert f"first-layer gradient norm {ratio:.3g}" in stdout


@pytest.mark.benchmark
def test_temporal_reach_tiny(tmp_path):
    stdout = run_script(
        "studies/temporal_reach.py",
        "--depths=1",
        "--videos=2",
        "--filters=4",
        f"--results-dir={tmp_path}",
        timeout=300,
    )
    results = study_results(tmp_path, "temporal_reach")
    assert sorted(results["rows"]) == ["cbm:1", "convlstm:1"]
    assert f"{results['rows']['cbm:1']['last_frame_norm']:.2e}" in stdout
