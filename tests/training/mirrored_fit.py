"""Fits a tiny CoherenceModel for 5 steps on one device, then under a
MirroredStrategy of 2 logical CPU devices, with the same global batch, and
saves both runs' losses and weights to the `.npz` path given (a second
argument `handover` trains with state handover: `RecurrentStates` in the
replica threads), and the error a `StreamingBPTT` fit under the strategy
gives.

Run as a script: the logical devices must exist before TensorFlow starts.
"""

import os
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cbm.data import streaming_chunks  # noqa: E402
from keras_cbm.training import CoherenceModel  # noqa: E402
from keras_cbm.training import StreamingBPTT  # noqa: E402
from tests.training.tiny import fixed_clips  # noqa: E402
from tests.training.tiny import tiny_model  # noqa: E402

KEYS = ("loss", "task_loss", "coherence_loss", "accuracy")


def run(strategy, state_handover):
    with strategy.scope():
        model = tiny_model()
        trainer = CoherenceModel(
            model,
            coherence_weight=1.0,
            state_handover="donor" if state_handover else None,
        )
        trainer.compile(
            # At 0.5 the default (gated) cells' softmax saturates (the
            # coherence loss reaches 0) and, with handover, float rounding
            # between replicas grows past the tolerance.
            keras.optimizers.SGD(0.05 if state_handover else 0.1),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    # Keras 3.15's fit averages a first distributed batch over replicas,
    # which fails on bool tensors: the mask travels as uint8.
    clips = fixed_clips(batch_size=4, count=8).map(
        lambda inputs, label: (
            dict(inputs, mask=tf.cast(inputs["mask"], "uint8")),
            label,
        )
    )
    history = trainer.fit(
        clips.repeat(),
        epochs=5,
        steps_per_epoch=1,
        verbose=0,
    )
    losses = np.array([history.history[key] for key in KEYS])
    return losses, model.get_weights()


def streaming_error(strategy):
    """The error of a `StreamingBPTT` fit under `strategy` ('' if none)."""
    videos = tf.data.Dataset.from_tensor_slices(
        {"video": np.zeros((4, 4, 3), "float32"), "label": [0, 1, 0, 1]}
    )
    with strategy.scope():
        net = keras.Sequential(
            [
                keras.Input((None, 3)),
                keras.layers.LSTM(2, return_sequences=True),
            ]
        )
        trainer = StreamingBPTT(net, from_logits=False)
        trainer.compile("sgd", "sparse_categorical_crossentropy", None)
    try:
        trainer.fit(streaming_chunks(videos, 4, 2), verbose=0)
    except ValueError as error:
        return str(error)
    return ""


if __name__ == "__main__":
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    state_handover = sys.argv[2:] == ["handover"]
    single_losses, single_weights = run(
        tf.distribute.get_strategy(), state_handover
    )
    mirrored_losses, mirrored_weights = run(mirrored, state_handover)
    np.savez(
        sys.argv[1],
        single_losses=single_losses,
        mirrored_losses=mirrored_losses,
        **{f"single_{i}": w for i, w in enumerate(single_weights)},
        **{f"mirrored_{i}": w for i, w in enumerate(mirrored_weights)},
        streaming_error=streaming_error(mirrored),
    )
    os._exit(0)
