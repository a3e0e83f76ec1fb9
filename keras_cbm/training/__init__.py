"""Overlap coherence training: a `keras.Model` that trains per-frame video
models on overlapping clips, on every Keras backend.

`MultiWorkerFit` and `MultiWorkerCoherenceModel` are TensorFlow's
(`tf.distribute`), imported only when used.
"""

from keras_cbm.training.coherence_model import CoherenceModel

__all__ = ["CoherenceModel", "MultiWorkerCoherenceModel", "MultiWorkerFit"]


def __getattr__(name):
    # Multi-worker `fit` (workaround for keras-team/keras issue 20585) needs
    # TensorFlow; the rest of the package does not.
    if name in ("MultiWorkerCoherenceModel", "MultiWorkerFit"):
        from keras_cbm.training import multi_worker

        return getattr(multi_worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
