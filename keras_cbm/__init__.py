"""keras_cbm: deep recurrent models of video for Keras 3.

`keras_cbm.layers` (the Context Bridge Module layers) and `keras_cbm.models`
(the model builders) need only Keras, on any backend; `data`, `datasets`,
`losses`, `training`, `metrics`, `serving` and `tuning` are TensorFlow and
imported on their own (`from keras_cbm import data`).
"""

from keras_cbm import layers as layers
from keras_cbm import models as models

__version__ = "0.1.0"
