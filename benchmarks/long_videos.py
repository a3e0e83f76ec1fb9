"""The paper's claim 3 where it applies: long videos whose evidence is
spread over the whole video, too long for full-video training in a small
memory budget.

Task: `keras_cbm.datasets.temporal_tasks.order_of_events` with `--frames`
frames (512): a bright and a dark burst at random times anywhere in the
video (their times uniform over the whole video), the label which came
first, read out at the LAST frame of the whole video (16x16 frames, faint
noise; a single-frame model is at chance, 0.50). Every scheme trains the
same per-frame classifier (a `DeepCBM` stack of `--depth` layers with the
settings of `memory_tasks.py`'s `--model` family, then per frame a global
average pool and a dense layer, trained with the video's label on every
frame it trains) for `--steps` Adam steps of `--batch-size` videos:

* `full video`: back-propagation through all frames;
* `truncated, last N`: the first frames run without gradient (inference),
  and the last `--truncation` frames train from the states they reach;
* `clips + handover (+ coherence)`: `keras_cbm.training.CoherenceModel`
  with `state_handover=True` on `overlapping_clips` (`--clips-per-video`
  clips of `--min-length`-`--max-length` frames, at least `--min-overlap`
  shared), with the coherence loss at `--coherence-weight` and at 0.

Evaluation: every test video runs whole, in inference, from its first
frame; the last frame's prediction is the video's. Memory: the peak
resident memory of the process above what it held before training
(`harness.PeakMemory`), the largest over the seeds; rows above
`--memory-budget` MiB are marked.

    python benchmarks/long_videos.py            # ~2 h a seed, 2 CPU cores
    python benchmarks/long_videos.py --quick    # tiny, < 1 min

At the defaults a training step of a 512-frame video costs seconds on 2
CPU cores (the loop's 512 sequential steps, not its FLOPs, dominate):
measured with 10 steps on quiet cores, TensorFlow: full video ~5 s a step
at a peak of 1.6 GiB (8.4 GiB in a run with the cores shared; 1.8 GiB on
JAX), truncated 1.3 s and 0.1 GiB, clips with handover 3 s and 0.5 GiB.
"""

import os
import sys

# `harness` and `memory_tasks` lie beside this script.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="Tiny version, ~1 minute.")
    add("--frames", type=int, default=512, help="Frames per video.")
    add("--model", default="cbm-rgated-add-tanhT", choices=memory_tasks.MODELS)
    add("--depth", type=int, default=2)
    add("--filters", type=int, default=8)
    add("--steps", type=int, default=600, help="Optimizer steps per scheme.")
    add("--batch-size", type=int, default=8)
    add("--learning-rate", type=float, default=3e-3)
    add("--seeds", type=int, default=1)
    add("--truncation", type=int, default=64, help="Frames trained, last N.")
    add("--clips-per-video", type=int, default=4)
    add("--min-length", type=int, default=32)
    add("--max-length", type=int, default=64)
    add("--min-overlap", type=int, default=8)
    add("--coherence-weight", type=float, default=0.8)
    add("--memory-budget", type=float, default=1024, help="MiB.")
    add("--train-videos", type=int, default=800)
    add("--test-videos", type=int, default=200)
    args = parser.parse_args(argv)
    if args.quick:
        args.frames = 24
        args.depth = 1
        args.filters = 2
        args.steps = 2
        args.batch_size = 2
        args.truncation = 8
        args.clips_per_video = 2
        args.min_length, args.max_length, args.min_overlap = 4, 8, 2
        args.train_videos = args.test_videos = 4
    return args


def per_frame_classifier(args):
    """Frames `(batch, time, 16, 16, 1)` to per-frame logits."""
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
    return keras.Model(frames, keras.layers.Dense(2)(pooled))


class TruncatedBackpropagation(keras.Model):
    """Trains `net` on the last `train_frames` frames of each video, from
    the states an inference run over the frames before them reaches (all
    frames when the video is no longer); the label of the video is every
    trained frame's target."""

    def __init__(self, net, train_frames, **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.train_frames = train_frames
        self.run = RecurrentStates(net)

    def call(self, videos, training=False):
        if not training or videos.shape[1] <= self.train_frames:
            return self.net(videos, training=training)
        _, states = self.run(videos[:, : -self.train_frames], training=False)
        states = keras.tree.map_structure(ops.stop_gradient, states)
        outputs, _ = self.run(
            videos[:, -self.train_frames :],
            initial_states=states,
            training=True,
        )
        return outputs

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        labels = ops.repeat(ops.expand_dims(y, 1), y_pred.shape[1], axis=1)
        return super().compute_loss(
            x, labels, y_pred, sample_weight, training=training
        )


def schemes(args):
    """`(name, settings)` of every row."""
    return [
        ("full video", {"train_frames": args.frames}),
        (
            f"truncated, last {args.truncation}",
            {"train_frames": args.truncation},
        ),
        (
            f"clips + handover + coherence {args.coherence_weight:g}",
            {"coherence": args.coherence_weight},
        ),
        ("clips + handover, no coherence", {"coherence": 0.0}),
    ]


def trainer_and_batches(args, settings, net, videos, labels, seed):
    """The scheme's compiled trainer and its endless training batches."""
    dataset = tf.data.Dataset.from_tensor_slices(
        {"video": videos, "label": labels}
    ).shuffle(len(videos), seed=seed)
    if "train_frames" in settings:
        trainer = TruncatedBackpropagation(net, settings["train_frames"])
        batches = dataset.map(lambda e: (e["video"], e["label"]))
    else:
        trainer = training.CoherenceModel(
            net,
            coherence_weight=settings["coherence"],
            state_handover=True,
        )
        batches = data.overlapping_clips(
            dataset.repeat(),
            args.clips_per_video,
            args.min_length,
            args.max_length,
            min_overlap=args.min_overlap,
            seed=seed,
        )
    trainer.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipvalue=5.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    batches = batches.repeat().batch(args.batch_size, drop_remainder=True)
    return trainer, batches.prefetch(tf.data.AUTOTUNE)


def run_scheme(args, settings, train, test, seed):
    keras.utils.set_random_seed(seed)
    net = per_frame_classifier(args)
    trainer, batches = trainer_and_batches(args, settings, net, *train, seed)
    start = time.perf_counter()
    with harness.PeakMemory(interval=0.005) as memory:
        trainer.fit(batches, epochs=1, steps_per_epoch=args.steps, verbose=0)
    seconds = time.perf_counter() - start
    videos, labels = test
    logits = net.predict(videos, batch_size=args.batch_size, verbose=0)
    return {
        "accuracy": float(np.mean(np.argmax(logits[:, -1], -1) == labels)),
        "memory_mib": memory.bytes / 2**20,
        "seconds": seconds,
    }


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    train, test = (
        temporal_tasks.order_of_events(count, frames=args.frames, seed=seed)
        for seed, count in enumerate((args.train_videos, args.test_videos))
    )
    print(
        f"order of events over {args.frames} frames; {args.depth}-layer "
        f"{args.model}, {args.filters} filters; {args.steps} Adam steps of "
        f"{args.batch_size} videos (lr {args.learning_rate:g}); "
        f"{args.train_videos} training, {args.test_videos} test videos; "
        f"{args.seeds} seed(s); clips: {args.clips_per_video} of "
        f"{args.min_length}-{args.max_length} frames",
        flush=True,
    )
    results = {}
    for seed in range(args.seeds):
        for name, settings in schemes(args):
            result = run_scheme(args, settings, train, test, seed)
            results.setdefault(name, []).append(result)
            print(
                f"seed {seed} {name:40s} accuracy {result['accuracy']:.3f} "
                f"memory {result['memory_mib']:6.0f} MiB "
                f"{result['seconds']:5.0f} s",
                flush=True,
            )
    print(
        "\n| scheme | test accuracy (mean ± std) | peak train memory | "
        "train time |\n|---|---|---|---|"
    )
    for name, runs in results.items():
        accuracy = np.array([run["accuracy"] for run in runs])
        memory = max(run["memory_mib"] for run in runs)
        over = " (over budget)" if memory > args.memory_budget else ""
        seconds = np.mean([run["seconds"] for run in runs])
        print(
            f"| {name} | {accuracy.mean():.3f} ± {accuracy.std():.3f} | "
            f"{memory:.0f} MiB{over} | {seconds:.0f} s |"
        )
    print(
        f"\nMemory budget: {args.memory_budget:g} MiB. Chance: 0.50. "
        f"Total time: {(time.perf_counter() - start) / 60:.1f} min"
    )


if __name__ == "__main__":
    harness.fresh_heap()
    main()
