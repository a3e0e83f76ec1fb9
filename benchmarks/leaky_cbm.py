"""Prototype: a CBM whose temporal unit T leaks instead of being rewritten.

The paper's T rewrites its state at every step,
`c_t = sigmoid(W_T x_t + U_T c_{t-1} + b_T)`, so what it held `k` steps ago
reaches the output only through `k` sigmoid Jacobians. The leaky T mixes
the new value into the old one at a learned per-channel rate `a`:

    c_t = (1 - a) * c_{t-1} + a * sigmoid(W_T x_t + U_T c_{t-1} + b_T)

which keeps a path of gain `1 - a` per step. The rest is the CBM unchanged:
R has no recurrence, T is the only recurrence, and the input terms are
still computed for all frames at once (only `temporal_step` changes). The
rates start spread geometrically over `rates` across channels, so that
the channels start at time scales from `1 / rates[1]` to `1 / rates[0]`
frames. An experiment for `benchmarks/memory_tasks.py`, not a layer of the
package.
"""

import numpy as np
from keras import initializers
from keras import ops

from keras_cbm.layers import DeepCBM
from keras_cbm.layers.base_cbm import BaseCBM
from keras_cbm.layers.conv_cbm import ConvCBMCell
from keras_cbm.layers.conv_cbm2d import ConvCBM2D

RATES = (0.02, 0.9)


class LeakyConvCBMCell(ConvCBMCell):
    def __init__(self, *args, rates=RATES, **kwargs):
        super().__init__(*args, **kwargs)
        self.rates = tuple(rates)

    def build(self, inputs_shape, states_shape=None):
        super().build(inputs_shape, states_shape)
        rates = np.geomspace(*self.rates, self.units)
        self.rate_logit = self.add_weight(
            shape=(self.units,),
            initializer=initializers.Constant(np.log(rates / (1 - rates))),
            name="rate_logit",
        )

    def temporal_step(self, temporal_input, state, training):
        candidate = super().temporal_step(temporal_input, state, training)
        return state + ops.sigmoid(self.rate_logit) * (candidate - state)

    def get_config(self):
        return {**super().get_config(), "rates": self.rates}


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
        rates=RATES,
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
                rates=rates,
            ),
            **kwargs,
        )


class LeakyDeepCBM(DeepCBM):
    """`DeepCBM` of the same layout whose CBM layers have a leaky T."""

    layer_class = LeakyConvCBM2D

    def _recurrent_layer(self, index, plan):
        layer = super()._recurrent_layer(index, plan)
        if self.cell == "convlstm":
            return layer
        return self.layer_class(**layer.get_config())


class GatedConvCBMCell(LeakyConvCBMCell):
    """A T whose rate depends on the frame: `a_t = sigmoid(W_a * x_t +
    b_a)`, with `b_a` starting at the leaky cell's spread of rates. The
    gate reads only the input, so it joins T's input term in the
    time-batched projection and the loop stays one convolution per step;
    on a frame that brings nothing the gate can close and T keeps its
    state (and its gradient) unchanged."""

    def build(self, inputs_shape, states_shape=None):
        super().build(inputs_shape, states_shape)
        self.gate_kernel = self.add_weight(
            shape=self.kernel_size + (self.input_dim, self.units),
            initializer=self.kernel_initializer,
            name="gate_kernel",
        )

    def project_inputs(self, inputs, training=False, frame_mask=None):
        representation, temporal_input = super().project_inputs(
            inputs, training, frame_mask
        )
        gate = self._add_bias(
            self._project_input(inputs, self.gate_kernel), self.rate_logit
        )
        # Carried to the loop as extra channels of T's input term.
        return representation, ops.concatenate(
            [temporal_input, gate], axis=self.channel_axis
        )

    def temporal_step(self, temporal_input, state, training):
        temporal_input, gate = ops.split(
            temporal_input, 2, axis=self.channel_axis
        )
        candidate = ConvCBMCell.temporal_step(
            self, temporal_input, state, training
        )
        return state + ops.sigmoid(gate) * (candidate - state)


class GatedConvCBM2D(LeakyConvCBM2D):
    cell_class = GatedConvCBMCell


class GatedDeepCBM(LeakyDeepCBM):
    """`DeepCBM` of the same layout whose CBM layers have a gated T."""

    layer_class = GatedConvCBM2D
