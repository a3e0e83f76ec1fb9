"""A client of an exported polygon annotator, run in a fresh process that
never imports `keras_cbm`, as a server would be.

Usage: python annotate.py SAVED_MODEL INPUTS_NPZ OUTPUT_NPZ

`INPUTS_NPZ` holds `images` (uint8) and `fixed_<name>` arrays of fixed
vertices; the output holds `vertices_<name>` and `num_vertices_<name>` of
`annotate` for each, the refusal of each bad input (`error_<name>`), the
polygon of the first job once more after the refusals (`after_errors`),
and whether `keras_cbm` was imported.
"""

import sys

import numpy as np
import tensorflow as tf
from serve import refusal  # the classifiers' client, beside this one


def main(path, inputs_path, output_path):
    annotate = tf.saved_model.load(path).signatures["annotate"]
    inputs = dict(np.load(inputs_path))
    images = inputs.pop("images")
    results = {}
    for name, fixed in inputs.items():
        outputs = annotate(
            image=tf.constant(images), fixed_vertices=tf.constant(fixed)
        )
        job = name.removeprefix("fixed_")
        results[f"vertices_{job}"] = outputs["vertices"].numpy()
        results[f"num_vertices_{job}"] = outputs["num_vertices"].numpy()
    none = np.zeros((len(images), 0, 2), "int32")
    off_grid = np.array([[[0, 0], [3, 99]]] * len(images), "int32")
    calls = {
        "image_size_numpy": lambda: annotate(
            image=images[:, 1:], fixed_vertices=none
        ),
        "image_size_tensor": lambda: annotate(
            image=tf.constant(images[:, 1:]), fixed_vertices=tf.constant(none)
        ),
        "fixed_off_grid": lambda: annotate(
            image=tf.constant(images), fixed_vertices=tf.constant(off_grid)
        ),
        "fixed_negative": lambda: annotate(
            image=tf.constant(images),
            fixed_vertices=tf.constant(-off_grid[:, :1] - 2),
        ),
        "fixed_batch": lambda: annotate(
            image=tf.constant(images), fixed_vertices=tf.constant(none[:1])
        ),
    }
    results.update(
        {f"error_{name}": refusal(call) for name, call in calls.items()}
    )
    results["after_errors"] = annotate(
        image=tf.constant(images), fixed_vertices=tf.constant(none)
    )["vertices"].numpy()
    # TensorFlow's import loads a few `keras.src` modules of its own:
    # what must stay out is keras_cbm (and so the model's Python code).
    results["imported_keras_cbm"] = any(
        name.startswith("keras_cbm") for name in sys.modules
    )
    np.savez(output_path, **results)


if __name__ == "__main__":
    main(*sys.argv[1:])
