"""A client of an exported SavedModel, run in a fresh process that never
imports `keras_cbm`: serves both signatures, then feeds bad inputs.

Usage: python serve.py SAVED_MODEL VIDEOS_NPY OUTPUT_NPZ

Writes `classify` on the videos, `step` run frame by frame over them, the
error message of each bad input, and `classify` once more after the errors.
"""

import sys

import numpy as np
import tensorflow as tf


def refusal(call):
    try:
        call()
    except Exception as error:  # the server must survive any refusal
        return f"{type(error).__name__}: {error}"
    return ""


def main(path, videos_path, output_path):
    videos = np.load(videos_path)
    served = tf.saved_model.load(path)
    classify = served.signatures["classify"]
    step = served.signatures["step"]
    video_probabilities = classify(frames=videos)["probabilities"]

    specs = step.structured_input_signature[1]
    states = {
        name: tf.zeros([len(videos), *spec.shape[1:]], spec.dtype)
        for name, spec in specs.items()
        if name != "frame"
    }
    frame_probabilities = []
    for t in range(videos.shape[1]):
        outputs = step(frame=videos[:, t], **states)
        states = {name: outputs[name] for name in states}
        frame_probabilities.append(outputs["probabilities"])

    frame = videos[:, 0]
    # Tensors: the signatures cast NumPy arrays to their dtype on binding.
    fewer = dict(states)
    fewer.pop(sorted(fewer)[-1])
    errors = {
        "classify_size": refusal(lambda: classify(frames=videos[:, :, 1:])),
        "classify_dtype": refusal(
            lambda: classify(frames=tf.constant(videos, "float32"))
        ),
        "step_size": refusal(lambda: step(frame=frame[:, 1:], **states)),
        "step_dtype": refusal(
            lambda: step(frame=tf.constant(frame, "float32"), **states)
        ),
        "step_fewer_states": refusal(lambda: step(frame=frame, **fewer)),
        "step_more_states": refusal(
            lambda: step(frame=frame, state_99=states["state_1"], **states)
        ),
    }
    np.savez(
        output_path,
        video_probabilities=video_probabilities,
        frame_probabilities=np.stack(frame_probabilities, axis=1),
        after_errors=classify(frames=videos)["probabilities"],
        imported_keras_cbm=any(m.startswith("keras_cbm") for m in sys.modules),
        **{f"error_{name}": message for name, message in errors.items()},
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
