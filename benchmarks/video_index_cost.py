"""What the checks of real-world video files cost, side by side in one run.

For a 1-minute 32x32 H.264 video at 25 fps (a keyframe every 50 frames,
B-frames) and the same frames at 320x240, it prints:

- `index / decode`: indexing a file when a dataset is made (demuxing every
  packet, decoding the first 32 frames to check their order, the checks
  for truncation), over a full sequential decode of it;
- `sequential / seeking`: reading the frames of 4 clips (12-24 steps, a
  step every 4 frames) from a file whose timestamps cannot be trusted
  (decoded from its start), over the same read with seeks;
- `turned / as stored`: a whole-video read of a file with a 90-degree
  display matrix, applied, over the same read with `apply_rotation=False`.

Each figure is the median of `--rounds` timings of both sides, taken in
turn. Goal: indexing at most 0.2x a full decode.

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/video_index_cost.py  # ~1 min
"""

import argparse
import dataclasses
import os
import statistics
import tempfile
import time

import av
import harness
import numpy as np

from keras_cbm.data.video import video_index
from keras_cbm.data.video import video_reader

FPS = 25
INDEX_GOAL = 0.2


def write(path, size, seconds, rotation=None):
    """A video of moving noise: frames that change every frame."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size[0] * 2, size[1] * 2, 3), "uint8")
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 50
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for index in range(seconds * FPS):
            shift = index % size[0]
            image = base[shift : shift + size[0], shift : shift + size[1]]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image))
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def timed(function, rounds):
    """Median seconds of `rounds` calls."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def side_by_side(first, second, rounds):
    """Median seconds of each, timed in turn."""
    return (
        statistics.median(timed(first, 1) for _ in range(rounds)),
        statistics.median(timed(second, 1) for _ in range(rounds)),
    )


def clip_frames(num_frames, rng):
    """The frames of 4 clips of 12-24 steps, a step every 4 frames."""
    frames = set()
    for _ in range(4):
        steps = rng.integers(12, 25)
        start = rng.integers(0, num_frames - 4 * steps)
        frames.update(range(start, start + 4 * steps, 4))
    return np.array(sorted(frames))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    os.environ["KERAS_HOME"] = folder  # A cold index cache.
    print(f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}")
    for size in ((32, 32), (240, 320)):
        name = f"{size[1]}x{size[0]}"
        path = write(
            os.path.join(folder, f"{name}.mp4"), size, args.seconds, 90
        )
        print(*measure(path, args.rounds), sep="\n")


def measure(path, rounds):
    """The lines `main` prints for the file at `path`."""
    index_time, decode_time = side_by_side(
        lambda: video_index.read_frame_index(path),
        lambda: video_reader.read_video(path),
        rounds,
    )
    index = video_index.frame_index(path)
    wanted = clip_frames(index.num_frames, np.random.default_rng(1))
    seeking_time = timed(lambda: video_reader.read_frames(path, wanted), rounds)
    original = video_reader.frame_index
    forced = dataclasses.replace(index, sequential="forced")
    video_reader.frame_index = lambda _: forced
    try:
        sequential_time = timed(
            lambda: video_reader.read_frames(path, wanted), rounds
        )
    finally:
        video_reader.frame_index = original
    turned_time, stored_time = side_by_side(
        lambda: video_reader.read_video(path),
        lambda: video_reader.read_video(path, apply_rotation=False),
        rounds,
    )
    index_ratio = index_time / decode_time
    turn_ratio = turned_time / stored_time
    return [
        f"{os.path.basename(path)}, {index.num_frames} frames, "
        f"{len(wanted)} read:",
        f"  index / decode        {index_ratio:6.3f}  "
        f"({index_time * 1e3:.0f} / {decode_time * 1e3:.0f} ms)  "
        f"{harness.verdict(index_ratio, INDEX_GOAL)} "
        f"(goal <= {INDEX_GOAL})",
        f"  sequential / seeking  {sequential_time / seeking_time:6.1f}  "
        f"({sequential_time * 1e3:.0f} / {seeking_time * 1e3:.0f} ms)",
        f"  turned / as stored    {turn_ratio:6.2f}  "
        f"({turned_time * 1e3:.0f} / {stored_time * 1e3:.0f} ms)",
    ]


if __name__ == "__main__":
    main()
