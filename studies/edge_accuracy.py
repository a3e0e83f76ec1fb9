"""The accuracy drop of the quantized LiteRT steps of a trained main-job
model on motion_order's test set, against the SavedModel's float32 step.

Every test video of `motion_order/recognition` is streamed frame by frame
(every `--frame-stride`-th frame, as the model was trained) from zero
states through each step, all videos in one batch; a video's prediction is
the mean of its frames' probabilities and, as a second reading, its last
frame's. The main job trains on the frames' uint8 values as they are, so
the steps are exported with `scale=1`. int8 is calibrated
on `--calibration-videos` training videos (not test ones).

    python examples/action_recognition.py --output DIR   # trains the model
    TF_CPP_MIN_LOG_LEVEL=2 nice -n 10 python studies/edge_accuracy.py \\
        --model DIR/model.keras
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The harness the benchmarks and the studies share.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import harness  # noqa: E402


def motion_order_split(split, count, stride):
    """uint8 videos of `split` (every `stride`-th frame) padded with zeros
    to the longest, their lengths and labels."""
    import numpy as np

    from keras_cbm import datasets
    from keras_cbm.datasets.motion_order import motion_order_examples

    config = datasets.MotionOrder.builder_configs["recognition"]
    examples = [
        example for _, example in motion_order_examples(config, split, count)
    ]
    videos = [example["video"][::stride] for example in examples]
    lengths = np.array([len(video) for video in videos])
    padded = np.zeros((len(videos), lengths.max()) + videos[0].shape[1:])
    for k, video in enumerate(videos):
        padded[k, : len(video)] = video
    labels = np.array([example["label"] for example in examples])
    return padded.astype("uint8"), lengths, labels


def video_probabilities(step, videos, lengths):
    """Each video streamed through `step`: the mean and the last of its
    frames' probabilities (frames after its end are left out; they come
    after every frame that counts, so change none of them)."""
    import numpy as np

    states = step.zero_states(len(videos))
    total, last = 0.0, None
    for t in range(videos.shape[1]):
        probabilities, states = step(videos[:, t], states)
        live = (t < lengths)[:, None]
        total = total + np.where(live, probabilities, 0.0)
        last = (
            probabilities
            if last is None
            else np.where(live, probabilities, last)
        )
    return total / lengths[:, None], last


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="A .keras main job.")
    parser.add_argument("--frame-stride", type=int, default=4)
    parser.add_argument("--test-videos", type=int, default=None)
    parser.add_argument("--calibration-videos", type=int, default=16)
    harness.add_results_flag(parser)
    args = parser.parse_args()

    import keras
    import numpy as np

    import keras_cbm.training  # noqa: F401  (registers CoherenceModel)
    from keras_cbm import serving

    trainer = keras.saving.load_model(args.model)
    videos, lengths, labels = motion_order_split(
        "test", args.test_videos, args.frame_stride
    )
    calibration, _, _ = motion_order_split(
        "train", args.calibration_videos, args.frame_stride
    )
    print(
        f"{time.strftime('%Y-%m-%d')}, Keras {keras.__version__}: "
        f"{args.model} on {len(videos)} motion_order/recognition test "
        f"videos, {lengths.min()}-{lengths.max()} steps (stride "
        f"{args.frame_stride}); int8 calibrated on {len(calibration)} train "
        "videos"
    )
    with tempfile.TemporaryDirectory() as directory:
        steps = {
            "SavedModel float32": serving.SavedModelStep(
                serving.export(
                    trainer, os.path.join(directory, "saved"), scale=1
                )
            )
        }
        for name, kwargs in (
            ("float32", {}),
            ("float16", {"quantization": "float16"}),
            ("dynamic-range", {"quantization": "dynamic_range"}),
            (
                "int8",
                {
                    "quantization": "int8",
                    "representative_videos": calibration,
                },
            ),
        ):
            path = serving.export_step(
                trainer,
                os.path.join(directory, f"{name}.tflite"),
                scale=1,
                **kwargs,
            )
            steps[f"LiteRT {name}"] = serving.LiteRTStep(path)
        print(
            "\n| step | accuracy (mean) | drop (points) | accuracy (last "
            "frame) | drop (points) | max abs. probability difference |\n"
            "|---|---:|---:|---:|---:|---:|"
        )
        reference = None
        values = {}
        for name, step in steps.items():
            mean, last = video_probabilities(step, videos, lengths)
            accuracies = [
                100 * float(np.mean(np.argmax(p, -1) == labels))
                for p in (mean, last)
            ]
            if reference is None:
                reference = accuracies, mean
            drops = [
                r - a for r, a in zip(reference[0], accuracies, strict=True)
            ]
            difference = float(np.abs(mean - reference[1]).max())
            values[name] = {
                "accuracy_mean": accuracies[0],
                "drop_mean": drops[0],
                "accuracy_last_frame": accuracies[1],
                "drop_last_frame": drops[1],
                "max_probability_difference": difference,
            }
            print(
                f"| {name} | {accuracies[0]:.2f} | {drops[0]:.2f} | "
                f"{accuracies[1]:.2f} | {drops[1]:.2f} | {difference:.4f} |"
            )
    path = harness.write_results(
        "edge_accuracy", values, folder=harness.results_folder(args)
    )
    print(f"Results: {path}")


if __name__ == "__main__":
    main()
