"""Fits a tiny `StreamingBPTT` for 2 epochs over a stream of 5 videos (8
batches an epoch) with `BackupAndRestore(save_freq=2)`, optionally killing
its own process with SIGKILL after batch 5 of epoch 1 (its backup is from
after batch 4).

Usage: python -m tests.training.streaming_fit WORK_DIR [--kill]

Writes `WORK_DIR/final.npz` (every weight at the end, the rows' states
too, if the fit ends), `WORK_DIR/epoch_<n>.npz` (the same after epoch n,
counted from 1) and `WORK_DIR/epochs.jsonl` (each finished epoch's batches
trained in this process, and its loss).
"""

import json
import os
import signal
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_cbm.data import streaming_chunks
from keras_cbm.layers import ConvCBM2D
from keras_cbm.training import StreamingBPTT

KILL_EPOCH, KILL_BATCH = 0, 4


def stream():
    rng = np.random.default_rng(0)
    videos = None
    for index, length in enumerate((8, 6, 10, 4, 6)):
        video = tf.data.Dataset.from_tensors(
            {
                "video": rng.random((length, 4, 4, 1)).astype("float32"),
                "label": index % 2,
            }
        )
        videos = video if videos is None else videos.concatenate(video)
    return streaming_chunks(videos, batch_size=2, chunk_length=2)


class Record(keras.callbacks.Callback):
    def __init__(self, work_dir, kill):
        super().__init__()
        self.work_dir = work_dir
        self.kill = kill
        self.epoch = self.batches = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.batches = epoch, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.kill and (self.epoch, batch) == (KILL_EPOCH, KILL_BATCH):
            os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_end(self, epoch, logs=None):
        path = os.path.join(self.work_dir, f"epoch_{epoch + 1}.npz")
        np.savez(path, *self.model.get_weights())
        with open(os.path.join(self.work_dir, "epochs.jsonl"), "a") as log:
            record = {"epoch": epoch + 1, "batches": self.batches, **logs}
            log.write(json.dumps(record) + "\n")


def main(work_dir, kill):
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((None, 4, 4, 1)),
            ConvCBM2D(2, 3, padding="same", return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D()),
            keras.layers.Dense(2),
        ]
    )
    trainer = StreamingBPTT(net)
    trainer.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    trainer.fit(
        stream(),
        epochs=2,
        callbacks=[
            keras.callbacks.BackupAndRestore(
                os.path.join(work_dir, "backup"), save_freq=2
            ),
            Record(work_dir, kill),
        ],
        verbose=0,
    )
    np.savez(os.path.join(work_dir, "final.npz"), *trainer.get_weights())


if __name__ == "__main__":
    main(sys.argv[1], "--kill" in sys.argv[2:])
