"""Tiny models and clip datasets for the training tests."""

import keras
import numpy as np
import tensorflow as tf

from keras_cbm import data
from keras_cbm import models

FRAME_SHAPE = (16, 16, 3)


def tiny_model(batch_norm=False, seed=0, **kwargs):
    """A 3-layer standalone classifier of 2 classes, seeded; `kwargs`: more
    `standalone_classifier` arguments."""
    keras.utils.set_random_seed(seed)
    return models.standalone_classifier(
        2,
        frame_shape=FRAME_SHAPE,
        stage_filters=(4,),
        blocks_per_stage=1,
        batch_norm=batch_norm,
        **kwargs,
    )


def videos(count=4, frames=24, seed=0):
    """Videos whose class (0 or 1) is their brightness."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    video = rng.random((count, frames) + FRAME_SHAPE).astype("float32")
    video = 0.5 * video + 0.5 * labels[:, None, None, None, None]
    return tf.data.Dataset.from_tensor_slices({"video": video, "label": labels})


def fixed_clips(batch_size=2, clips=3, min_length=4, max_length=8, **kw):
    """Overlapping clips drawn once and then the same in every epoch."""
    dataset = data.overlapping_clips(
        videos(**kw), clips, min_length, max_length, seed=0
    )
    # Materialised: a cache is kept only after a whole pass, and Keras may
    # read a first batch alone (to build) before its epoch starts.
    elements = list(dataset.as_numpy_iterator())
    return tf.data.Dataset.from_tensor_slices(
        keras.tree.map_structure(lambda *e: np.stack(e), *elements)
    ).batch(batch_size)
