"""Peak training memory of streaming truncated BPTT from a directory of
video files, against the videos' length: `StreamingBPTT` on
`video_chunks_from_directory` (each chunk decoded once, in order), one
epoch (`--epochs`) per row, each row in a fresh process (TensorFlow
backend).

Videos: `--videos` H.264 files of `--frames` frames each (one per row of
a batch), 16x16 grayscale, a moving bar. Model: `ConvCBM2D(4)`, per-frame
pooling and a dense layer; chunks of `--chunk` frames, SGD. Memory: the
peak resident memory of the process and its decoding processes (started
before the baseline) while `fit` runs (after a 2-batch `fit` that
traces the step), above what they held before
(`harness.PeakMemory`). Goal (issue 27): the peak at
10,000 frames a video is at most 1.1x the peak at 1,000.

    python benchmarks/streaming_memory.py     # ~5 min on 2 CPU cores
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import harness  # noqa: E402

SIZE = 16
GOAL = 1.1


def write_videos(folder, frames, count):
    """`count` H.264 files of `frames` frames in `folder/bars/` (written
    once; kept for later runs)."""
    import av
    import numpy as np

    os.makedirs(os.path.join(folder, "bars"), exist_ok=True)
    for index in range(count):
        path = os.path.join(folder, "bars", f"{index}.mp4")
        if os.path.exists(path):
            continue
        with av.open(path + ".part", "w", format="mp4") as file:
            stream = file.add_stream("libx264", rate=25)
            stream.width = stream.height = SIZE
            stream.pix_fmt = "yuv420p"
            for frame_index in range(frames):
                image = np.full((SIZE, SIZE, 3), 16 * index, "uint8")
                image[:, (frame_index + index) % SIZE] = 255
                frame = av.VideoFrame.from_ndarray(image, "rgb24")
                file.mux(stream.encode(frame))
            file.mux(stream.encode())
        os.replace(path + ".part", path)
    return folder


def row(folder, videos, chunk, epochs):
    """Trains `epochs` epochs in this process; returns `{"peak": MiB above
    the start, "total": MiB of the process at its peak, "seconds": s,
    "batches": n an epoch}`."""
    import concurrent.futures

    import keras

    from keras_cbm.data import video_chunks_from_directory
    from keras_cbm.data.video.video_directory import DECODERS
    from keras_cbm.data.video.video_reader import read_frames
    from keras_cbm.layers import ConvCBM2D
    from keras_cbm.training import StreamingBPTT

    stream = video_chunks_from_directory(
        folder, videos, chunk, color_mode="grayscale", shuffle=False
    )
    # The decoding processes start before the baseline: a process forked
    # to start one counts its parent's memory until it runs its program.
    first = stream.file_paths[0]
    with concurrent.futures.ThreadPoolExecutor(DECODERS.size) as threads:
        list(
            threads.map(
                lambda _: DECODERS.run(
                    read_frames, first, [0], "grayscale", True
                ),
                range(DECODERS.size),
            )
        )
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((None, SIZE, SIZE, 1)),
            keras.layers.Rescaling(1 / 255),
            ConvCBM2D(4, 3, padding="same", return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D()),
            keras.layers.Dense(2),
        ]
    )
    trainer = StreamingBPTT(net)
    trainer.compile(
        keras.optimizers.SGD(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    # Tracing's memory is the same at any length: one short fit first.
    trainer.fit(stream.take(2), epochs=1, verbose=0)
    start = time.perf_counter()
    with harness.PeakMemory() as memory:
        trainer.fit(stream, epochs=epochs, verbose=0)
    return {
        "peak": memory.bytes / 2**20,
        "total": memory.peak / 2**20,
        "seconds": time.perf_counter() - start,
        "batches": int(stream.cardinality()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs=2, default=[1000, 10000])
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--folder", default=str(harness.ROOT / "outputs" / "streaming_memory")
    )
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        folder, epochs = json.loads(args.row)
        harness.emit(row(folder, args.videos, args.chunk, epochs))
        return
    results = []
    epochs = [args.epochs, args.epochs]
    for frames, row_epochs in zip(args.frames, epochs, strict=True):
        folder = write_videos(
            os.path.join(args.folder, f"{frames}_frames"), frames, args.videos
        )
        results.append(
            harness.run_fresh(
                __file__,
                [
                    "--videos",
                    str(args.videos),
                    "--chunk",
                    str(args.chunk),
                    "--row",
                    json.dumps([folder, row_epochs]),
                ],
                env={"KERAS_BACKEND": "tensorflow"},
            )
        )
    print(
        f"StreamingBPTT on video_chunks_from_directory: {args.videos} files "
        f"of {SIZE}x{SIZE} grayscale H.264, chunks of {args.chunk} frames, "
        "TensorFlow"
    )
    print(
        "| frames a video | epochs x batches | peak MiB above the start | "
        "process peak MiB | seconds |"
    )
    print("|---|---|---|---|---|")
    for frames, row_epochs, result in zip(
        args.frames, epochs, results, strict=True
    ):
        print(
            f"| {frames} | {row_epochs} x {result['batches']} | "
            f"{result['peak']:.1f} | {result['total']:.0f} | "
            f"{result['seconds']:.0f} |"
        )
    print(
        f"growth above the start, {args.frames[1]} against "
        f"{args.frames[0]} frames: "
        f"{results[1]['peak'] / results[0]['peak']:.2f}x"
    )
    harness.check(
        f"process peak memory at {args.frames[1]} frames a video against "
        f"{args.frames[0]}",
        results[1]["total"] / results[0]["total"],
        GOAL,
    )
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    harness.fresh_heap()
    main()
