"""Prototype: a CBM whose temporal unit T leaks at a fixed learned rate.

The paper's T rewrites its state at every step,
`c_t = sigmoid(W_T x_t + U_T c_{t-1} + b_T)`, so what it held `k` steps ago
reaches the output only through `k` sigmoid Jacobians. The leaky T mixes
the new value into the old one at a learned per-channel rate `a`:

    c_t = (1 - a) * c_{t-1} + a * sigmoid(W_T x_t + U_T c_{t-1} + b_T)

which keeps a path of gain `1 - a` per step. The rates start as the
package's gated T starts (`keras_cbm.layers.base_cbm.gate_rate_logits`),
spread geometrically across channels, but read nothing from the frame:
the gated T (`temporal_gate="input"`, which `studies/memory_tasks.py`
measures as `cbm-gated*`) without `W_a`, kept to reproduce its finding
that a fixed leak does not learn. An experiment, not a layer of the
package.
"""

from keras import initializers
from keras import ops

from keras_cbm.layers import DeepCBM
from keras_cbm.layers.base_cbm import BaseCBM
from keras_cbm.layers.base_cbm import gate_rate_logits
from keras_cbm.layers.conv_cbm import ConvCBMCell
from keras_cbm.layers.conv_cbm2d import ConvCBM2D


class LeakyConvCBMCell(ConvCBMCell):
    def build(self, inputs_shape, states_shape=None):
        super().build(inputs_shape, states_shape)
        self.rate_logit = self.add_weight(
            shape=(self.units,),
            initializer=initializers.Constant(gate_rate_logits(self.units)),
            name="rate_logit",
        )

    def temporal_step(self, temporal_input, state, training):
        candidate = super().temporal_step(temporal_input, state, training)
        return state + ops.sigmoid(self.rate_logit) * (candidate - state)


class LeakyConvCBM2D(ConvCBM2D):
    cell_class = LeakyConvCBMCell

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        **kwargs,
    ):
        # ConvCBM fixes its cell class; the leaky cell goes in one level up.
        BaseCBM.__init__(
            self,
            self.cell_class,
            dict(
                rank=2,
                filters=filters,
                kernel_size=kernel_size,
                strides=strides,
                padding=padding,
                data_format=data_format,
                dilation_rate=dilation_rate,
            ),
            **kwargs,
        )


class LeakyDeepCBM(DeepCBM):
    """`DeepCBM` of the same layout whose CBM layers have a leaky T."""

    layer_class = LeakyConvCBM2D

    def _recurrent_layer(self, index, plan):
        layer = super()._recurrent_layer(index, plan)
        if self.layer_type == "convlstm":
            return layer
        return self.layer_class(**layer.get_config())
