"""Serving: any Keras video model as a TensorFlow SavedModel; a per-frame
classifier classifies whole videos and follows live videos frame by frame,
also as a LiteRT or ONNX step for devices, and many live streams at once;
a `polygon_rnn` model as an `annotate` SavedModel.

This subpackage needs the TensorFlow backend; `LiteRTStep` and `OnnxStep`
need `ai-edge-litert` and `onnxruntime` (`pip install keras-cbm[edge]`).
"""

from keras_cbm.serving.edge import export_step
from keras_cbm.serving.export import export
from keras_cbm.serving.frame_step import FrameStep
from keras_cbm.serving.polygon_export import export_annotator
from keras_cbm.serving.step_runtimes import LiteRTStep
from keras_cbm.serving.step_runtimes import OnnxStep
from keras_cbm.serving.step_runtimes import SavedModelStep
from keras_cbm.serving.streams import StreamServer

__all__ = [
    "FrameStep",
    "LiteRTStep",
    "OnnxStep",
    "SavedModelStep",
    "StreamServer",
    "export",
    "export_annotator",
    "export_step",
]
