"""Context Bridge Module recurrent layers, written with `keras.ops` only.

They import no TensorFlow and run on every Keras backend.
"""

from keras_cbm.layers.base_cbm import PAPER_CELL
from keras_cbm.layers.cbm import CBM
from keras_cbm.layers.cbm import CBMCell
from keras_cbm.layers.conv_cbm import ConvCBMCell
from keras_cbm.layers.conv_cbm1d import ConvCBM1D
from keras_cbm.layers.conv_cbm2d import ConvCBM2D
from keras_cbm.layers.conv_cbm3d import ConvCBM3D

__all__ = [
    "CBM",
    "CBMCell",
    "ConvCBM1D",
    "ConvCBM2D",
    "ConvCBM3D",
    "ConvCBMCell",
    "PAPER_CELL",
]

from keras_cbm.layers.deep_cbm import DeepCBM  # noqa: E402
from keras_cbm.layers.frame_aggregation import FrameAggregation  # noqa: E402
from keras_cbm.layers.frame_aggregation import video_probabilities  # noqa: E402

__all__ += ["DeepCBM", "FrameAggregation", "video_probabilities"]
