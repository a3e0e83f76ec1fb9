"""Frames per second of many live streams through one exported step:
`StreamServer`'s one call per round (every stream's frame in one batch)
against one call per stream, for 1, 8 and 64 streams.

The main job's model (as in `benchmarks/edge_step.py`, untrained) exported
as LiteRT float32 and ONNX, each runtime on one thread. For `n` streams, a
round pushes one frame per stream: `batched` flushes the server (one step
call of batch `n`), `per stream` calls the step once per stream (batch 1,
each stream's states kept apart). The two are interleaved in repeats, the
figure is the median over repeats.

    TF_CPP_MIN_LOG_LEVEL=2 nice -n 10 python benchmarks/stream_throughput.py
    python benchmarks/stream_throughput.py --quick    # smoke test
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FRAME_SHAPE = (32, 32, 1)


def batched(step, frames, streams, rounds):
    """Seconds for `rounds` rounds of `streams` streams through a server."""
    from keras_cbm.serving import StreamServer

    server = StreamServer(step)
    for stream in range(streams):
        server.add(stream)
    start = time.perf_counter()
    for round_index in range(rounds):
        for stream in range(streams):
            server.push(stream, frames[(round_index + stream) % len(frames)])
        server.flush()
    return time.perf_counter() - start


def per_stream(step, frames, streams, rounds):
    """Seconds for the same rounds, one call per stream."""
    states = [step.zero_states(1) for _ in range(streams)]
    start = time.perf_counter()
    for round_index in range(rounds):
        for stream in range(streams):
            frame = frames[(round_index + stream) % len(frames)]
            _, states[stream] = step(frame[None], states[stream])
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument(
        "--frames", type=int, default=640, help="Frames per measurement."
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.streams, args.frames, args.repeats = [1, 4], 8, 1

    import keras
    import numpy as np

    from keras_cbm import models
    from keras_cbm import serving

    keras.utils.set_random_seed(0)
    model = models.standalone_classifier(
        12,
        frame_shape=FRAME_SHAPE,
        stage_filters=(8, 16),
        blocks_per_stage=1,
        temporal_gate="recurrent",
    )
    frames = np.random.default_rng(0).integers(
        0, 256, (64,) + FRAME_SHAPE, "uint8"
    )
    print(
        f"{time.strftime('%Y-%m-%d')}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPUs, one thread per runtime, {args.frames} "
        f"frames a measurement, median of {args.repeats}"
    )
    print(
        "\n| runtime | streams | batched (frames/s) | per stream "
        "(frames/s) | batched / per stream |\n|---|---:|---:|---:|---:|"
    )
    with tempfile.TemporaryDirectory() as directory:
        steps = {
            "LiteRT float32": serving.LiteRTStep(
                serving.export_step(
                    model, os.path.join(directory, "step.tflite")
                ),
                num_threads=1,
            ),
            "ONNX": serving.OnnxStep(
                serving.export_step(
                    model, os.path.join(directory, "step.onnx"), format="onnx"
                ),
                num_threads=1,
            ),
        }
        for name, step in steps.items():
            per_stream(step, frames, 1, 8)  # warm-up
            for streams in args.streams:
                rounds = max(args.frames // streams, 1)
                together, alone = [], []
                for _ in range(args.repeats):
                    together.append(batched(step, frames, streams, rounds))
                    alone.append(per_stream(step, frames, streams, rounds))
                count = rounds * streams
                fast = count / statistics.median(together)
                slow = count / statistics.median(alone)
                print(
                    f"| {name} | {streams} | {fast:.0f} | {slow:.0f} | "
                    f"{fast / slow:.2f} |"
                )


if __name__ == "__main__":
    main()
