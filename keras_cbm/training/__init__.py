"""Overlap coherence training: a `keras.Model` that trains per-frame video
models on overlapping clips, and the model split it runs them with.

This subpackage imports TensorFlow (its training step is TensorFlow's).
"""

from keras_cbm.training.coherence_model import CoherenceModel
from keras_cbm.training.deep_cbm_split import DeepCBMSplit

__all__ = ["CoherenceModel", "DeepCBMSplit"]

# Multi-worker `fit` (workaround for keras-team/keras issue 20585).
from keras_cbm.training.multi_worker import MultiWorkerCoherenceModel  # noqa: E402
from keras_cbm.training.multi_worker import MultiWorkerFit  # noqa: E402

__all__ += ["MultiWorkerCoherenceModel", "MultiWorkerFit"]
