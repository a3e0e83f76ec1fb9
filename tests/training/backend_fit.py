"""Fits a tiny CoherenceModel for 3 SGD steps from fixed weights on fixed
clips, on the backend and devices given, and saves its final weights and
losses to the `.npz` path given.

    python -m tests.training.backend_fit BACKEND PATH [DEVICES]

Run as a script: the backend (and, for JAX, the number of CPU devices) must
be set before Keras starts. With DEVICES > 1 (JAX), it trains under
`keras.distribution.DataParallel` over that many CPU devices.
"""

import os
import sys

backend, path = sys.argv[1:3]
devices = int(sys.argv[3]) if len(sys.argv) > 3 else 1
os.environ["KERAS_BACKEND"] = backend
if devices > 1:
    os.environ["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={devices}"
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cbm.training import CoherenceModel  # noqa: E402
from tests import video_models  # noqa: E402
from tests.training.tiny import fixed_clips  # noqa: E402

if __name__ == "__main__":
    if devices > 1:
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(
                devices=keras.distribution.list_devices("cpu")[:devices]
            )
        )
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
    np.savez(
        path,
        loss=np.array(history.history["loss"]),
        coherence_loss=np.array(history.history["coherence_loss"]),
        **{f"weight_{i}": w for i, w in enumerate(model.get_weights())},
    )
