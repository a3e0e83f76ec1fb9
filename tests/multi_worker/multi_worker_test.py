"""Multi-worker training with real worker processes on 127.0.0.1, run
through `examples/multi_worker.py`, and the `MultiWorkerFit` workaround."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cbm.training import multi_worker

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.distribute needs the TensorFlow backend",
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "multi_worker.py")
TIMEOUT = 300


def start(work_dir, *args):
    return subprocess.Popen(
        [sys.executable, EXAMPLE, f"--work-dir={work_dir}", *args],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(launcher):
    output, _ = launcher.communicate(timeout=TIMEOUT)
    assert launcher.returncode == 0, output[-4000:]
    return output


def events(work_dir):
    path = os.path.join(work_dir, "events.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as log:
        return [json.loads(line) for line in log if line.endswith("\n")]


def assert_identical_weights(work_dir, workers):
    weights = [
        np.load(os.path.join(work_dir, f"weights_{i}.npz"))
        for i in range(workers)
    ]
    assert len(weights[0].files) > 0
    for other in weights[1:]:
        assert other.files == weights[0].files
        for key in weights[0].files:
            np.testing.assert_array_equal(other[key], weights[0][key])


@pytest.mark.slow
def test_killed_worker_restarts_and_job_completes(tmp_path):
    launcher = start(tmp_path, "--workers=2", "--epochs=2", "--videos=32")
    deadline = time.monotonic() + TIMEOUT
    victim = None
    while victim is None and launcher.poll() is None:
        assert time.monotonic() < deadline
        for e in events(tmp_path):
            if (e["worker"], e["epoch"], e["event"]) == (1, 1, "batch_begin"):
                victim = e["pid"]
        time.sleep(0.02)
    assert victim is not None, launcher.communicate()[0][-4000:]
    os.kill(victim, signal.SIGKILL)
    output = finish(launcher)

    assert "1 restarts" in output
    assert_identical_weights(tmp_path, 2)
    log = events(tmp_path)
    killed_steps = [
        e for e in log if e["pid"] == victim and e["event"] == "batch_begin"
    ]
    # Killed during epoch 1, before its 8th and last step.
    assert killed_steps[-1]["epoch"] == 1
    assert killed_steps[-1]["batch"] < 7
    for worker in (0, 1):
        pids = list(
            dict.fromkeys(e["pid"] for e in log if e["worker"] == worker)
        )
        assert len(pids) == 2
        first_epoch = [
            e
            for e in log
            if e["pid"] == pids[0]
            and e["epoch"] == 0
            and e["event"] == "batch_begin"
        ]
        # 32 videos in global batches of 4, sharded by data: each worker
        # runs 8 steps of 2 videos an epoch (16 if it read every video).
        assert len(first_epoch) == 8
        resumed = [
            e["epoch"]
            for e in log
            if e["pid"] == pids[1] and e["event"] == "epoch_begin"
        ]
        # BackupAndRestore restored the backup of epoch 0.
        assert resumed == [1]


def test_logs_stay_scalar_outside_multi_worker():
    class Model(multi_worker.MultiWorkerFit, keras.Sequential):
        pass

    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        model = Model([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.ones((4, 2), "float32"), np.ones((4, 1), "float32"))
    ).batch(2)
    history = model.fit(dataset, epochs=2, verbose=0)
    assert np.shape(history.history["loss"]) == (2,)
    assert np.shape(model.evaluate(dataset, verbose=0)) == ()
