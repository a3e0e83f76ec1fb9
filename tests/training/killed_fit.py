"""Runs a fit script three times in real processes: once straight, once
killed by SIGKILL mid-fit, once restarted after the kill; what the resume
tests share."""

import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def fit_process(module, work_dir, *flags):
    """Runs `python -m module work_dir *flags` on this run's backend."""
    return subprocess.run(
        [sys.executable, "-m", module, work_dir, *flags],
        cwd=ROOT,
        env=dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="2",
            KERAS_BACKEND=keras.backend.backend(),
        ),
        capture_output=True,
        timeout=300,
    )


def arrays(path):
    """The arrays of an `.npz` file written by `np.savez(path, *arrays)`."""
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def epochs(work_dir):
    """The finished epochs' records of `work_dir/epochs.jsonl`."""
    with open(os.path.join(work_dir, "epochs.jsonl")) as log:
        return [json.loads(line) for line in log]


def straight_and_resumed(test, module, work_dir):
    """Fits straight in `work_dir/straight`; killed (`--kill`) and then
    restarted in `work_dir/killed`. Asserts the kill and the completions,
    and that both end with the same final weights (1e-6).

    Returns:
        `(straight, killed)`, the two work directories.
    """
    straight = os.path.join(work_dir, "straight")
    killed = os.path.join(work_dir, "killed")
    os.makedirs(straight)
    os.makedirs(killed)
    done = fit_process(module, straight)
    test.assertEqual(done.returncode, 0, done.stderr[-2000:])
    first = fit_process(module, killed, "--kill")
    test.assertEqual(first.returncode, -signal.SIGKILL)
    test.assertFalse(os.path.exists(os.path.join(killed, "final.npz")))
    second = fit_process(module, killed)
    test.assertEqual(second.returncode, 0, second.stderr[-2000:])
    for got, expected in zip(
        arrays(os.path.join(killed, "final.npz")),
        arrays(os.path.join(straight, "final.npz")),
        strict=True,
    ):
        test.assertAllClose(got, expected, atol=1e-6)
    return straight, killed
