"""Hyperparameter search over deep CBM classifiers with keras-tuner.

This subpackage needs the TensorFlow backend and `keras-tuner` (with
`tensorboard`, which keras-tuner needs under TensorFlow).
"""

from keras_cbm.tuning.cbm_hypermodel import CBMHyperModel

__all__ = ["CBMHyperModel"]
