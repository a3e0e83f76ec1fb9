"""Fits a tiny CoherenceModel for 3 epochs with `BackupAndRestore` and a
best-only `ModelCheckpoint`, optionally killing its own process with
SIGKILL in the middle of epoch 2.

Usage: python -m tests.training.resumable_fit WORK_DIR [--kill]

Writes `WORK_DIR/final.npz` (the final weights, if the fit ends),
`WORK_DIR/epochs.jsonl` (each finished epoch's loss) and
`WORK_DIR/epoch_<n>.npz` (the weights after epoch n, counted from 1).
"""

import json
import os
import signal
import sys

import keras
import numpy as np

from keras_cbm.training import CoherenceModel
from tests.training.tiny import fixed_clips
from tests.training.tiny import tiny_model


class Record(keras.callbacks.Callback):
    def __init__(self, work_dir, kill):
        super().__init__()
        self.work_dir = work_dir
        self.kill = kill
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.kill and self.epoch == 1 and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_end(self, epoch, logs=None):
        path = os.path.join(self.work_dir, f"epoch_{epoch + 1}.npz")
        np.savez(path, *self.model.model.get_weights())
        with open(os.path.join(self.work_dir, "epochs.jsonl"), "a") as log:
            log.write(json.dumps({"epoch": epoch + 1, **logs}) + "\n")


def main(work_dir, kill):
    trainer = CoherenceModel(tiny_model(), coherence_weight=0.5)
    trainer.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    trainer.fit(
        fixed_clips(batch_size=2, count=6),
        epochs=3,
        callbacks=[
            keras.callbacks.BackupAndRestore(os.path.join(work_dir, "backup")),
            keras.callbacks.ModelCheckpoint(
                os.path.join(work_dir, "best.keras"),
                monitor="loss",
                save_best_only=True,
            ),
            Record(work_dir, kill),
        ],
        verbose=0,
    )
    np.savez(os.path.join(work_dir, "final.npz"), *trainer.get_weights())


if __name__ == "__main__":
    main(sys.argv[1], "--kill" in sys.argv[2:])
