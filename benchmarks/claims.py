"""The paper's three claims at small scale, side by side in one run.

On `motion_order/recognition` (12 classes, chance 1/12; the label is the
order of two motions half a video apart), every row trains the same kind
of per-frame classifier for the same budget (`--steps` optimizer steps of
`--batch-size` videos, Adam) with `--seeds` seeds, evaluates it per video
on the test split, and reports mean ± std accuracy:

* single-frame baseline: the 5-layer CBM classifier trained and evaluated
  on clips of ONE frame (no recurrence can act), its per-frame predictions
  averaged over every frame of a test video. Near chance: the task needs
  time.
* claim (1), depth: 1-, 5- and 15-layer CBM stacks (`DeepCBM`: a stride-2
  stem layer and a max-pool, then residual blocks of two layers, 16
  filters), clip training with the overlap coherence loss.
* claim (2), CBM vs ConvLSTM: the 15-layer layout with `ConvLSTM2D` layers.
* claim (3), training scheme, with the 15-layer CBM: overlapping random
  clips with the coherence loss (the claim (1) row), the same clips
  without it (weight 0), and full-video back-propagation through time
  (one clip per video holding every step). "memory" is the peak resident
  memory during training above what the process held before it (RSS
  sampled every 5 ms; large buffers are returned to the system when freed,
  so each row is measured on its own), the largest over the seeds.

Clip models are evaluated on sliding windows of their longest clip
(stride half a window) whose predictions average per video; the
full-video model on the whole video; the single-frame model on every
frame. Frames are read every `--frame-stride` frames. The table goes to
stdout and to `<output>/claims.md` (with the command), the raw numbers to
`claims.json`.

    python benchmarks/claims.py              # <= 2 hours on 2 CPU cores
    python benchmarks/claims.py --quick      # tiny: 1 seed, ~45 s
"""

import os
import sys

# Large allocations go back to the system when freed, so that the RSS peak
# of one row is not hidden by memory a previous row left in the heap.
if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import argparse  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

import keras_cbm.datasets  # noqa: E402  (registers the builders)
from keras_cbm import data  # noqa: E402
from keras_cbm import training  # noqa: E402
from keras_cbm.layers import DeepCBM  # noqa: E402
from keras_cbm.layers.deep_cbm import REFERENCE_INITIALIZER  # noqa: E402
from keras_cbm.models.classification_head import classification_head  # noqa: E402

NUM_CLASSES = len(keras_cbm.datasets.MOTION_ORDER_CLASSES)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="Tiny version for smoke tests.")
    add("--config", default="recognition", help="motion_order config.")
    add("--data-dir", default="outputs/tensorflow_datasets")
    add("--seeds", type=int, default=3)
    add("--depths", type=int, nargs=3, default=[1, 5, 15])
    add("--filters", type=int, default=16)
    add("--steps", type=int, default=300, help="Optimizer steps per model.")
    add("--batch-size", type=int, default=16, help="Videos per step.")
    add("--learning-rate", type=float, default=3e-3)
    add("--frame-stride", type=int, default=4)
    add("--clips-per-video", type=int, default=2)
    add("--min-length", type=int, default=8, help="Shortest clip, steps.")
    add("--max-length", type=int, default=16, help="Longest clip, steps.")
    add("--coherence-weight", type=float, default=0.8)
    add("--test-videos", type=int, default=None, help="Default: all.")
    add("--output", default="outputs/claims")
    args = parser.parse_args(argv)
    if args.quick:
        args.config = "recognition_small"
        args.seeds = 1
        args.depths = [1, 2, 2]
        args.filters = 4
        args.steps = 2
        args.batch_size = 3
        args.frame_stride = 2
        args.min_length = 3
        args.max_length = 6
    return args


def classifier(depth, filters, cell, frame_shape):
    """Per-frame logits from a `DeepCBM` stack of `cell` layers."""
    cbm = cell == "cbm"
    frames = keras.Input((None,) + frame_shape, name="frames")
    features = DeepCBM(
        depth=depth,
        filters=filters,
        kernel_size=3,
        strides=[2] + [1] * (depth - 1),
        jump_stride=2 if depth >= 2 else None,
        pool_after=(1,),
        activation="relu" if cbm else "tanh",
        batch_norm=True,
        cell=cell,
        kernel_initializer=REFERENCE_INITIALIZER if cbm else "glorot_uniform",
        recurrent_initializer=REFERENCE_INITIALIZER if cbm else "orthogonal",
        name="deep_cbm",
    )(frames)
    logits = classification_head(NUM_CLASSES)(features)
    return keras.Model(frames, logits, name=f"{cell}{depth}")


def rows(args):
    """`(name, claim, settings)` of every row, in table order."""
    shallow, middle, deep = args.depths
    weight = args.coherence_weight

    def row(depth, cell="cbm", scheme="clips", coherence=weight):
        return {
            "depth": depth,
            "cell": cell,
            "scheme": scheme,
            "coherence": coherence,
        }

    return [
        (
            f"single-frame ({middle}-layer CBM, 1-frame clips)",
            "baseline",
            row(middle, scheme="single", coherence=0.0),
        ),
        (f"{shallow}-layer CBM", "(1)", row(shallow)),
        (f"{middle}-layer CBM", "(1)", row(middle)),
        (f"{deep}-layer CBM, clips + coherence", "(1) (2) (3)", row(deep)),
        (
            f"{deep}-layer ConvLSTM, clips + coherence",
            "(2)",
            row(deep, cell="convlstm"),
        ),
        (
            f"{deep}-layer CBM, clips, no coherence",
            "(3)",
            row(deep, coherence=0.0),
        ),
        (
            f"{deep}-layer CBM, full video",
            "(3)",
            row(deep, scheme="full", coherence=0.0),
        ),
    ]


def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak RSS above the RSS at entry, sampled in a thread."""

    def __enter__(self):
        self.base = self.peak = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, resident_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())
        self.bytes = self.peak - self.base


def pipelines(args, settings, train, test, max_steps, seed):
    """Training batches and per-video test windows of a row's scheme."""
    scheme = settings["scheme"]
    if scheme == "single":
        count, low, high, window = 4, 1, 1, 1
    elif scheme == "full":
        count, low, high, window = 1, max_steps, max_steps, max_steps
    else:
        count = args.clips_per_video
        low, high, window = args.min_length, args.max_length, args.max_length
    overlap = min(4, low - 1)
    train_batches = (
        data.overlapping_clips(
            train.shuffle(4096, seed=seed).repeat(),
            count,
            low,
            high,
            min_overlap=overlap,
            frame_stride=args.frame_stride,
            seed=seed,
        )
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    test_windows = data.padded_window_batch(
        data.uniform_clips(
            test,
            window,
            max(window // 2, 1),
            frame_stride=args.frame_stride,
        ),
        args.batch_size,
    ).prefetch(tf.data.AUTOTUNE)
    return train_batches, test_windows


def run_row(args, settings, train, test, frame_shape, max_steps, seed):
    keras.utils.set_random_seed(seed)
    net = classifier(
        settings["depth"], args.filters, settings["cell"], frame_shape
    )
    trainer = training.CoherenceModel(
        net, coherence_weight=settings["coherence"]
    )
    trainer.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipvalue=5.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train_batches, test_windows = pipelines(
        args, settings, train, test, max_steps, seed
    )
    start = time.perf_counter()
    with PeakMemory() as memory:
        history = trainer.fit(
            train_batches, epochs=1, steps_per_epoch=args.steps, verbose=0
        )
    seconds = time.perf_counter() - start
    accuracy = trainer.evaluate(test_windows, return_dict=True, verbose=0)[
        "accuracy"
    ]
    return {
        "accuracy": float(accuracy),
        "memory_mb": memory.bytes / 2**20,
        "train_seconds": seconds,
        # Means over the training steps (unweighted losses).
        "task_loss": float(history.history["task_loss"][-1]),
        "coherence_loss": float(history.history["coherence_loss"][-1]),
    }


def table(args, results):
    lines = [
        "| claim | model | accuracy (mean ± std) | peak train memory | "
        "train time |",
        "|---|---|---|---|---|",
    ]
    for name, claim, _ in rows(args):
        runs = results.get(name, [])
        if not runs:
            continue
        acc = np.array([run["accuracy"] for run in runs])
        memory = max(run["memory_mb"] for run in runs)
        seconds = np.mean([run["train_seconds"] for run in runs])
        lines.append(
            f"| {claim} | {name} | {acc.mean():.3f} ± {acc.std():.3f} "
            f"(n={len(acc)}) | {memory:.0f} MB | {seconds:.0f} s |"
        )
    lines.append(f"\nChance: {1 / NUM_CLASSES:.3f}.")
    return "\n".join(lines)


def motion_order(args):
    """`(config, train, test, frame_shape, max_steps)`: the builder config,
    the cached splits, the frame shape and the most steps of a video."""
    builder = tfds.builder(
        f"motion_order/{args.config}", data_dir=args.data_dir
    )
    builder.download_and_prepare()
    config = builder.builder_config
    frame_shape = (config.frame_size, config.frame_size, 1)
    max_steps = -(-config.max_frames // args.frame_stride)

    def keep(element):
        return {"video": element["video"], "label": element["label"]}

    train = builder.as_dataset(split="train").map(keep).cache()
    test = builder.as_dataset(split="test").map(keep)
    if args.test_videos is not None:
        test = test.take(args.test_videos)
    return config, train, test.cache(), frame_shape, max_steps


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    os.makedirs(args.output, exist_ok=True)
    config, train, test, frame_shape, max_steps = motion_order(args)
    command = "python benchmarks/claims.py " + " ".join(sys.argv[1:])
    print(
        f"motion_order/{config.name}: {config.train_videos} train / "
        f"{config.test_videos} test videos; {args.steps} steps of "
        f"{args.batch_size} videos per model; {args.seeds} seeds"
    )
    results = {}
    for seed in range(args.seeds):
        for name, _, settings in rows(args):
            result = run_row(
                args, settings, train, test, frame_shape, max_steps, seed
            )
            results.setdefault(name, []).append(result)
            print(
                f"seed {seed}  {name:45s} accuracy {result['accuracy']:.3f}"
                f"  memory {result['memory_mb']:5.0f} MB  "
                f"{result['train_seconds']:5.0f} s",
                flush=True,
            )
            with open(os.path.join(args.output, "claims.json"), "w") as file:
                json.dump({"args": vars(args), "results": results}, file)
    markdown = table(args, results)
    minutes = (time.perf_counter() - start) / 60
    print(markdown)
    with open(os.path.join(args.output, "claims.md"), "w") as file:
        file.write(
            f"`{command.strip()}` ({minutes:.0f} min on this machine)\n\n"
            + markdown
            + "\n"
        )
    print(f"Table: {os.path.join(args.output, 'claims.md')}")
    print(f"Total time: {minutes:.1f} min")


if __name__ == "__main__":
    main()
