"""Losses of the overlap coherence training scheme (TensorFlow and JAX)."""

from keras_cbm.losses.overlap_coherence import OverlapCoherence
from keras_cbm.losses.overlap_coherence import overlap_coherence

__all__ = ["OverlapCoherence", "overlap_coherence"]
