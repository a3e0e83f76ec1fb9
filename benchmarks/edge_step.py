"""Per-frame latency and size of the exported step on this CPU: SavedModel,
LiteRT float32 / float16 / dynamic-range / int8, ONNX.

Two models, seeded and untrained (latency and size do not depend on the
weights' values): the main job's (`examples/action_recognition.py`: a
5-layer `standalone_classifier`, stage filters 8 and 16, gated CBM, batch
normalisation, 32x32 grey frames, 12 classes) and a 15-layer stack (one
stage of 16 filters, 7 residual blocks). Each step is exported
(`keras_cbm.serving.export` for the SavedModel's `step`, `export_step` for
the others; int8 calibrated on 4 motion_order test videos) and run from one
thread (TensorFlow's, the interpreter's, onnxruntime's) on one stream (batch
1). The timed frames of all runtimes are interleaved in rounds, so that load
on a shared machine hits them alike; a runtime's latency is the median of
its rounds' per-frame means.

    TF_CPP_MIN_LOG_LEVEL=2 nice -n 10 python benchmarks/edge_step.py
    python benchmarks/edge_step.py --quick    # smoke test: 3 rounds
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FRAME_SHAPE = (32, 32, 1)
MODELS = {
    "main job (5 layers)": {"stage_filters": (8, 16), "blocks_per_stage": 1},
    "15-layer stack": {"stage_filters": (16,), "blocks_per_stage": 7},
}
RUNTIMES = (
    "SavedModel",
    "LiteRT float32",
    "LiteRT float16",
    "LiteRT dynamic-range",
    "LiteRT int8",
    "ONNX",
)


def calibration_videos(count=4, stride=4):
    """The first `count` motion_order test videos, every `stride`-th frame,
    cut to the shortest."""
    import numpy as np

    from keras_cbm import datasets
    from keras_cbm.datasets.motion_order import motion_order_examples

    config = datasets.MotionOrder.builder_configs["recognition"]
    videos = [
        example["video"][::stride]
        for _, example in motion_order_examples(config, "test", count)
    ]
    length = min(len(video) for video in videos)
    return np.stack([video[:length] for video in videos])


def size_of(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def exported_steps(model, directory, videos):
    """`{runtime: (step, bytes)}` for every runtime of `RUNTIMES`."""
    from keras_cbm import serving

    def litert(name, **kwargs):
        path = serving.export_step(
            model, os.path.join(directory, f"{name}.tflite"), **kwargs
        )
        return serving.LiteRTStep(path, num_threads=1), size_of(path)

    saved = serving.export(model, os.path.join(directory, "saved_model"))
    onnx = serving.export_step(
        model, os.path.join(directory, "step.onnx"), format="onnx"
    )
    return {
        "SavedModel": (serving.SavedModelStep(saved), size_of(saved)),
        "LiteRT float32": litert("float32"),
        "LiteRT float16": litert("float16", quantization="float16"),
        "LiteRT dynamic-range": litert(
            "dynamic_range", quantization="dynamic_range"
        ),
        "LiteRT int8": litert(
            "int8", quantization="int8", representative_videos=videos
        ),
        "ONNX": (serving.OnnxStep(onnx, num_threads=1), size_of(onnx)),
    }


def latencies(steps, frames, rounds, per_round):
    """Median per-frame seconds of each step, one stream, interleaved."""
    states = {name: step.zero_states(1) for name, (step, _) in steps.items()}
    times = {name: [] for name in steps}
    for round_index in range(rounds + 1):  # the first round warms up
        for name, (step, _) in steps.items():
            start = time.perf_counter()
            for k in range(per_round):
                frame = frames[(round_index * per_round + k) % len(frames)]
                _, states[name] = step(frame[None], states[name])
            if round_index:
                times[name].append((time.perf_counter() - start) / per_round)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--frames-per-round", type=int, default=50)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.frames_per_round = 3, 5

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from keras_cbm import models

    videos = calibration_videos()
    frames = videos.reshape((-1,) + FRAME_SHAPE)
    print(
        f"{time.strftime('%Y-%m-%d')}, Keras {keras.__version__}, "
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, one thread, "
        f"batch 1, {args.rounds} rounds of {args.frames_per_round} frames"
    )
    print(
        "\n| model | runtime | size (KiB) | ms / frame | x SavedModel |\n"
        "|---|---|---:|---:|---:|"
    )
    for model_name, layout in MODELS.items():
        keras.utils.set_random_seed(0)
        model = models.standalone_classifier(
            12, frame_shape=FRAME_SHAPE, temporal_gate="recurrent", **layout
        )
        with tempfile.TemporaryDirectory() as directory:
            steps = exported_steps(model, directory, videos)
            seconds = latencies(
                steps, frames, args.rounds, args.frames_per_round
            )
        for name in RUNTIMES:
            print(
                f"| {model_name} | {name} | {steps[name][1] / 1024:.0f} | "
                f"{seconds[name] * 1e3:.3f} | "
                f"{seconds[name] / seconds['SavedModel']:.2f} |"
            )


if __name__ == "__main__":
    main()
