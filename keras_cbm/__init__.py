"""keras_cbm: deep recurrent models of video for Keras 3.

`keras_cbm.layers` holds the Context Bridge Module layers (any backend).
"""

from keras_cbm import layers as layers

__version__ = "0.1.0"
