"""Trains a tiny `CoherenceModel` for two steps under JAX and saves it as
`.keras`, with its Keras predictions on fixed videos.

Usage: KERAS_BACKEND=jax python -m tests.serving.jax_train OUTPUT_DIR

Checks that `export` and `export_step` refuse the JAX backend at once,
naming it. Writes `OUTPUT_DIR/model.keras` and `OUTPUT_DIR/predictions.npz`:
the uint8 `videos`, the wrapped model's per-frame `outputs` on them (scaled
by 1 / 255) and the `CoherenceModel`'s video `probabilities` for one clip
covering each video.
"""

import os
import sys

import keras
import numpy as np

from keras_cbm import data
from keras_cbm import serving
from keras_cbm.training import CoherenceModel
from tests import video_models as models
from tests.training.tiny import videos as tiny_videos


def main(output_dir):
    assert keras.backend.backend() == "jax", keras.backend.backend()
    trainer = CoherenceModel(
        models.build("sequential"), coherence_weight=0.5, aggregation="last"
    )
    trainer.compile(
        keras.optimizers.SGD(0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    clips = data.overlapping_clips(
        tiny_videos(count=4, frames=12), 2, 3, 4, seed=0
    ).batch(2)
    trainer.fit(clips, epochs=1, verbose=0)
    trainer.save(os.path.join(output_dir, "model.keras"))
    for export, name in (
        (serving.export, "refused"),
        (serving.export_step, "refused.tflite"),
    ):
        try:
            export(trainer, os.path.join(output_dir, name))
        except ValueError as error:
            assert "TensorFlow backend" in str(error), error
            assert "Received: backend 'jax'" in str(error), error
        else:
            raise AssertionError(f"{export.__name__} exported under JAX")

    videos = models.videos(count=2, frames=6, seed=1)
    frames = videos.astype("float32") * np.float32(1 / 255)
    time = videos.shape[1]
    alignment = np.broadcast_to(np.arange(time, dtype="int32"), (2, 1, time))
    np.savez(
        os.path.join(output_dir, "predictions.npz"),
        videos=videos,
        outputs=trainer.model(frames, training=False),
        probabilities=trainer.predict(
            {"clips": frames[:, None], "alignment": alignment}, verbose=0
        )["probabilities"],
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
