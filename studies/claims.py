"""The paper's three claims at small scale, side by side in one run.

On `motion_order/recognition` (12 classes, chance 1/12; the label is the
order of two motions half a video apart), every row trains the same kind
of per-frame classifier for the same budget (`--steps` optimizer steps of
`--batch-size` videos, Adam) with `--seeds` seeds, evaluates it per video
on the test split, and reports mean ± std accuracy. Each row gets the best
learning rate of `--learning-rates`: its first seed trains at every rate,
the rate with the best accuracy on `--validation-videos` videos held out of
the train split is kept, and the other seeds train at it (with a single
rate nothing is held out). `--rows` runs a subset of the rows (their keys
in brackets):

* `baseline`, single-frame: the 5-layer CBM classifier trained and evaluated
  on clips of ONE frame (no recurrence can act), its per-frame predictions
  averaged over every frame of a test video. Near chance: the task needs
  time.
* claim (1), depth (`shallow`, `middle`, `deep`): 1-, 5- and 15-layer CBM
  stacks (`DeepCBM`: a stride-2 stem layer and a max-pool, then residual
  blocks of two layers, 16 filters), clip training with the overlap
  coherence loss.
* claim (2), CBM vs ConvLSTM (`deep-convlstm`): the 15-layer layout with
  `ConvLSTM2D` layers (Keras' initialisers, tanh); `deep-convlstm-plain`
  the same without batch norm (as Keras' own layers come).
* claim (3), training scheme, with the 15-layer CBM: overlapping random
  clips with the coherence loss (the claim (1) row), the same clips
  without it (weight 0, `no-coherence`), and full-video back-propagation
  through time (one clip per video holding every step, `full-video`).
  "memory" is the peak resident memory during training above what the
  process held before it (RSS sampled every 5 ms; large buffers are
  returned to the system when freed, so each row is measured on its own),
  the largest over the seeds.

Clip models are evaluated on sliding windows of their longest clip
(stride half a window); the full-video model on the whole video; the
single-frame model on every frame. A video's prediction is the softmax
of the mean of its frames' logits (`CoherenceModel`'s `"probabilities"`:
the accuracy column); the column "mean of probabilities" averages the
frames' probabilities instead (`aggregation="mean_probabilities"`).
Frames are read every `--frame-stride` frames. The table goes to stdout
and to `<output>/claims.md` (with the command), the raw numbers to the
results file `studies/results/claims.json` (`--results-dir`).

    python studies/claims.py              # ~2.5 hours on 2 CPU cores
    python studies/claims.py --rows deep deep-convlstm   # claim (2)
    python studies/claims.py --learning-rates 3e-3   # one rate, ~1.5 h
    python studies/claims.py --quick      # tiny: 1 seed, ~1 min
"""

import argparse
import functools
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
import tensorflow_datasets as tfds  # noqa: E402
from action_recognition import add_cell_flags  # noqa: E402
from action_recognition import cell_arguments  # noqa: E402

import keras_cbm.datasets  # noqa: E402  (registers the builders)
from keras_cbm import data  # noqa: E402
from keras_cbm import training  # noqa: E402
from keras_cbm.layers import DeepCBM  # noqa: E402
from keras_cbm.layers import video_probabilities  # noqa: E402
from keras_cbm.models.classification_head import classification_head  # noqa: E402

NUM_CLASSES = len(keras_cbm.datasets.MOTION_ORDER_CLASSES)
ROW_KEYS = [
    "baseline",
    "shallow",
    "middle",
    "deep",
    "deep-convlstm",
    "deep-convlstm-plain",
    "no-coherence",
    "full-video",
]


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
    add("--learning-rates", type=float, nargs="+", default=[1e-3, 3e-3])
    add(
        "--validation-videos",
        type=int,
        default=200,
        help="Train videos held out to choose the learning rate.",
    )
    add("--rows", nargs="+", choices=ROW_KEYS, default=ROW_KEYS)
    add("--frame-stride", type=int, default=4)
    add("--clips-per-video", type=int, default=2)
    add("--min-length", type=int, default=8, help="Shortest clip, steps.")
    add("--max-length", type=int, default=16, help="Longest clip, steps.")
    add("--coherence-weight", type=float, default=0.8)
    add("--test-videos", type=int, default=None, help="Default: all.")
    add("--output", default="outputs/claims")
    harness.add_results_flag(parser)
    add_cell_flags(parser)
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
        args.validation_videos = 2
    return args


def classifier(depth, filters, cell, frame_shape, batch_norm=True, **cbm_cell):
    """Per-frame logits from a `DeepCBM` stack of `cell` layers; `cbm_cell`:
    CBM cell keywords (e.g. `merge`) for `cell="cbm"`."""
    cbm = cell == "cbm"
    frames = keras.Input((None,) + frame_shape, name="frames")
    features = DeepCBM(
        depth=depth,
        filters=filters,
        kernel_size=3,
        strides=[2] + [1] * (depth - 1),
        jump_stride=2 if depth >= 2 else None,
        pool_after=(1,),
        **{
            "activation": "relu" if cbm else "tanh",
            "batch_norm": batch_norm,
            "layer_type": cell,
            "name": "deep_cbm",
            **cbm_cell,
        },
    )(frames)
    logits = classification_head(NUM_CLASSES)(features)
    return keras.Model(frames, logits, name=f"{cell}{depth}")


def rows(args):
    """`(key, name, claim, settings)` of every row, in table order."""
    shallow, middle, deep = args.depths
    weight = args.coherence_weight

    def row(
        depth, cell="cbm", scheme="clips", coherence=weight, batch_norm=True
    ):
        return {
            "depth": depth,
            "cell": cell,
            "scheme": scheme,
            "coherence": coherence,
            "batch_norm": batch_norm,
        }

    entries = [
        (
            f"single-frame ({middle}-layer CBM, 1-frame clips)",
            "baseline",
            row(middle, scheme="single", coherence=0.0),
        ),
        (f"{shallow}-layer CBM", "(1)", row(shallow)),
        (f"{middle}-layer CBM", "(1)", row(middle)),
        (
            f"{deep}-layer CBM, clips + coherence",
            "(1) (2) (3)",
            row(deep),
        ),
        (
            f"{deep}-layer ConvLSTM, clips + coherence",
            "(2)",
            row(deep, cell="convlstm"),
        ),
        (
            f"{deep}-layer ConvLSTM without batch norm, clips + coherence",
            "(2)",
            row(deep, cell="convlstm", batch_norm=False),
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
    return [(key, *entry) for key, entry in zip(ROW_KEYS, entries, strict=True)]


def pipelines(args, settings, train, evaluations, max_steps, seed):
    """Training batches of a row's scheme, and per-video windows of each
    evaluation split (`{name: videos}` to `{name: windows}`)."""
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
    windows = {
        name: data.padded_window_batch(
            data.uniform_clips(
                videos,
                window,
                max(window // 2, 1),
                frame_stride=args.frame_stride,
            ),
            args.batch_size,
        ).prefetch(tf.data.AUTOTUNE)
        for name, videos in evaluations.items()
    }
    return train_batches, windows


def run_row(
    args,
    settings,
    learning_rate,
    train,
    evaluations,
    frame_shape,
    max_steps,
    seed,
):
    """Trains a row's model once; `"<split>_accuracy"` per evaluation
    split (`{name: videos}`), peak memory, time and mean losses."""
    keras.utils.set_random_seed(seed)
    net = classifier(
        settings["depth"],
        args.filters,
        settings["cell"],
        frame_shape,
        settings["batch_norm"],
        **(cell_arguments(args) if settings["cell"] == "cbm" else {}),
    )
    trainer = training.CoherenceModel(
        net, coherence_weight=settings["coherence"]
    )
    trainer.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipvalue=5.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train_batches, windows = pipelines(
        args, settings, train, evaluations, max_steps, seed
    )
    start = time.perf_counter()
    with harness.PeakMemory(interval=0.005) as memory:
        history = trainer.fit(
            train_batches, epochs=1, steps_per_epoch=args.steps, verbose=0
        )
    seconds = time.perf_counter() - start
    result = {
        f"{name}_accuracy": float(
            trainer.evaluate(batches, return_dict=True, verbose=0)["accuracy"]
        )
        for name, batches in windows.items()
    }
    return result | {
        "test_accuracy_mean_probabilities": mean_probability_accuracy(
            trainer, windows["test"]
        ),
        "learning_rate": learning_rate,
        "memory_mb": memory.bytes / 2**20,
        "train_seconds": seconds,
        # Means over the training steps (unweighted losses).
        "task_loss": float(history.history["task_loss"][-1]),
        "coherence_loss": float(history.history["coherence_loss"][-1]),
    }


def mean_probability_accuracy(trainer, windows):
    """Video accuracy of a trained `CoherenceModel` with each video's
    prediction the mean of its frames' probabilities instead of the
    softmax of the mean of their logits."""
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    for inputs, labels in windows:
        logits = trainer.clip_outputs(inputs)
        videos, clips, steps, classes = logits.shape
        accuracy.update_state(
            labels,
            video_probabilities(
                keras.ops.reshape(logits, (-1, clips * steps, classes)),
                mask=keras.ops.reshape(
                    inputs["alignment"] >= 0, (-1, clips * steps)
                ),
                aggregation="mean_probabilities",
            ),
        )
    return float(accuracy.result())


def run_seeds(args, settings, splits, frame_shape, max_steps, report):
    """A row's runs, one per seed, at the learning rate its first seed
    scores best with on the validation split; `report(seed, run)` sees
    every run, the discarded rates' too."""
    train, evaluations = splits
    rates = args.learning_rates
    first = []
    for rate in rates:
        run = run_row(
            args, settings, rate, train, evaluations, frame_shape, max_steps, 0
        )
        report(0, run)
        first.append(run)
    if len(rates) == 1:
        chosen = first[0]
    else:
        chosen = max(first, key=lambda run: run["validation_accuracy"])
    runs = [chosen]
    for seed in range(1, args.seeds):
        run = run_row(
            args,
            settings,
            chosen["learning_rate"],
            train,
            evaluations,
            frame_shape,
            max_steps,
            seed,
        )
        report(seed, run)
        runs.append(run)
    return runs


def table(args, results):
    lines = [
        "| claim | model | learning rate | accuracy (mean ± std) | "
        "accuracy, mean of probabilities | peak train memory | train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, name, claim, _ in rows(args):
        runs = results.get(key, [])
        if not runs:
            continue
        acc = np.array([run["test_accuracy"] for run in runs])
        probability_acc = np.array(
            [run["test_accuracy_mean_probabilities"] for run in runs]
        )
        memory = max(run["memory_mb"] for run in runs)
        seconds = np.mean([run["train_seconds"] for run in runs])
        lines.append(
            f"| {claim} | {name} | {runs[0]['learning_rate']:g} | "
            f"{acc.mean():.3f} ± {acc.std():.3f} (n={len(acc)}) | "
            f"{probability_acc.mean():.3f} ± {probability_acc.std():.3f} | "
            f"{memory:.0f} MB | {seconds:.0f} s |"
        )
    lines.append(f"\nChance: {1 / NUM_CLASSES:.3f}.")
    return "\n".join(lines)


def motion_order(args):
    """`(config, (train, evaluations), frame_shape, max_steps)`: the
    builder config, the cached training videos and `{name: videos}` of
    the evaluation splits (`"test"`, and `"validation"`, held out of the
    train split, where there are learning rates to choose from), the
    frame shape and the most steps of a video."""
    builder = tfds.builder(
        f"motion_order/{args.config}", data_dir=args.data_dir
    )
    builder.download_and_prepare()
    config = builder.builder_config
    frame_shape = (config.frame_size, config.frame_size, 1)
    max_steps = -(-config.max_frames // args.frame_stride)

    def videos(split):
        return builder.as_dataset(split=split).map(
            lambda element: {
                "video": element["video"],
                "label": element["label"],
            }
        )

    test = videos("test")
    if args.test_videos is not None:
        test = test.take(args.test_videos)
    evaluations = {"test": test.cache()}
    if len(args.learning_rates) == 1:
        train = videos("train")
    else:
        held_out = args.validation_videos
        if not 0 < held_out < config.train_videos:
            raise ValueError(
                "`--validation-videos` must be in [1, "
                f"{config.train_videos - 1}] (the train split has "
                f"{config.train_videos} videos) to choose among "
                f"{len(args.learning_rates)} learning rates; received "
                f"{held_out}."
            )
        train = videos(f"train[:{config.train_videos - held_out}]")
        evaluations["validation"] = videos(
            f"train[{config.train_videos - held_out}:]"
        ).cache()
    return config, (train.cache(), evaluations), frame_shape, max_steps


def print_run(name, seed, run):
    validation = run.get("validation_accuracy")
    print(
        f"seed {seed}  {name:45s} lr {run['learning_rate']:g}  "
        + (
            ""
            if validation is None
            else f"validation accuracy {validation:.3f}  "
        )
        + f"test accuracy {run['test_accuracy']:.3f} (mean of probabilities "
        f"{run['test_accuracy_mean_probabilities']:.3f})  memory "
        f"{run['memory_mb']:5.0f} MB  {run['train_seconds']:5.0f} s",
        flush=True,
    )


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    os.makedirs(args.output, exist_ok=True)
    config, splits, frame_shape, max_steps = motion_order(args)
    command = "python studies/claims.py " + " ".join(sys.argv[1:])
    held_out = args.validation_videos if "validation" in splits[1] else 0
    print(
        f"motion_order/{config.name}: {config.train_videos} train "
        f"videos ({held_out} held out "
        f"for validation) / {config.test_videos} test videos; {args.steps} "
        f"steps of {args.batch_size} videos per model; {args.seeds} seeds; "
        f"learning rates {args.learning_rates}"
    )
    results_folder = harness.results_folder(args)
    results = {}
    for key, name, _, settings in rows(args):
        if key not in args.rows:
            continue
        results[key] = run_seeds(
            args,
            settings,
            splits,
            frame_shape,
            max_steps,
            functools.partial(print_run, name),
        )
        results_path = harness.write_results(
            "claims",
            {"args": vars(args), "results": results},
            folder=results_folder,
        )
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
    print(f"Results: {results_path}")
    print(f"Total time: {minutes:.1f} min")


if __name__ == "__main__":
    harness.fresh_heap()
    main()
