"""Streams a video file frame by frame through the LiteRT step of a trained
main-job model and prints the running prediction.

The model (`.keras`, as `examples/action_recognition.py` saves it) is
exported with `keras_cbm.serving.export_step` to a `.tflite` of builtin
operations; PyAV decodes the file one frame at a time, as a camera would
deliver it, each frame scaled to the model's frame size and colour; every
`--frame-stride`-th frame (the stride the model was trained at) goes
through the `ai-edge-litert` interpreter with the states of the frame
before. Nothing holds more than one frame.

    python examples/action_recognition.py        # trains the model
    python examples/stream_video.py --video FILE
    python examples/stream_video.py --video FILE --quantization float16
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--video", required=True, help="The video file to stream.")
    add(
        "--model",
        default="outputs/action_recognition/model.keras",
        help="A trained main-job model (.keras).",
    )
    add(
        "--frame-stride",
        type=int,
        default=4,
        help="Frames of the file per step, as in training.",
    )
    add(
        "--quantization",
        choices=("none", "float16", "dynamic_range"),
        default="none",
        help="LiteRT quantization of the exported step.",
    )
    add(
        "--class-names",
        default="motion_order",
        help="'motion_order' for its 12 classes, or a comma-separated list.",
    )
    add("--print-every", type=int, default=4, help="Steps between prints.")
    add(
        "--output",
        default="outputs/stream_video",
        help="Folder of the exported .tflite.",
    )
    return parser.parse_args(argv)


def decoded_frames(path, frame_shape, frame_stride):
    """Every `frame_stride`-th frame of the file at `path`, decoded one at a
    time by PyAV, as uint8 `frame_shape` (rows, cols, 1 or 3 channels)."""
    import av

    rows, cols, channels = frame_shape
    pixel_format = "gray" if channels == 1 else "rgb24"
    with av.open(path) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % frame_stride == 0:
                image = frame.to_ndarray(
                    format=pixel_format, width=cols, height=rows
                )
                yield image.reshape(frame_shape)


def main(argv=None):
    args = parse_args(argv)
    # It exports: TensorFlow's backend whatever the environment says (a
    # model trained under JAX loads and exports under TensorFlow).
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import numpy as np

    import keras_cbm.training  # noqa: F401  (registers CoherenceModel)
    from keras_cbm import serving
    from keras_cbm.datasets.motion_order import CLASS_NAMES

    trainer = keras.saving.load_model(args.model)
    model = getattr(trainer, "model", trainer)
    frame_shape = tuple(model.inputs[0].shape[2:])
    names = (
        CLASS_NAMES
        if args.class_names == "motion_order"
        else tuple(args.class_names.split(","))
    )
    os.makedirs(args.output, exist_ok=True)
    path = serving.export_step(
        trainer,
        os.path.join(args.output, f"step_{args.quantization}.tflite"),
        quantization=None if args.quantization == "none" else args.quantization,
        # The main job trains on the frames' uint8 values as they are.
        scale=1,
    )
    print(f"LiteRT step: {path} ({os.path.getsize(path) / 1024:.0f} KiB)")
    step = serving.LiteRTStep(path)
    states = step.zero_states(1)
    probabilities = None
    for t, frame in enumerate(
        decoded_frames(args.video, frame_shape, args.frame_stride)
    ):
        probabilities, states = step(frame[None], states)
        probabilities = probabilities[0]
        if (t + 1) % args.print_every == 0:
            best = int(np.argmax(probabilities))
            print(
                f"step {t + 1:4d} (frame {t * args.frame_stride:5d}): "
                f"{names[best]} {probabilities[best]:.3f}"
            )
    if probabilities is None:
        raise SystemExit(f"{args.video} holds no frame.")
    best = int(np.argmax(probabilities))
    print(
        f"Prediction after {t + 1} steps: {names[best]} "
        f"({probabilities[best]:.3f})"
    )
    print("Probabilities:", " ".join(f"{p:.6f}" for p in probabilities))


if __name__ == "__main__":
    main()
