"""A client of exported SavedModels, run in a fresh process that never
imports `keras_cbm`, as a server would be.

Usage: python serve.py JOBS_JSON

`JOBS_JSON` lists jobs `{"path": SAVED_MODEL, "videos": NPY, "output":
NPZ, "errors": BOOL}`. For a classifier (a `classify` signature), each
writes `classify` on the videos, `step` run frame by frame over them from
zero states and `state_layers`; with `errors`, also the refusal of each bad
input and `classify` once more after them. For any other model, `predict`
on the videos.
"""

import json
import sys

import numpy as np
import tensorflow as tf


def refusal(call):
    try:
        call()
    except Exception as error:  # the server must survive any refusal
        return f"{type(error).__name__}: {error}"
    return ""


def zero_states(step, batch):
    specs = step.structured_input_signature[1]
    return {
        name: tf.zeros([batch, *spec.shape[1:]], spec.dtype)
        for name, spec in specs.items()
        if name != "frame"
    }


def bad_inputs(classify, step, videos, states):
    """The refusal of each bad input, as tensors and as NumPy arrays."""
    frame = videos[:, 0]
    last = sorted(states, key=lambda name: int(name.split("_")[1]))[-1]
    fewer = {name: state for name, state in states.items() if name != last}
    calls = {
        "classify_numpy_size": lambda: classify(frames=videos[:, :, 1:]),
        "classify_tensor_size": lambda: classify(
            frames=tf.constant(videos[:, :, 1:])
        ),
        "classify_tensor_rank": lambda: classify(frames=tf.constant(videos[0])),
        "classify_tensor_dtype": lambda: classify(
            frames=tf.constant(videos, "float32")
        ),
        "classify_empty": lambda: classify(frames=tf.constant(videos[:, :0])),
        "step_numpy_size": lambda: step(frame=frame[:, 1:], **states),
        "step_tensor_size": lambda: step(
            frame=tf.constant(frame[:, 1:]), **states
        ),
        "step_tensor_dtype": lambda: step(
            frame=tf.constant(frame, "float32"), **states
        ),
        "step_state_size": lambda: step(
            frame=tf.constant(frame), **{**states, last: states[last][..., 1:]}
        ),
        "step_state_dtype": lambda: step(
            frame=tf.constant(frame),
            **{**states, last: tf.cast(states[last], "float64")},
        ),
        "step_batch": lambda: step(
            frame=tf.constant(frame), **{**states, last: states[last][:1]}
        ),
        "step_fewer_states": lambda: step(frame=frame, **fewer),
        "step_more_states": lambda: step(
            frame=frame, state_99=states[last], **states
        ),
    }
    return {f"error_{name}": refusal(call) for name, call in calls.items()}


def serve_classifier(served, videos, errors):
    classify = served.signatures["classify"]
    step = served.signatures["step"]
    results = {
        "video_probabilities": classify(frames=videos)["probabilities"],
        "state_layers": [
            name.decode()
            for name in served.signatures["state_layers"]()["layers"].numpy()
        ],
    }
    states = zero_states(step, len(videos))
    frame_probabilities = []
    for t in range(videos.shape[1]):
        outputs = step(frame=videos[:, t], **states)
        states = {name: outputs[name] for name in states}
        frame_probabilities.append(outputs["probabilities"])
    results["frame_probabilities"] = np.stack(frame_probabilities, axis=1)
    results["state_names"] = sorted(states)
    if errors:
        results.update(bad_inputs(classify, step, videos, states))
        results["after_errors"] = classify(frames=videos)["probabilities"]
    return results


def main(jobs_path):
    with open(jobs_path) as file:
        jobs = json.load(file)
    for job in jobs:
        videos = np.load(job["videos"])
        served = tf.saved_model.load(job["path"])
        if "classify" in served.signatures:
            results = serve_classifier(served, videos, job["errors"])
        else:
            results = served.signatures["predict"](frames=videos)
        np.savez(
            job["output"],
            imported_keras_cbm=any(
                name.startswith("keras_cbm") for name in sys.modules
            ),
            **results,
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
