"""Which scheme trains a recurrent model on long videos in a small memory
budget: full video, truncation, truncated BPTT over all chunks, and clips
with donor or whole-past state handover, each with targets on all frames
and on the frames where the label is knowable.

Task: `keras_cbm.datasets.temporal_tasks.order_of_events` with `--frames`
frames: a bright and a dark burst at random times anywhere in the video,
the label which came first, read out at the LAST frame of the whole video
(16x16 frames, faint noise; a single-frame model is at chance, 0.50). The
label is knowable from the first frame at which both bursts have shown.
Every scheme trains the same per-frame classifier (a `DeepCBM` stack of
`--depth` layers of `memory_tasks.py`'s `--model` family, the package's
default cell unless told, then per frame a global average pool and a dense
layer) for `--steps` Adam steps of `--batch-size` videos, the video's label
the target of the frames the targets select:

* `full video`: back-propagation through all frames
  (`training.TruncatedBPTT` with one chunk of the whole video);
* `truncated, last N`: the frames before the last `--chunk-length` run in
  inference, and the last N train from the states they reach (this
  script's `TruncatedBackpropagation`);
* `TBPTT, chunks of N`: `training.TruncatedBPTT(chunk_length=N,
  rematerialize=True)`, every chunk trained, the gradient cut between
  chunks;
* `clips, donor handover` / `clips, whole past`: `training.CoherenceModel`
  (default coherence weight) on `data.overlapping_clips`
  (`--clips-per-video` clips of `--min-length`-`--max-length` frames), the
  paper's donor handover or the states an inference pass over the video's
  frames before each clip reaches.

Targets: `all` (the paper's: every trained frame) or `knowable` (weight 0
before the label is knowable), through `targets="given"`.

Evaluation: every test video runs whole, in inference, from its first
frame; the last frame's prediction is the video's. Memory: the peak
resident memory of the training process above what it held before
`fit` (each run in a fresh process), the largest over the seeds; rows above
`--memory-budget` MiB are marked. Time: the median seconds of a training
step (the first, which traces, left out), robust to the cores being shared.

    python studies/long_videos.py --seeds 3      # ~25 min a seed, 2 cores
    python studies/long_videos.py --quick        # tiny, < 2 min
"""

import os
import sys

# `memory_tasks` lies beside this script; the harness the benchmarks and
# the studies share, in benchmarks/.
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [here, os.path.join(os.path.dirname(here), "benchmarks")]

import argparse  # noqa: E402
import time  # noqa: E402

import harness  # noqa: E402
import keras  # noqa: E402
import memory_tasks  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from keras_cbm import data  # noqa: E402
from keras_cbm import training  # noqa: E402
from keras_cbm.datasets import temporal_tasks  # noqa: E402
from keras_cbm.layers import DeepCBM  # noqa: E402
from keras_cbm.models import RecurrentStates  # noqa: E402

SCHEMES = ("full", "truncated", "tbptt", "donor", "whole_past")
TARGETS = ("all", "knowable")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="Tiny version.")
    add("--frames", type=int, default=96, help="Frames per video.")
    add("--model", default="cbm", choices=memory_tasks.MODELS)
    add("--depth", type=int, default=2)
    add("--filters", type=int, default=8)
    add("--steps", type=int, default=200, help="Optimizer steps per run.")
    add("--batch-size", type=int, default=8)
    add("--learning-rate", type=float, default=3e-3)
    add("--seeds", type=int, default=1)
    add("--schemes", nargs="+", default=SCHEMES, choices=SCHEMES)
    add("--targets", nargs="+", default=TARGETS, choices=TARGETS)
    add("--chunk-length", type=int, default=16, help="N: truncation, TBPTT.")
    add("--clips-per-video", type=int, default=4)
    add("--min-length", type=int, default=8)
    add("--max-length", type=int, default=16)
    add("--min-overlap", type=int, default=2)
    add("--memory-budget", type=float, default=512, help="MiB.")
    add("--train-videos", type=int, default=800)
    add("--test-videos", type=int, default=200)
    add("--worker", nargs=3, metavar=("SCHEME", "TARGETS", "SEED"))
    harness.add_results_flag(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.frames = 24
        args.depth = 1
        args.filters = 2
        args.steps = 3
        args.batch_size = 2
        args.chunk_length = 8
        args.clips_per_video = 2
        args.min_length, args.max_length, args.min_overlap = 4, 8, 2
        args.train_videos = args.test_videos = 4
    return args


def knowable_weights(videos):
    """Per-frame weights `(videos, frames)`: 1 from the first frame at which
    both the bright and the dark burst have shown (the label is knowable),
    else 0."""
    frames = np.arange(videos.shape[1])
    extremes = videos.reshape(videos.shape[:2] + (-1,))
    bright = (extremes > 0.5).any(-1)
    dark = (extremes < -0.5).any(-1)
    known = np.maximum(bright.argmax(1), dark.argmax(1))
    return (frames[None] >= known[:, None]).astype("float32")


def scheme_name(args, scheme):
    return {
        "full": "full video",
        "truncated": f"truncated, last {args.chunk_length}",
        "tbptt": f"TBPTT, chunks of {args.chunk_length}",
        "donor": "clips, donor handover",
        "whole_past": "clips, whole past",
    }[scheme]


class TruncatedBackpropagation(keras.Model):
    """Trains `net` on the last `train_frames` frames of each video,
    from the states an inference run over the frames before them
    reaches; the loss weights the trained frames by `frame_weights`."""

    def __init__(self, net, train_frames, **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.train_frames = train_frames
        self.run = RecurrentStates(net)

    def call(self, inputs, training=False):
        videos = inputs["video"]
        _, states = self.run(videos[:, : -self.train_frames], training=False)
        states = keras.tree.map_structure(ops.stop_gradient, states)
        outputs, _ = self.run(
            videos[:, -self.train_frames :],
            initial_states=states,
            training=training,
        )
        return outputs

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, **kwargs
    ):
        weights = x["frame_weights"][:, -self.train_frames :]
        labels = ops.repeat(ops.expand_dims(y, 1), y_pred.shape[1], 1)
        # Each video's loss is the mean over its weighted frames.
        weights = weights / ops.maximum(
            ops.sum(weights, axis=1, keepdims=True), 1.0
        )
        return super().compute_loss(
            x, labels, y_pred, weights * y_pred.shape[1], **kwargs
        )


def worker(args, scheme, targets, seed):
    """Trains and tests one (scheme, targets, seed); returns its figures."""
    keras.utils.set_random_seed(seed)
    train, test = (
        temporal_tasks.order_of_events(count, frames=args.frames, seed=index)
        for index, count in enumerate((args.train_videos, args.test_videos))
    )
    videos, labels = train
    weights = (
        knowable_weights(videos)
        if targets == "knowable"
        else np.ones(videos.shape[:2], "float32")
    )
    frames = keras.Input((None, 16, 16, 1))
    features = DeepCBM(
        depth=args.depth,
        filters=args.filters,
        jump_stride=5 if args.depth >= 5 else None,
        **memory_tasks.MODELS[args.model],
    )(frames)
    pooled = keras.layers.TimeDistributed(
        keras.layers.GlobalAveragePooling2D()
    )(features)
    net = keras.Model(frames, keras.layers.Dense(2)(pooled))

    dataset = tf.data.Dataset.from_tensor_slices(
        {"video": videos, "label": labels, "frame_weights": weights}
    ).shuffle(len(videos), seed=seed)
    if scheme in ("donor", "whole_past"):
        trainer = training.CoherenceModel(
            net,
            state_handover="donor" if scheme == "donor" else "whole_past",
        )
        batches = data.overlapping_clips(
            dataset.repeat(),
            args.clips_per_video,
            args.min_length,
            args.max_length,
            min_overlap=args.min_overlap,
            seed=seed,
            targets="given",
            past_length=args.frames if scheme == "whole_past" else None,
        )
    else:
        if scheme == "truncated":
            trainer = TruncatedBackpropagation(net, args.chunk_length)
        else:
            trainer = training.TruncatedBPTT(
                net,
                chunk_length=(
                    args.frames if scheme == "full" else args.chunk_length
                ),
                targets="given",
                rematerialize=scheme == "tbptt",
            )
        batches = dataset.map(
            lambda e: (
                {"video": e["video"], "frame_weights": e["frame_weights"]},
                e["label"],
            )
        )
    trainer.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipvalue=5.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    batches = batches.repeat().batch(args.batch_size, drop_remainder=True)

    step_ends = []

    def clock(batch, logs):
        # Reading the loss waits for the step (JAX dispatches ahead).
        float(logs["loss"])
        step_ends.append(time.perf_counter())

    timer = keras.callbacks.LambdaCallback(on_train_batch_end=clock)
    with harness.PeakMemory(interval=0.005) as memory:
        trainer.fit(
            # Keras' default shuffle=True would warn on a dataset.
            batches.prefetch(tf.data.AUTOTUNE),
            epochs=1,
            steps_per_epoch=args.steps,
            verbose=0,
            shuffle=False,
            callbacks=[timer],
        )
    logits = net.predict(test[0], batch_size=args.batch_size, verbose=0)
    return {
        "accuracy": float(np.mean(np.argmax(logits[:, -1], -1) == test[1])),
        "memory_mib": memory.bytes / 2**20,
        "step_seconds": float(np.median(np.diff(step_ends))),
    }


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        scheme, targets, seed = args.worker
        return harness.emit(worker(args, scheme, targets, int(seed)))
    start = time.perf_counter()
    print(
        f"order of events over {args.frames} frames; {args.depth}-layer "
        f"{args.model}, {args.filters} filters; {args.steps} Adam steps of "
        f"{args.batch_size} videos (lr {args.learning_rate:g}); "
        f"{args.train_videos} training, {args.test_videos} test videos; "
        f"{args.seeds} seed(s); N = {args.chunk_length}; clips: "
        f"{args.clips_per_video} of {args.min_length}-{args.max_length} "
        f"frames",
        flush=True,
    )
    passed = list(sys.argv[1:] if argv is None else argv)
    results = {}
    for seed in range(args.seeds):
        for scheme in args.schemes:
            for targets in args.targets:
                result = harness.run_fresh(
                    __file__, [*passed, "--worker", scheme, targets, str(seed)]
                )
                results.setdefault((scheme, targets), []).append(result)
                print(
                    f"seed {seed} {scheme_name(args, scheme):26s} "
                    f"{targets:9s} accuracy {result['accuracy']:.3f} "
                    f"memory {result['memory_mib']:6.0f} MiB "
                    f"{result['step_seconds']:.2f} s/step",
                    flush=True,
                )
    print(
        "\n| scheme | targets | test accuracy (mean ± std) | peak train "
        "memory | s / step |\n|---|---|---|---|---|"
    )
    values = {"memory_budget_mib": args.memory_budget, "rows": {}}
    for (scheme, targets), runs in results.items():
        accuracy = np.array([run["accuracy"] for run in runs])
        memory = max(run["memory_mib"] for run in runs)
        over = " (over budget)" if memory > args.memory_budget else ""
        seconds = np.median([run["step_seconds"] for run in runs])
        values["rows"][f"{scheme}:{targets}"] = {
            "accuracy_mean": float(accuracy.mean()),
            "accuracy_std": float(accuracy.std()),
            "memory_mib": memory,
            "step_seconds": float(seconds),
            "runs": runs,
        }
        print(
            f"| {scheme_name(args, scheme)} | {targets} | "
            f"{accuracy.mean():.3f} ± {accuracy.std():.3f} | "
            f"{memory:.0f} MiB{over} | {seconds:.2f} |"
        )
    print(
        f"\nMemory budget: {args.memory_budget:g} MiB. Chance: 0.50. "
        f"Total time: {(time.perf_counter() - start) / 60:.1f} min"
    )
    path = harness.write_results(
        "long_videos", values, argv=passed, folder=harness.results_folder(args)
    )
    print(f"Results: {path}")


if __name__ == "__main__":
    main()
