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
import json
import os
import resource
import subprocess
import sys
import threading
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLIP_TARGET = 1.1
FULL_TARGET = 10.0


def resident_bytes(pid="self"):
    """The resident memory of a process and all its descendants (e.g. the
    processes that decode video files), in bytes."""
    total = 0
    try:
        with open(f"/proc/{pid}/statm") as statm:
            total = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        for thread in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{thread}/children") as children:
                total += sum(
                    resident_bytes(child) for child in children.read().split()
                )
    except OSError:
        pass  # The process (or a thread) ended while it was read.
    return total


def step_memory(step):
    """Peak RSS during `step()` above the RSS before it, in bytes."""
    before = resident_bytes()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], resident_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        step()
    finally:
        done.set()
        sampler.join()
    peak[0] = max(peak[0], resident_bytes())
    return peak[0] - before


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
    print(json.dumps({"step": step, "peak": peak}))


def measure(mode, frames, args):
    """Runs `worker` in a fresh process."""
    command = [sys.executable, __file__, "--worker", mode, str(frames)]
    command += sys.argv[1:]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    output = subprocess.run(
        command, env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
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
    args = parser.parse_args()
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
        rows[frames] = {m: measure(m, frames, args) for m in ("full", "clips")}
        full, clips = rows[frames]["full"], rows[frames]["clips"]
        print(
            f"{frames:>6} | {full['step'] / mib:9.1f} "
            f"{full['peak'] / mib:9.1f} | {clips['step'] / mib:9.1f} "
            f"{clips['peak'] / mib:9.1f}"
        )
    shortest, longest = min(args.frames), max(args.frames)
    for mode, name, target, passes in (
        ("clips", "clip training", CLIP_TARGET, lambda r: r <= CLIP_TARGET),
        ("full", "full video", FULL_TARGET, lambda r: r >= FULL_TARGET),
    ):
        ratio = rows[longest][mode]["step"] / rows[shortest][mode]["step"]
        sign = "<=" if mode == "clips" else ">="
        print(
            f"{name} step memory, {longest} vs {shortest} frames: "
            f"{ratio:.2f}x (target {sign} {target}x): "
            f"{'PASS' if passes(ratio) else 'MISS'}"
        )


if __name__ == "__main__":
    main()
