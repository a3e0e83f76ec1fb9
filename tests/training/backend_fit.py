"""Fits a tiny CoherenceModel for 3 SGD steps from fixed weights on fixed
clips (`fit_fixed`). Run as a script, it fits on JAX twice, on one CPU
device and under `keras.distribution.DataParallel` over two, and saves each
run's final weights and losses to the `.npz` path given, under the prefixes
`single/` and `parallel/`:

    python -m tests.training.backend_fit PATH

The backend and JAX's number of CPU devices must be set before Keras
starts, hence a process of its own.
"""

import os
import sys

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cbm.training import CoherenceModel  # noqa: E402
from tests import video_models  # noqa: E402
from tests.training.tiny import fixed_clips  # noqa: E402


def fit_fixed():
    """Fits the tiny model on the current backend and distribution.

    Returns:
        A dict of NumPy arrays: `loss`, `coherence_loss` (one epoch each)
        and `weight_0`, `weight_1`, ... (the final weights).
    """
    model = video_models.build("sequential")
    rng = np.random.default_rng(0)
    model.set_weights(
        [0.3 * rng.standard_normal(w.shape) for w in model.get_weights()]
    )
    trainer = CoherenceModel(model, coherence_weight=1.0)
    trainer.compile(
        keras.optimizers.SGD(0.5),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = trainer.fit(
        fixed_clips(batch_size=2, count=6), epochs=1, verbose=0
    )
    return {
        "loss": np.array(history.history["loss"]),
        "coherence_loss": np.array(history.history["coherence_loss"]),
        **{f"weight_{i}": w for i, w in enumerate(model.get_weights())},
    }


if __name__ == "__main__":
    single = fit_fixed()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(
            devices=keras.distribution.list_devices("cpu")[:2]
        )
    )
    parallel = fit_fixed()
    np.savez(
        sys.argv[1],
        **{f"single/{key}": value for key, value in single.items()},
        **{f"parallel/{key}": value for key, value in parallel.items()},
    )
