"""Serving: any Keras video model as a TensorFlow SavedModel; a per-frame
classifier classifies whole videos and follows live videos frame by frame.

This subpackage needs the TensorFlow backend.
"""

from keras_cbm.serving.export import export

__all__ = ["export"]
