"""Deep CBM model builders: functional Keras models of the paper's three
families (and Polygon-RNN with a deep CBM decoder), and their full-size
layouts as presets.

They need only Keras (any backend); `keras_cbm.metrics` needs TensorFlow.
"""

from keras_cbm.models.backbone_classifier import backbone_classifier
from keras_cbm.models.frame_wise import FrameWise
from keras_cbm.models.future_frame_predictor import TeacherForcing
from keras_cbm.models.future_frame_predictor import future_frame_predictor
from keras_cbm.models.polygon_decoding import decode_polygons
from keras_cbm.models.polygon_rnn import polygon_rnn
from keras_cbm.models.presets import PAPER_PRESETS
from keras_cbm.models.recurrent_states import RecurrentStates
from keras_cbm.models.recurrent_states import recurrent_layers
from keras_cbm.models.standalone_classifier import standalone_classifier

__all__ = [
    "PAPER_PRESETS",
    "FrameWise",
    "RecurrentStates",
    "TeacherForcing",
    "backbone_classifier",
    "decode_polygons",
    "future_frame_predictor",
    "polygon_rnn",
    "recurrent_layers",
    "standalone_classifier",
]
