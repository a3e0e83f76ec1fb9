"""Temporal memory of CBM and ConvLSTM stacks on generated tasks.

Every model reads a video of `keras_cbm.datasets.temporal_tasks` (16x16x1
frames, faint noise) with a `DeepCBM` stack of `--depths` layers
(`--filters` filters, 3x3 kernels, identity shortcuts every 5 layers from
depth 5 on, no pooling) and classifies it from the stack's LAST frame,
through a readout: `pooled` (global average pool, then a dense layer) or
`flat` (the frame's features flattened, then a dense layer). Each model
family (`--models`, see `MODELS`) trains for the same budget: `--steps`
Adam steps of `--batch-size` videos drawn from `--train-videos` training
videos, for each learning rate of `--learning-rates` and each of
`--seeds` seeds (the seed sets the weights and the batch order; the data
is the same for all). Per family, depth, readout and task, the learning
rate with the best mean accuracy on `--val-videos` validation videos is
kept and its mean +- std test accuracy over the seeds is reported (on
`--test-videos` videos), with that rate. Tasks (`--tasks`):

* `order`: which of a bright and a dark burst came first (32 frames);
* `recall_G`: the same two bursts in the first 4 frames, then G frames of
  noise (G = 5, 10, 20, 40);
* `count`: how many times (0-3) a square jumps (32 frames, chance 0.25).

    python studies/memory_tasks.py --quick   # smoke run, < 1 minute
    python studies/memory_tasks.py --models cbm convlstm --tasks order \\
        recall_20 --depths 1 --seeds 3

`cbm` is `DeepCBM` at its defaults (the gated T), `cbm-paper` the
paper's cell (`keras_cbm.layers.PAPER_CELL`). `--models` also takes the
investigated variants of the paper's cell (`PAPER_VARIANTS`): among them
the gated T (`temporal_gate="input"`, the `cbm-gated*` families;
`"recurrent"`, `cbm-rgated*`; `cbm-rgated-add-tanhT` is the default
cell) and the fixed-rate leaky-T prototype (`studies/leaky_cbm.py`),
and variants of the default cell (`DEFAULT_VARIANTS`, named `default-*`).
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The harness the benchmarks and the studies share.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import harness  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from leaky_cbm import LeakyDeepCBM  # noqa: E402  (beside this script)

from keras_cbm.datasets import temporal_tasks  # noqa: E402
from keras_cbm.layers import PAPER_CELL  # noqa: E402
from keras_cbm.layers import DeepCBM  # noqa: E402
from keras_cbm.layers.deep_cbm import REFERENCE_INITIALIZER  # noqa: E402


@keras.saving.register_keras_serializable(package="memory_tasks")
class HalvesBias(keras.initializers.Initializer):
    """A CBM bias `[b_R, b_T]` with every `b_R` at `representation` and
    every `b_T` (the second half, `bias[filters:]`) at `temporal`."""

    def __init__(self, representation=0.0, temporal=0.0):
        self.representation = representation
        self.temporal = temporal

    def __call__(self, shape, dtype=None):
        half = shape[0] // 2
        return keras.ops.concatenate(
            [
                keras.ops.full((half,), self.representation, dtype),
                keras.ops.full((shape[0] - half,), self.temporal, dtype),
            ]
        )

    def get_config(self):
        return {
            "representation": self.representation,
            "temporal": self.temporal,
        }


def orthogonal(gain):
    return keras.initializers.Orthogonal(gain)


# The investigated families: the DeepCBM arguments each changes from the
# paper's cell (and "stack": the stack class, for the leaky prototype).
PAPER_VARIANTS = {
    "cbm-ref": {
        "kernel_initializer": REFERENCE_INITIALIZER,
        "recurrent_initializer": REFERENCE_INITIALIZER,
    },
    "cbm-ref-relu-bn": {
        "kernel_initializer": REFERENCE_INITIALIZER,
        "recurrent_initializer": REFERENCE_INITIALIZER,
        "activation": "relu",
        "batch_norm": True,
    },
    "cbm-add": {"merge": "add"},
    "cbm-concat": {"merge": "concat"},
    "cbm-relu": {"activation": "relu"},
    "cbm-bn": {"batch_norm": True},
    "cbm-orth2": {"recurrent_initializer": orthogonal(2.0)},
    "cbm-orth4": {"recurrent_initializer": orthogonal(4.0)},
    "cbm-tbias-2": {"bias_initializer": HalvesBias(temporal=-2.0)},
    "cbm-tbias+2": {"bias_initializer": HalvesBias(temporal=2.0)},
    # R near 1 on an empty frame, so that `h = r * c` lets c through.
    "cbm-rbias1": {"bias_initializer": HalvesBias(representation=1.0)},
    "cbm-add-orth4": {
        "merge": "add",
        "recurrent_initializer": orthogonal(4.0),
    },
    "cbm-leaky": {"stack": LeakyDeepCBM},
    "cbm-leaky-add": {"stack": LeakyDeepCBM, "merge": "add"},
    # T as a plain convolutional RNN: tanh has slope 1 at 0, so with an
    # orthogonal U_T a step starts near norm-preserving.
    "cbm-tanhT": {"recurrent_activation": "tanh"},
    "cbm-tanhT-add": {"recurrent_activation": "tanh", "merge": "add"},
    "cbm-gated": {"temporal_gate": "input"},
    "cbm-gated-add": {"temporal_gate": "input", "merge": "add"},
    "cbm-gated-tanhT": {
        "temporal_gate": "input",
        "recurrent_activation": "tanh",
    },
    "cbm-gated-add-tanhT": {
        "temporal_gate": "input",
        "merge": "add",
        "recurrent_activation": "tanh",
    },
    # The gate reads c_{t-1} too.
    "cbm-rgated-add-tanhT": {
        "temporal_gate": "recurrent",
        "merge": "add",
        "recurrent_activation": "tanh",
    },
    "cbm-gated-add-tanhT-bn": {
        "temporal_gate": "input",
        "merge": "add",
        "recurrent_activation": "tanh",
        "batch_norm": True,
    },
    "cbm-gated-add-tanhT-relu": {
        "temporal_gate": "input",
        "merge": "add",
        "recurrent_activation": "tanh",
        "activation": "relu",
    },
}
# Variants of the default cell searched for what closes its gap on the
# order task with the pooled readout at depth 1: the DeepCBM arguments
# each changes from the defaults.
DEFAULT_VARIANTS = {
    # T's state kept apart from R's output through the merge: the pooled
    # readout averages them separately.
    "concat": {"merge": "concat"},
    "relu": {"activation": "relu"},
}
MODELS = {
    "convlstm": {"layer_type": "convlstm"},
    # The package's default cell (the gated T, tanh, add).
    "cbm": {},
    "cbm-paper": dict(PAPER_CELL),
    **{
        name: {**PAPER_CELL, **changes}
        for name, changes in PAPER_VARIANTS.items()
    },
    **{
        f"default-{name}": changes for name, changes in DEFAULT_VARIANTS.items()
    },
}
READOUTS = ("pooled", "flat")
GAPS = (5, 10, 20, 40)
TASKS = ("order", *(f"recall_{gap}" for gap in GAPS), "count")


def make_task(name, num_videos, seed):
    if name == "order":
        return temporal_tasks.order_of_events(num_videos, seed=seed)
    if name == "count":
        return temporal_tasks.count_events(num_videos, seed=seed)
    gap = int(name.split("_")[1])
    return temporal_tasks.delayed_recall(num_videos, gap=gap, seed=seed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="Smoke run, < 1 minute.")
    add("--models", nargs="+", default=["cbm", "convlstm"], choices=MODELS)
    add("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    add("--depths", type=int, nargs="+", default=[1, 5, 15])
    add("--readouts", nargs="+", default=list(READOUTS), choices=READOUTS)
    add("--seeds", type=int, default=3)
    add("--learning-rates", type=float, nargs="+", default=[1e-3, 3e-3])
    add(
        "--steps",
        type=int,
        default=1000,
        help="Optimizer steps per model (at 300, ConvLSTM stays below 95 %%).",
    )
    add("--batch-size", type=int, default=16)
    harness.add_results_flag(parser)
    add("--filters", type=int, default=8)
    add("--train-videos", type=int, default=1600)
    add("--val-videos", type=int, default=200)
    add("--test-videos", type=int, default=400)
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks = ["order", "recall_5"]
        args.depths = [1]
        args.seeds = 1
        args.learning_rates = [3e-3]
        args.steps = 2
        args.batch_size = 4
        args.filters = 2
        args.train_videos = 8
        args.val_videos = 8
        args.test_videos = 8
    return args


def classifier(settings, depth, readout, filters, frame_shape, classes):
    """A `DeepCBM` classifier of the last frame; `settings`: the stack's
    keyword arguments (a `MODELS` entry), `"stack"` its class."""
    settings = dict(settings)
    stack = settings.pop("stack", DeepCBM)
    frames = keras.Input((None,) + frame_shape)
    features = stack(
        depth=depth,
        filters=filters,
        jump_stride=5 if depth >= 5 else None,
        **settings,
    )(frames)
    last = features[:, -1]
    if readout == "pooled":
        last = keras.layers.GlobalAveragePooling2D()(last)
    else:
        last = keras.layers.Flatten()(last)
    return keras.Model(frames, keras.layers.Dense(classes)(last))


def train_and_score(args, settings, depth, readout, rate, seed, data):
    """Trains one model; its accuracy on each evaluation split of `data`
    (`[(train_x, train_y), *evaluations]`)."""
    (train_x, train_y), *evaluations = data
    keras.utils.set_random_seed(seed)
    model = classifier(
        settings,
        depth,
        readout,
        args.filters,
        train_x.shape[2:],
        int(train_y.max()) + 1,
    )
    model.compile(
        keras.optimizers.Adam(rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    batches = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(len(train_x), seed=seed)
        .repeat()
        .batch(args.batch_size)
    )
    model.fit(batches, steps_per_epoch=args.steps, epochs=1, verbose=0)
    return [
        float(
            np.mean(model.predict(x, batch_size=100, verbose=0).argmax(-1) == y)
        )
        for x, y in evaluations
    ]


def run(args):
    """Returns `{(family, depth, readout, task): (mean, std, rate)}`."""
    results = {}
    for task in args.tasks:
        data = [
            make_task(task, count, seed)
            for seed, count in enumerate(
                (args.train_videos, args.val_videos, args.test_videos)
            )
        ]
        for family in args.models:
            for depth in args.depths:
                for readout in args.readouts:
                    scores = {
                        rate: np.array(
                            [
                                train_and_score(
                                    args,
                                    MODELS[family],
                                    depth,
                                    readout,
                                    rate,
                                    seed,
                                    data,
                                )
                                for seed in range(args.seeds)
                            ]
                        )
                        for rate in args.learning_rates
                    }
                    best = max(
                        scores, key=lambda rate: scores[rate][:, 0].mean()
                    )
                    test = scores[best][:, 1]
                    key = (family, depth, readout, task)
                    results[key] = (test.mean(), test.std(), best)
                    print(
                        f"{task} {family} depth {depth} {readout}: "
                        + ", ".join(
                            f"lr {rate:g} val {s[:, 0].mean():.3f} "
                            f"test {s[:, 1].mean():.3f} (seeds: "
                            + " ".join(f"{t:.3f}" for t in s[:, 1])
                            + ")"
                            for rate, s in scores.items()
                        ),
                        flush=True,
                    )
    return results


def markdown_table(args, results):
    lines = [
        "| model | depth | readout | " + " | ".join(args.tasks) + " |",
        "|---" * (3 + len(args.tasks)) + "|",
    ]
    for family in args.models:
        for depth in args.depths:
            for readout in args.readouts:
                cells = []
                for task in args.tasks:
                    mean, std, rate = results[(family, depth, readout, task)]
                    cells.append(f"{mean:.2f} ± {std:.2f} ({rate:g})")
                lines.append(
                    f"| {family} | {depth} | {readout} | "
                    + " | ".join(cells)
                    + " |"
                )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    results = run(args)
    print()
    print(
        f"Test accuracy, mean ± std over {args.seeds} seeds (learning rate "
        f"chosen on validation); {args.steps} Adam steps of "
        f"{args.batch_size} videos, {args.train_videos} training videos, "
        f"{args.filters} filters; chance 0.50 (count: 0.25)."
    )
    print()
    print(markdown_table(args, results))
    print(f"\nTotal time: {(time.time() - start) / 60:.1f} min")
    values = {
        ":".join(map(str, key)): {
            "mean": float(mean),
            "std": float(std),
            "learning_rate": rate,
        }
        for key, (mean, std, rate) in results.items()
    }
    path = harness.write_results(
        "memory_tasks", values, folder=harness.results_folder(args)
    )
    print(f"Results: {path}")


if __name__ == "__main__":
    main()
