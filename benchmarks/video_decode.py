"""Video files into the main job: clip-level decoding speed against the
training step, and the pipeline's memory for 1- and 30-minute videos.

What it prints, side by side in one run:

- `decoding`: clips per second out of `keras_cbm.data.
  video_clips_from_directory` (the main job's clip settings: 4 clips of
  12-24 steps, a step every 4 frames, 32x32 grayscale), read alone from a
  folder of `--files` links to the 1-minute video (a dataset's folder:
  files are decoded in parallel, and each stays open between reads, as
  the clips of a long video are read);
- `training`: clips per second through `train_on_batch` of the main job's
  trainer (`examples/action_recognition.py`'s model, optimizer and batch
  size, at its default flags) on batches of those clips held in memory;
- memory: for each video length and each way of reading it (clip-level:
  `video_clips_from_directory`; whole video: `video_dataset_from_directory`
  then `overlapping_clips`), in a fresh process, the peak resident memory
  (of the process and its decoding processes, started and idle before
  the baseline) while the pipeline yields `--batches` batches above the
  resident memory before it started (sampled every millisecond, as in
  `benchmarks/clip_memory.py`), for the main job's pipeline: batches of
  16 videos' clips, prefetched.

Speeds are medians over rounds that each time the decoding, then the
step. Targets: decoding at least 10x faster than the step consumes clips; the
clip-level memory grows at most 1.2x from 1 to 30 minutes while the
whole-video memory grows with the length.

The videos (32x32 H.264 at 25 fps, a keyframe every `--gop` frames,
frames that change every frame) are written once into `--cache`.

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/video_decode.py   # ~3 min
"""

import argparse
import os
import sys
import time

import harness

# What a decoding process imports by its first read.
WORKER_IMPORTS = (
    "import time, keras_cbm.data.video.video_reader; time.sleep(0.5)"
)
DECODE_TARGET = 10.0
MEMORY_TARGET = 1.2
FPS = 25
SIZE = 32


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--minutes", type=float, nargs=2, default=[1, 30], help="lengths"
    )
    parser.add_argument("--gop", type=int, default=50, help="keyframe gap")
    parser.add_argument(
        "--files", type=int, default=64, help="files of the speed folder"
    )
    parser.add_argument(
        "--clip-batches", type=int, default=96, help="batches decoded"
    )
    parser.add_argument("--steps", type=int, default=10, help="steps timed")
    parser.add_argument(
        "--rounds", type=int, default=5, help="speed rounds (median)"
    )
    parser.add_argument(
        "--batches", type=int, default=2, help="batches per memory run"
    )
    parser.add_argument(
        "--cache",
        default=str(harness.ROOT / "outputs" / "video_decode"),
        help="where the generated videos are kept",
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args()


def video_folder(args, minutes):
    """A class folder holding one generated video of `minutes`; written on
    the first call."""
    import numpy as np

    from keras_cbm.datasets.video_export import write_video

    folder = os.path.join(args.cache, f"{minutes:g}min_gop{args.gop}")
    path = os.path.join(folder, "video", "video.mp4")
    if not os.path.exists(path):
        num_frames = int(minutes * 60 * FPS)
        # A bright square moves one pixel a frame: every frame differs.
        position = np.arange(num_frames)
        frames = np.zeros((num_frames, SIZE, SIZE, 1), "uint8")
        for offset in range(4):
            frames[
                position, (position // SIZE + offset) % SIZE, position % SIZE
            ] = 255
        write_video(
            path + ".part.mp4",
            frames,
            FPS,
            options={"g": str(args.gop), "crf": "17"},
        )
        os.replace(path + ".part.mp4", path)
    return folder


def linked_folder(args):
    """A class folder of `--files` hard links to the 1-minute video."""
    source = os.path.join(video_folder(args, args.minutes[0]), "video")
    folder = os.path.join(args.cache, f"{args.files}_links_gop{args.gop}")
    for index in range(args.files):
        path = os.path.join(folder, "video", f"{index}.mp4")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.link(os.path.join(source, "video.mp4"), path)
    return folder


def clip_settings():
    """The main job's default flags, and its clip arguments."""
    job = harness.main_job()
    return job["flags"], job["clip_arguments"]


def clip_dataset(folder, seed=0):
    """The clip-level pipeline of the main job's `--videos`, repeated."""
    from keras_cbm import data

    _, clips = clip_settings()
    return data.video_clips_from_directory(
        folder,
        **clips,
        color_mode="grayscale",
        frame_size=(SIZE, SIZE),
        seed=seed,
    ).repeat()


def speeds(args):
    """`(decoded clips/s, trained clips/s, ratio)`: medians over `--rounds`
    rounds that each time the decoding, then the step, so that the load
    of a shared machine weighs on both alike."""
    import numpy as np
    import tensorflow as tf
    from action_recognition import build_trainer

    flags, clips = clip_settings()
    clips_per_batch = flags.batch_size * clips["clips_per_video"]
    batches = clip_dataset(linked_folder(args))
    batches = batches.batch(flags.batch_size).prefetch(tf.data.AUTOTUNE)
    trainer = build_trainer(flags, 12, (SIZE, SIZE, 1), steps=1000)
    rates = []
    for _ in range(args.rounds):
        # A fresh iterator, dropped before the step is timed: no decoding
        # runs ahead in the background during either measurement.
        iterator = iter(batches)
        next(iterator)
        start = time.perf_counter()
        held = [next(iterator) for _ in range(args.clip_batches)]
        decoding = len(held) * clips_per_batch / (time.perf_counter() - start)
        del iterator
        held = [
            ({k: v for k, v in inputs.items() if k != "video_id"}, label)
            for inputs, label in held
        ]
        trainer.train_on_batch(*held[0])  # Traces the step (first round).
        start = time.perf_counter()
        for step in range(args.steps):
            trainer.train_on_batch(*held[step % len(held)])
        training = args.steps * clips_per_batch / (time.perf_counter() - start)
        rates.append((decoding, training, decoding / training))
    return tuple(np.median(rates, axis=0))


def worker(mode, minutes, args):
    """One memory configuration: prints `{"peak": bytes}`, the peak
    resident memory while the main job's pipeline (batched, prefetched)
    yields `--batches` batches, above the memory before it started.

    The memory of the decoding processes counts; they are started before
    the baseline, because a process forked to start one counts the whole
    parent's memory until it runs the new program."""
    import concurrent.futures

    import tensorflow as tf

    from keras_cbm import data
    from keras_cbm.data.video.video_directory import DECODERS

    with concurrent.futures.ThreadPoolExecutor(DECODERS.size) as threads:
        list(
            threads.map(
                lambda _: DECODERS.run(exec, WORKER_IMPORTS),
                range(DECODERS.size),
            )
        )

    flags, clips = clip_settings()
    folder = video_folder(args, minutes)
    if mode == "clips":
        dataset = clip_dataset(folder)
    else:
        videos = data.video_dataset_from_directory(
            folder, color_mode="grayscale", frame_size=(SIZE, SIZE)
        )
        dataset = data.overlapping_clips(videos.repeat(), **clips, seed=0)
    dataset = dataset.batch(flags.batch_size).prefetch(tf.data.AUTOTUNE)
    with harness.PeakMemory() as peak:
        iterator = iter(dataset)
        for _ in range(args.batches):
            next(iterator)
    harness.emit({"peak": peak.bytes})


def measure(mode, minutes):
    """Runs `worker` in a fresh process."""
    return harness.run_fresh(
        __file__,
        ["--worker", mode, str(minutes), *sys.argv[1:]],
        env={"KERAS_BACKEND": "tensorflow"},
    )["peak"]


def main():
    args = parse_args()
    if args.worker:
        worker(args.worker[0], float(args.worker[1]), args)
        return
    for minutes in args.minutes:
        video_folder(args, minutes)  # Written once, before any timing.
    flags, clips = clip_settings()
    decoding, training, ratio = speeds(args)
    print(
        f"{SIZE}x{SIZE} H.264 at {FPS} fps, a keyframe every {args.gop} "
        f"frames; the main job's clips: {clips['clips_per_video']} of "
        f"{clips['min_length']}-{clips['max_length']} steps x "
        f"{clips['frame_stride']} frames, batches of {flags.batch_size} "
        f"videos; decoding from {args.files} files"
    )
    print(
        f"median of {args.rounds} rounds: clip-level decoding "
        f"{decoding:8.1f} clips/s | training step {training:6.1f} clips/s"
    )
    harness.check("decoding / training", ratio, DECODE_TARGET, at_most=False)
    mib = 2.0**20
    peaks = {
        (mode, minutes): measure(mode, minutes)
        for minutes in args.minutes
        for mode in ("clips", "whole")
    }
    print(f"{'video':>8} | {'clip-level peak':>15} | {'whole-video peak':>16}")
    for minutes in args.minutes:
        print(
            f"{minutes:>6g} min | {peaks['clips', minutes] / mib:11.1f} MiB "
            f"| {peaks['whole', minutes] / mib:12.1f} MiB"
        )
    short, long = args.minutes
    growth = {
        mode: peaks[mode, long] / peaks[mode, short]
        for mode in ("clips", "whole")
    }
    print(f"{long:g} vs {short:g} min: whole video {growth['whole']:.1f}x")
    harness.check(
        f"{long:g} vs {short:g} min: clip-level", growth["clips"], MEMORY_TARGET
    )


if __name__ == "__main__":
    main()
