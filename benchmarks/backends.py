"""Trains the same CoherenceModel on TensorFlow and on JAX, side by side.

Each backend runs in a fresh process: a small standalone deep CBM classifier
(the main job's layout, `--stage-filters` filters) trains with
`CoherenceModel` (coherence weight 1, optional state handover) on
overlapping clips of generated videos for `--steps` steps. The script prints
each backend's time to the first step (tracing and compiling included) and
its median time per later step, and the ratio JAX / TensorFlow.

    python benchmarks/backends.py
    python benchmarks/backends.py --state-handover --steps 10

On a CPU, XLA back-propagates through a recurrent loop far slower than
TensorFlow does (for every Keras RNN alike); the JAX backend is meant for
accelerators.
"""

import argparse
import sys
import time

import harness


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--steps", type=int, default=6, help="Training steps.")
    add("--batch-size", type=int, default=4, help="Videos per batch.")
    add("--clips", type=int, default=3, help="Clips per video.")
    add("--max-length", type=int, default=12, help="Longest clip, steps.")
    add("--stage-filters", type=int, nargs="+", default=[8, 16])
    add("--state-handover", action="store_true")
    add("--backend", help=argparse.SUPPRESS)
    return parser.parse_args()


def train(args):
    """Runs in the backend's own process; prints its timings as JSON."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_cbm import data
    from keras_cbm import models
    from keras_cbm.training import CoherenceModel

    keras.utils.set_random_seed(0)
    job = harness.main_job()
    count = args.batch_size * args.steps
    rng = np.random.default_rng(0)
    frames = rng.random((count, 48) + job["frame_shape"], dtype="float32")
    videos = tf.data.Dataset.from_tensor_slices(
        {"video": frames, "label": rng.integers(0, job["classes"], count)}
    )
    clips = data.overlapping_clips(
        videos, args.clips, args.max_length // 2, args.max_length, seed=0
    ).batch(args.batch_size)
    net = models.standalone_classifier(
        job["classes"],
        frame_shape=job["frame_shape"],
        stage_filters=tuple(args.stage_filters),
    )
    trainer = CoherenceModel(
        net, state_handover="donor" if args.state_handover else None
    )
    trainer.compile(
        keras.optimizers.AdamW(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    times = []
    callback = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: times.append(time.perf_counter())
    )
    start = time.perf_counter()
    trainer.fit(clips, epochs=1, verbose=0, callbacks=[callback])
    steps = np.diff(times)
    harness.emit(
        {
            "first": times[0] - start,
            "step": float(np.median(steps)) if len(steps) else None,
        }
    )


def main():
    args = parse_args()
    if args.backend:
        return train(args)
    results = {}
    for backend in ("tensorflow", "jax"):
        results[backend] = harness.run_fresh(
            __file__,
            ["--backend", backend, *sys.argv[1:]],
            env={"KERAS_BACKEND": backend},
        )
    print(
        f"CoherenceModel, {args.steps} steps of {args.batch_size} videos x "
        f"{args.clips} clips of <= {args.max_length} steps, the main job's "
        "frames, "
        f"state handover {args.state_handover}"
    )
    print("| backend | first step (s) | later steps, median (s) |")
    print("|---|---|---|")
    for backend, result in results.items():
        print(f"| {backend} | {result['first']:.1f} | {result['step']:.3f} |")
    ratios = {
        key: results["jax"][key] / results["tensorflow"][key]
        for key in ("first", "step")
    }
    print(
        f"JAX / TensorFlow: first step {ratios['first']:.2f}, "
        f"later steps {ratios['step']:.2f}"
    )


if __name__ == "__main__":
    main()
