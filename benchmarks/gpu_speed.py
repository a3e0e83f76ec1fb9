"""GPU speed of the CBM layers, the 15-layer stack and a training step.

Three measurements, each the median of `--runs` timed calls after warm-up,
the variants of one measurement timed interleaved (see `layer_speed.py`),
ratios printed side by side with their targets:

1. One layer, forward + backward (the gradient of `sum(outputs)` with
   respect to the weights and the input), at each `--shapes` shape in
   float32 and `mixed_bfloat16`: `ConvCBM2D` (the paper's T, filters = C),
   its no-recurrence limit (the same convolutions over all frames at once,
   `layer_speed.NoRecurrenceLimit`: no recurrent layer can beat it) and
   `keras.layers.ConvLSTM2D`. Targets: CBM <= 1.5x the limit and <= 0.20x
   ConvLSTM2D. For information: `ConvCBM2D(unroll=True)` (no loop left
   to XLA) and `temporal_gate="recurrent"` (the T that remembers, README
   "Memory").
2. The 15-layer stack at `--stack-shape` (the paper's backbone stack: 512
   filters on 7x7 features, a shortcut every 5 layers): `DeepCBM` with
   `layer_type="cbm"` against `layer_type="convlstm"`, forward + backward, both
   precisions. Target: CBM <= 0.15x ConvLSTM.
3. A `CoherenceModel` training step (`train_on_batch`, compiled) of the
   main job's classifier (`examples/action_recognition.py`'s defaults:
   `standalone_classifier` with stages (8, 16), the recurrent-gated T, 32x32
   grey frames, 16 videos x 4 clips x 24 steps, 12 classes) against the
   same model with ConvLSTM cells, and against plain `model.fit` of the
   same network on the same clips (per-frame loss, no coherence): the
   trainer's overhead. Information only.

It runs on JAX (the default here) without TensorFlow, which the GPU machine
does not have, and on TensorFlow. Run from the repository root:

    python benchmarks/gpu_speed.py              # on the GPU machine
    python benchmarks/gpu_speed.py --quick      # CPU smoke test, ~1 min

`--quick` runs tiny shapes with 2 runs: the figures mean nothing, it only
shows that every measurement runs.
"""

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

BACKEND = os.environ.setdefault("KERAS_BACKEND", "jax")

# The harness and layer_speed (its limit layer, compiled functions and
# interleaved timing) lie beside this script, also when it runs through
# runpy (the smoke test).
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import keras  # noqa: E402
import layer_speed  # noqa: E402

from keras_cbm import models  # noqa: E402
from keras_cbm.layers import ConvCBM2D  # noqa: E402
from keras_cbm.layers import DeepCBM  # noqa: E402
from keras_cbm.training import CoherenceModel  # noqa: E402

# The anchor shapes (B, T, H, W, C; filters = C).
DEFAULT_SHAPES = "8x16x28x28x64,8x16x7x7x512,4x64x14x14x128"
DEFAULT_STACK_SHAPE = "8x16x7x7x512"
PRECISIONS = ("float32", "mixed_bfloat16")
# Column names (the docstring says what each is).
LAYER_COLUMNS = {
    "cbm": "ConvCBM2D",
    "limit": "limit",
    "convlstm": "ConvLSTM2D",
    "cbm_unroll": "CBM unrolled",
    "cbm_rgated": "gated CBM",
}
LAYER_TARGETS = (("cbm", "limit", 1.5), ("cbm", "convlstm", 0.20))
# Ratios printed for information.
LAYER_RATIOS = LAYER_TARGETS + (
    ("cbm_unroll", "limit", None),
    ("cbm_rgated", "convlstm", None),
)
STACK_TARGET = 0.15
QUICK = dict(
    shapes="2x4x8x8x4",
    stack_shape="2x4x7x7x8",
    stack_depth=5,
    runs=2,
    job=dict(
        videos=2,
        clips=2,
        steps=4,
        frame_shape=(16, 16, 1),
        classes=3,
        stage_filters=(2,),
    ),
)


def as_model(layer, shape):
    """`layer` in a model, so that every call goes through `Layer.__call__`
    (which casts inputs and variables under a mixed precision policy; a
    bare layer's `stateless_call` would not)."""
    return keras.Sequential([keras.Input(shape[1:]), layer])


def layer_variants(shape):
    """`{name: model}` for measurement 1, built under the current policy."""
    conv_args = dict(
        filters=shape[-1], kernel_size=3, padding="same", return_sequences=True
    )
    cbm = ConvCBM2D(**conv_args)
    variants = {
        "cbm": as_model(cbm, shape),
        "limit": as_model(layer_speed.NoRecurrenceLimit(cbm.cell), shape),
        "convlstm": as_model(keras.layers.ConvLSTM2D(**conv_args), shape),
        # Information: the loop unrolled, and the T that remembers.
        "cbm_unroll": as_model(ConvCBM2D(unroll=True, **conv_args), shape),
        "cbm_rgated": as_model(
            ConvCBM2D(
                temporal_gate="recurrent",
                recurrent_activation="tanh",
                merge="add",
                **conv_args,
            ),
            shape,
        ),
    }
    return variants


def stack_variants(shape, depth):
    """`{name: model}` for measurement 2."""
    return {
        cell: as_model(
            DeepCBM(depth, shape[-1], jump_stride=5, layer_type=cell), shape
        )
        for cell in ("cbm", "convlstm")
    }


def time_forward_backward(variants, shape, runs):
    """Median seconds of forward + backward of each variant, interleaved."""
    x = np.random.default_rng(0).standard_normal(shape, dtype="float32")
    x = keras.ops.convert_to_tensor(x)
    make_functions = layer_speed.BACKEND_FUNCTIONS[BACKEND]
    functions = {
        name: make_functions(model)[1] for name, model in variants.items()
    }
    # Every variant gets all its runs (layer_speed's budget is for CPUs).
    times = layer_speed.measure(functions, x, runs, max_seconds=float("inf"))
    return {name: seconds for name, (seconds, _) in times.items()}


def clip_batch(job):
    """A random batch of overlapping clips and video labels."""
    rng = np.random.default_rng(0)
    shape = (job["videos"], job["clips"], job["steps"])
    clips = rng.random(shape + job["frame_shape"], dtype="float32")
    # Clip k starts half a clip after clip k - 1: neighbours overlap.
    starts = np.arange(job["clips"]) * (job["steps"] // 2)
    alignment = starts[:, None] + np.arange(job["steps"])
    alignment = np.broadcast_to(alignment, shape).astype("int32")
    labels = rng.integers(0, job["classes"], job["videos"])
    return {"clips": clips, "alignment": alignment}, labels


def job_network(job, cell):
    return models.standalone_classifier(
        job["classes"],
        frame_shape=job["frame_shape"],
        stage_filters=job["stage_filters"],
        blocks_per_stage=1,
        layer_type=cell,
        temporal_gate="recurrent" if cell == "cbm" else None,
    )


def job_trainers(job):
    """`{name: (compiled model, x, y)}` for measurement 3."""
    inputs, labels = clip_batch(job)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainers = {}
    for cell in ("cbm", "convlstm"):
        trainer = CoherenceModel(job_network(job, cell), coherence_weight=0.8)
        trainer.compile(keras.optimizers.Adam(3e-3), loss)
        trainers[f"coherence_{cell}"] = (trainer, inputs, labels)
    # The same clips as a plain batch of sequences, each frame labelled.
    plain = job_network(job, "cbm")
    plain.compile(keras.optimizers.Adam(3e-3), loss)
    frames = inputs["clips"].reshape((-1,) + inputs["clips"].shape[2:])
    frame_labels = np.repeat(labels, job["clips"] * job["steps"])
    trainers["plain_fit_cbm"] = (
        plain,
        frames,
        frame_labels.reshape(frames.shape[:2]),
    )
    return trainers


def time_train_steps(trainers, runs):
    """Median seconds of one `train_on_batch` of each trainer, interleaved
    (`train_on_batch` returns numbers: the step has finished)."""
    for trainer, x, y in trainers.values():
        for _ in range(layer_speed.WARMUP_RUNS):  # The first compiles.
            trainer.train_on_batch(x, y)
    samples = {name: [] for name in trainers}
    for _ in range(runs):
        for name, (trainer, x, y) in trainers.items():
            start = time.perf_counter()
            trainer.train_on_batch(x, y)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def verdict(ratio, target):
    return f"<= {target:.2f} {harness.verdict(ratio, target)}"


def report_layers(args):
    print("\n1. One layer, forward + backward (ms)")
    ratio_names = [
        f"{LAYER_COLUMNS[a]} / {LAYER_COLUMNS[b]}" for a, b, _ in LAYER_RATIOS
    ]
    columns = ["shape B,T,H,W,C", "precision"]
    columns += list(LAYER_COLUMNS.values()) + ratio_names
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    summary = []
    for shape in args.shapes:
        for precision in PRECISIONS:
            keras.config.set_dtype_policy(precision)
            times = time_forward_backward(
                layer_variants(shape), shape, args.runs
            )
            ratios = [times[a] / times[b] for a, b, _ in LAYER_RATIOS]
            cells = [shape_text(shape), precision]
            cells += [f"{1e3 * times[name]:.2f}" for name in LAYER_COLUMNS]
            cells += [f"{ratio:.2f}" for ratio in ratios]
            print("| " + " | ".join(cells) + " |", flush=True)
            for (a, b, target), ratio in zip(LAYER_RATIOS, ratios, strict=True):
                if target is not None:
                    summary.append(
                        (shape, precision, f"{a} / {b}", ratio, target)
                    )
    return summary


def report_stack(args):
    shape = args.stack_shape
    print(
        f"\n2. {args.stack_depth}-layer DeepCBM stack at {shape_text(shape)}, "
        "shortcut every 5 layers, forward + backward (ms)"
    )
    print("| precision | CBM stack | ConvLSTM stack | cbm / convlstm |")
    print("|---|---|---|---|")
    summary = []
    for precision in PRECISIONS:
        keras.config.set_dtype_policy(precision)
        times = time_forward_backward(
            stack_variants(shape, args.stack_depth), shape, args.runs
        )
        ratio = times["cbm"] / times["convlstm"]
        print(
            f"| {precision} | {1e3 * times['cbm']:.2f} | "
            f"{1e3 * times['convlstm']:.2f} | {ratio:.2f} |",
            flush=True,
        )
        summary.append(
            (shape, precision, "stack cbm / convlstm", ratio, STACK_TARGET)
        )
    return summary


def report_train_step(args):
    job = args.job
    keras.config.set_dtype_policy("float32")
    print(
        f"\n3. CoherenceModel train step, float32: {job['videos']} videos x "
        f"{job['clips']} clips x {job['steps']} steps of "
        f"{job['frame_shape']} frames, stages {job['stage_filters']} (ms)"
    )
    times = time_train_steps(job_trainers(job), args.runs)
    print(
        "| CoherenceModel, gated CBM | CoherenceModel, ConvLSTM | plain fit, "
        "gated CBM | CBM / ConvLSTM | CoherenceModel / plain fit |"
    )
    print("|---|---|---|---|---|")
    cbm, convlstm, plain = (
        times[n]
        for n in ("coherence_cbm", "coherence_convlstm", "plain_fit_cbm")
    )
    print(
        f"| {1e3 * cbm:.2f} | {1e3 * convlstm:.2f} | {1e3 * plain:.2f} | "
        f"{cbm / convlstm:.2f} | {cbm / plain:.2f} |"
    )


def shape_text(shape):
    return "x".join(map(str, shape))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--shapes", default=DEFAULT_SHAPES, help="BxTxHxWxC, comma-separated.")
    add("--stack-shape", default=DEFAULT_STACK_SHAPE, help="BxTxHxWxC.")
    add("--stack-depth", type=int, default=15, help="Layers of the stack.")
    add("--runs", type=int, default=20, help="Timed runs; the median counts.")
    add("--quick", action="store_true", help="CPU smoke test, tiny shapes.")
    args = parser.parse_args(argv)
    # The main job's training batch and classifier (action_recognition.py).
    args.job = harness.main_job()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.runs < 1 or args.stack_depth < 1:
        parser.error(
            "--runs and --stack-depth must be positive. Received: "
            f"--runs {args.runs}, --stack-depth {args.stack_depth}"
        )
    try:
        args.shapes = [
            layer_speed.parse_shape(s) for s in args.shapes.split(",")
        ]
        args.stack_shape = layer_speed.parse_shape(args.stack_shape)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    return args


def main(argv=None):
    args = parse_args(argv)
    if BACKEND not in layer_speed.BACKEND_FUNCTIONS:
        sys.exit(f"KERAS_BACKEND must be tensorflow or jax, not {BACKEND!r}")
    print(
        f"{datetime.date.today()}, backend {BACKEND} (keras "
        f"{keras.__version__}) on {layer_speed.device_name()}; median of "
        f"{args.runs} timed runs after {layer_speed.WARMUP_RUNS} warm-up runs"
    )
    summary = report_layers(args) + report_stack(args)
    report_train_step(args)
    print("\nsummary (forward + backward):")
    for shape, precision, label, ratio, target in summary:
        print(
            f"  {shape_text(shape):<16}{precision:<16}{label:<22}"
            f"{ratio:.3f} {verdict(ratio, target)}"
        )
    print(f"tensorflow imported: {'tensorflow' in sys.modules}")


if __name__ == "__main__":
    main()
