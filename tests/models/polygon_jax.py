"""Fits the tiny `polygon_rnn` of `polygon_rnn_test` on JAX with teacher
forcing and decodes it fed the true vertices; saves the losses, the
decoded logits and the teacher-forced ones to the `.npz` path given:

    python -m tests.models.polygon_jax PATH

The backend must be set before Keras starts, hence a process of its own.
"""

import os
import sys

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cbm import models  # noqa: E402
from tests.models import polygon_rnn_test as cases  # noqa: E402


def main(path):
    model = cases.tiny_model(depth=3)
    images, tokens = cases.tiny_data()
    inputs = {"image": images, "vertices": tokens}
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    history = model.fit(inputs, tokens, epochs=3, verbose=0)
    forced = np.asarray(model(inputs))
    decoded = models.decode_polygons(
        model, images, cases.as_vertices(tokens[:, :-1]), max_vertices=6
    )
    np.savez(
        path,
        backend=keras.backend.backend(),
        loss=np.array(history.history["loss"]),
        decoded=np.asarray(decoded["logits"])[0, :6],
        forced=forced[0, :6],
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
