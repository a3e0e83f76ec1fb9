"""The private Keras parts the CBM layers rely on, imported in one place.

Keras 3 has no public API for a recurrent loop over precomputed inputs, for
the dropout-mask cache that `keras.layers.RNN` primes before its loop, or for
the argument and shape helpers its own conv RNNs use. If a Keras release moves
one of them, this is the only module to change.
"""

from keras.src.backend import rnn as keras_rnn
from keras.src.backend import standardize_data_format
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell
from keras.src.ops.operation_utils import compute_conv_output_shape
from keras.src.utils.argument_validation import standardize_padding
from keras.src.utils.argument_validation import standardize_tuple

__all__ = [
    "DropoutRNNCell",
    "compute_conv_output_shape",
    "keras_rnn",
    "standardize_data_format",
    "standardize_padding",
    "standardize_tuple",
]
