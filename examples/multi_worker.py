"""Trains the coherence model on N worker processes of this machine with
`MultiWorkerMirroredStrategy`, restarting the cluster when a worker dies.

The launcher picks free ports on 127.0.0.1, starts one process per worker
with its `TF_CONFIG`, and waits. Every worker trains the same tiny
`MultiWorkerCoherenceModel` on overlapping clips of generated videos; the
clip pipeline is sharded by data (each worker reads every N-th batch
element), and gradients are all-reduced at every step, so the workers keep
identical weights. `BackupAndRestore` backs every worker up at each epoch's
end. As `MultiWorkerMirroredStrategy` requires, a worker that dies (killed,
preempted) takes the cluster down: the launcher stops the others, starts
all workers again, and they resume from the last finished epoch. Each
worker writes its final weights to `WORK_DIR/weights_<index>.npz` and its
events to `WORK_DIR/events.jsonl` (one JSON object a line, with its pid).

    python examples/multi_worker.py                 # 2 workers, ~1 minute
    python examples/multi_worker.py --workers 3 --epochs 4
    python examples/multi_worker.py --help
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

FRAME_SHAPE = (16, 16, 3)


def free_ports(count):
    """`count` distinct ports free on 127.0.0.1 now."""
    sockets = []
    for _ in range(count):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        sockets.append(server)
    ports = [server.getsockname()[1] for server in sockets]
    for server in sockets:
        server.close()
    return ports


def tf_config(ports, index):
    """The `TF_CONFIG` of worker `index` in a loopback cluster."""
    return json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def clip_dataset(videos, batch_size, seed):
    """Batches of overlapping clips of generated videos whose class is
    their brightness, sharded between workers by data."""
    import numpy as np
    import tensorflow as tf

    from keras_cbm import data

    rng = np.random.default_rng(seed)
    labels = np.arange(videos) % 2
    frames = rng.random((videos, 24) + FRAME_SHAPE).astype("float32")
    frames = 0.5 * frames + 0.5 * labels[:, None, None, None, None]
    dataset = tf.data.Dataset.from_tensor_slices(
        {"video": frames, "label": labels}
    )
    clips = data.overlapping_clips(dataset, 3, 4, 8, seed=seed)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return clips.batch(batch_size, drop_remainder=True).with_options(options)


def run_worker(args):
    """Trains on this process's share; `TF_CONFIG` names the worker."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_cbm import models
    from keras_cbm.training import MultiWorkerCoherenceModel

    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    events = os.path.join(args.work_dir, "events.jsonl")

    class Events(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.write(event="epoch_begin")

        def on_train_batch_begin(self, batch, logs=None):
            self.write(event="batch_begin", batch=batch)

        def write(self, **fields):
            line = {"worker": index, "pid": os.getpid(), "epoch": self.epoch}
            # One short append per line: the workers share the file.
            with open(events, "a") as log:
                log.write(json.dumps({**line, **fields}) + "\n")

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        keras.utils.set_random_seed(args.seed)
        trainer = MultiWorkerCoherenceModel(
            models.standalone_classifier(
                2,
                frame_shape=FRAME_SHAPE,
                stage_filters=(args.filters,),
                blocks_per_stage=1,
                # Batch normalisation's moving statistics would be each
                # worker's own: only trainable weights are all-reduced.
                batch_norm=False,
            ),
            coherence_weight=0.5,
        )
        trainer.compile(
            keras.optimizers.Adam(1e-2),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    history = trainer.fit(
        clip_dataset(args.videos, args.batch_size, args.seed),
        epochs=args.epochs,
        callbacks=[
            # Per worker: Keras 3's callback writes on every worker.
            keras.callbacks.BackupAndRestore(
                os.path.join(args.work_dir, "backup", f"worker_{index}")
            ),
            Events(),
        ],
        # The clip pipeline shuffles; Keras' default `shuffle=True` only
        # warns that a dataset ignores it.
        shuffle=False,
        verbose=0,
    )
    np.savez(
        os.path.join(args.work_dir, f"weights_{index}.npz"),
        *trainer.model.get_weights(),
    )
    if index == 0:
        print(json.dumps({k: v[-1] for k, v in history.history.items()}))


def start_cluster(args):
    """Starts every worker of a fresh loopback cluster; returns them."""
    ports = free_ports(args.workers)
    command = [sys.executable, os.path.abspath(__file__), "--worker"]
    command += [f"--{k.replace('_', '-')}={v}" for k, v in _options(args)]
    workers = []
    for index in range(args.workers):
        env = dict(os.environ, TF_CONFIG=tf_config(ports, index))
        workers.append(subprocess.Popen(command, env=env))
    return workers


def _options(args):
    return [(k, v) for k, v in vars(args).items() if k != "worker"]


def stop(workers):
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
        worker.wait()


def launch(args):
    """Runs the cluster until every worker finishes; returns the restarts."""
    restarts = 0
    workers = start_cluster(args)
    try:
        while True:
            codes = [worker.poll() for worker in workers]
            if all(code == 0 for code in codes):
                return restarts
            if any(code not in (None, 0) for code in codes):
                if restarts == args.max_restarts:
                    raise RuntimeError(
                        f"workers exited with {codes} after {restarts} restarts"
                    )
                stop(workers)
                restarts += 1
                print(f"worker exit codes {codes}: restarting the cluster")
                workers = start_cluster(args)
            time.sleep(0.2)
    finally:
        stop(workers)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--workers", type=int, default=2, help="Worker processes.")
    add("--epochs", type=int, default=2, help="Training epochs.")
    add("--videos", type=int, default=16, help="Generated videos.")
    add("--batch-size", type=int, default=4, help="Global batch of videos.")
    add("--filters", type=int, default=4, help="CBM filters.")
    add("--seed", type=int, default=0, help="Seed of weights and clips.")
    add("--max-restarts", type=int, default=3, help="Cluster restarts.")
    add("--work-dir", default=None, help="Outputs; none: a new temp folder.")
    add("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="multi_worker_")
    os.makedirs(args.work_dir, exist_ok=True)
    restarts = launch(args)
    print(f"{args.workers} workers done, {restarts} restarts: {args.work_dir}")


if __name__ == "__main__":
    main()
