"""A streaming `fit` killed by SIGKILL mid-epoch and started again ends
with the weights (and rows' states) of one never stopped: the restored
epoch skips the batches its backup had trained, and later epochs are
whole."""

import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
from keras.src import testing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def fit_process(work_dir, *flags):
    return subprocess.run(
        [sys.executable, "-m", "tests.training.streaming_fit", work_dir]
        + list(flags),
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
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def epochs(work_dir):
    with open(os.path.join(work_dir, "epochs.jsonl")) as log:
        return [json.loads(line) for line in log]


class StreamingResumeTest(testing.TestCase):
    def test_killed_fit_resumes_to_the_uninterrupted_weights(self):
        straight = os.path.join(self.get_temp_dir(), "straight")
        killed = os.path.join(self.get_temp_dir(), "killed")
        os.makedirs(straight)
        os.makedirs(killed)
        done = fit_process(straight)
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])

        first = fit_process(killed, "--kill")
        self.assertEqual(first.returncode, -signal.SIGKILL)
        self.assertFalse(os.path.exists(os.path.join(killed, "final.npz")))
        second = fit_process(killed)
        self.assertEqual(second.returncode, 0, second.stderr[-2000:])

        for got, expected in zip(
            arrays(os.path.join(killed, "final.npz")),
            arrays(os.path.join(straight, "final.npz")),
            strict=True,
        ):
            self.assertAllClose(got, expected, atol=1e-6)
        self.assertEqual(
            [(e["epoch"], e["batches"]) for e in epochs(straight)],
            [(1, 8), (2, 8)],
        )
        # Killed after 5 batches of epoch 1, its backup after 4: the
        # restarted epoch trains the other 4, epoch 2 all 8.
        self.assertEqual(
            [(e["epoch"], e["batches"]) for e in epochs(killed)],
            [(1, 4), (2, 8)],
        )
        self.assertAllClose(
            epochs(killed)[-1]["loss"], epochs(straight)[-1]["loss"], atol=1e-6
        )
