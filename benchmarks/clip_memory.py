"""Training memory: full-video back-propagation through time against
overlap coherence training on clips, for videos of growing length.

Every configuration runs in a fresh process, which builds the same
standalone deep CBM classifier and makes two training steps: on the whole
video (`fit` of the per-frame model on `(1, frames, ...)`), or with
`CoherenceModel` on `--clips` overlapping clips of `--clip-length` frames
of that video (`keras_cbm.data.overlapping_clips`). Memory is the resident
set size (RSS), sampled every millisecond: "step" is the peak during a
step after the first minus the RSS just before it (what the step itself
needs; the first step also traces the graph), "peak" is the process's peak RSS
(`ru_maxrss`). Large allocations are returned to the system when freed
(`MALLOC_MMAP_THRESHOLD_`), so that each step is measured on its own;
the median of three steps is kept.
The growth ratios compare the step memory of the longest and shortest
videos; targets: clips <= 1.1x, full video >= 10x.

    python benchmarks/clip_memory.py                  # a few minutes on CPU
    python benchmarks/clip_memory.py --frames 32 128 --size 64 --clips 8
"""

import argparse
import resource
import sys

import harness

CLIP_TARGET = 1.1
FULL_TARGET = 10.0


def step_memory(step):
    """Peak resident memory during `step()` above that before it, bytes."""
    with harness.PeakMemory() as peak:
        step()
    return peak.bytes


def worker(mode, frames, args):
    """One configuration: prints `{"step": bytes, "peak": bytes}`."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_cbm import data
    from keras_cbm import models
    from keras_cbm.training import CoherenceModel

    keras.utils.set_random_seed(0)
    frame_shape = (args.size, args.size, 3)
    video = np.random.default_rng(0).random((frames,) + frame_shape)
    video = video.astype("float32")
    model = models.standalone_classifier(
        4,
        frame_shape=frame_shape,
        stage_filters=tuple(args.filters),
        blocks_per_stage=1,
        batch_norm=True,
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if mode == "full":
        model.compile(keras.optimizers.Adam(1e-3), loss)
        batch = (video[None], np.zeros((1, frames), "int32"))
        trainer = model
    else:
        videos = tf.data.Dataset.from_tensors({"video": video, "label": 0})
        clips = data.overlapping_clips(
            videos, args.clips, args.clip_length, args.clip_length, seed=0
        )
        inputs, label = next(iter(clips.batch(1)))
        batch = ({k: v for k, v in inputs.items() if k != "video_id"}, label)
        trainer = CoherenceModel(model, coherence_weight=1.0)
        trainer.compile(keras.optimizers.Adam(1e-3), loss)
    trainer.train_on_batch(*batch)
    # The median of three steps: single samples vary by some MiB.
    step = sorted(
        step_memory(lambda: trainer.train_on_batch(*batch)) for _ in range(3)
    )[1]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    harness.emit({"step": step, "peak": peak})


def measure(mode, frames, argv):
    """Runs `worker` in a fresh process."""
    return harness.run_fresh(
        __file__,
        ["--worker", mode, str(frames), *argv],
        env={"KERAS_BACKEND": "tensorflow"},
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--frames", type=int, nargs="+", default=[32, 64, 128, 256, 512]
    )
    parser.add_argument("--clip-length", type=int, default=16)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--size", type=int, default=128, help="frame side")
    parser.add_argument("--filters", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args)
        return

    mib = 2.0**20
    print(
        f"standalone deep CBM, {args.size}x{args.size} frames, filters "
        f"{args.filters}; clips: {args.clips} x {args.clip_length} frames"
    )
    print(
        f"{'frames':>6} | {'full step':>9} {'full peak':>9} | "
        f"{'clip step':>9} {'clip peak':>9}   (MiB)"
    )
    rows = {}
    for frames in args.frames:
        rows[frames] = {
            m: measure(m, frames, sys.argv[1:]) for m in ("full", "clips")
        }
        full, clips = rows[frames]["full"], rows[frames]["clips"]
        print(
            f"{frames:>6} | {full['step'] / mib:9.1f} "
            f"{full['peak'] / mib:9.1f} | {clips['step'] / mib:9.1f} "
            f"{clips['peak'] / mib:9.1f}"
        )
    shortest, longest = min(args.frames), max(args.frames)
    for mode, name, goal, at_most in (
        ("clips", "clip training", CLIP_TARGET, True),
        ("full", "full video", FULL_TARGET, False),
    ):
        ratio = rows[longest][mode]["step"] / rows[shortest][mode]["step"]
        harness.check(
            f"{name} step memory, {longest} vs {shortest} frames",
            ratio,
            goal,
            at_most,
        )


if __name__ == "__main__":
    main()
