"""Serving: any Keras video model as a TensorFlow SavedModel; a per-frame
classifier classifies whole videos and follows live videos frame by frame,
also as a LiteRT or ONNX step for devices, and many live streams at once;
a `polygon_rnn` model as an `annotate` SavedModel.

Exporting (`export`, `export_step`, `FrameStep`) needs Keras and
TensorFlow; they load when first used. The runtimes need neither:
`LiteRTStep`, `OnnxStep` and `StreamServer` need NumPy and `ai-edge-litert`
or `onnxruntime` (`pip install keras-cbm[edge]`), so a device imports them
without TensorFlow or Keras installed; `SavedModelStep` needs TensorFlow.
"""

import importlib
import sys
import types

from keras_cbm.serving.step_runtimes import LiteRTStep
from keras_cbm.serving.step_runtimes import OnnxStep
from keras_cbm.serving.step_runtimes import SavedModelStep
from keras_cbm.serving.streams import StreamServer

# The exporting parts, by module: they import Keras and TensorFlow.
_EXPORTING = {
    "export_step": "edge",
    "export": "export",
    "FrameStep": "frame_step",
    "export_annotator": "polygon_export",
}

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


def __getattr__(name):
    if name in _EXPORTING:
        module = importlib.import_module(
            f"keras_cbm.serving.{_EXPORTING[name]}"
        )
        globals()[name] = getattr(module, name)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        # Importing the submodule `export` would set it here, over the
        # function of that name (which `__getattr__` loads).
        if not (name in _EXPORTING and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
