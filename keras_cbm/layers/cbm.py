"""The dense Context Bridge Module, for sequences of feature vectors."""

import keras
from keras import ops

from keras_cbm.layers.base_cbm import BaseCBM
from keras_cbm.layers.base_cbm import BaseCBMCell
from keras_cbm.layers.base_cbm import cell_property


@keras.saving.register_keras_serializable(package="keras_cbm")
class CBMCell(BaseCBMCell):
    """Cell class for the `CBM` layer; usable inside `keras.layers.RNN`.

    One step computes

        r_t = activation(x_t @ W_R + b_R)
        u_t = recurrent_activation(td(x_t) @ W_T + c_{t-1} @ U_T + b_T)
        a_t = sigmoid(td(x_t) @ W_a + c_{t-1} @ U_a + b_a)
        c_t = c_{t-1} + a_t * (u_t - c_{t-1})
        h_t = merge(r_t, c_t)

    Weights: `kernel` `(input_dim, 3 * units)` = `[W_R, W_T, W_a]`,
    `recurrent_kernel` `(units, 2 * units)` = `[U_T, U_a]`, `bias`
    `(3 * units,)` = `[b_R, b_T, b_a]`; with `temporal_gate="input"`,
    `recurrent_kernel` is `U_T` alone, and with `None` (the paper's T,
    `c_t = u_t`) `kernel` is `[W_R, W_T]` and `bias` `[b_R, b_T]` too. The
    state is `c_t`, zeros at first.

    Args:
        units: Positive integer, the size of `r` and `c`.
        Other arguments: as in `ConvCBMCell` (without the convolution ones).

    Call arguments:
        inputs: A 2D tensor `(batch, features)`, one time step.
        states: A list holding the previous state `c_{t-1}`.
        training: Python boolean, whether dropout and Temporal Dropout apply.

    Returns:
        `(h_t, [c_t])`.

    Example:

    >>> layer = keras.layers.RNN(CBMCell(8), return_sequences=True)
    >>> tuple(layer(np.zeros((2, 5, 3))).shape)
    (2, 5, 8)
    """

    step_ndim = 2
    step_layout = "(batch, time, features)"

    def __init__(self, units, **kwargs):
        super().__init__(units=units, units_name="units", **kwargs)
        self.state_size = self.units
        self.output_size = self.output_units

    def build(self, inputs_shape, states_shape=None):
        if len(inputs_shape) != 2 or inputs_shape[-1] is None:
            raise ValueError(
                "`inputs` of a CBMCell must have shape (batch, features) with "
                f"`features` defined. Received: inputs.shape={inputs_shape}"
            )
        self._build_weights((), inputs_shape[-1], (None, self.units))

    def state_shape(self, inputs_shape):
        """The shape of `c` for one step of input of shape `inputs_shape`."""
        return (inputs_shape[0], self.units)

    def _project_input(self, inputs, kernel):
        return ops.matmul(inputs, kernel)

    def _project_state(self, state, kernel):
        return ops.matmul(state, kernel)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_cbm")
class CBM(BaseCBM):
    """Context Bridge Module layer over sequences of feature vectors.

    The dense counterpart of `ConvCBM2D`, with arguments like
    `keras.layers.LSTM`: R (`r_t = activation(x_t W_R + b_R)`, no
    recurrence), T (the only recurrence) and a merge (`h_t = merge(r_t,
    c_t)`). T leaks at a gated rate (element-wise products):

        u_t = recurrent_activation(td(x_t) W_T + c_{t-1} U_T + b_T)
        a_t = sigmoid(td(x_t) W_a + c_{t-1} U_a + b_a)
        c_t = c_{t-1} + a_t * (u_t - c_{t-1})

    The input projections of all steps run before the recurrent loop.

    The gate is the package's default, not the paper's: the paper's T is
    `c_t = u_t` with `recurrent_activation="sigmoid"`, which forgets
    within a few frames (each step multiplies the gradient reaching back
    through `c` by `sigmoid' * U_T`, at most about 1/4).
    `**keras_cbm.layers.PAPER_CELL` gives the paper's whole cell
    (`temporal_gate=None, recurrent_activation="sigmoid",
    merge="multiply"`); the README's "Design decisions" gives the evidence.

    Args:
        units: Positive integer, the size of `r` and `c`.
        activation: Activation of R. Defaults to `"tanh"`.
        recurrent_activation: Activation of T's candidate `u_t`. Defaults
            to `"tanh"` (the paper's: `"sigmoid"`).
        use_bias: Whether R and T have biases.
        kernel_initializer, recurrent_initializer, bias_initializer:
            Initializers of the three weights.
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            Regularizers of the three weights.
        kernel_constraint, recurrent_constraint, bias_constraint:
            Constraints of the three weights.
        dropout: Float in [0, 1], fraction of input units dropped.
        recurrent_dropout: Float in [0, 1], fraction of state units dropped.
        temporal_dropout: Float in [0, 1], the Temporal Dropout rate: the
            probability that a training call blocks back-propagation from T
            into the inputs for the whole sequence.
        merge: `"add"` (default), `"multiply"` (the paper's) or `"concat"`
            (`2 * units`).
        batch_norm: What to batch-normalise before the activations, with
            statistics over all unmasked `batch * time` frames of the
            call: `True` R's and T's input convolutions (`W_R * x + b_R`,
            `W_T * x + b_T`), `"representation"` R's only,
            `"temporal"` T's only, `False` nothing. The reference
            normalises T's whole pre-activation, `U_T * c` included, with
            statistics per time step; here the recurrent term is left out,
            which keeps batch statistics and moving-average updates out of
            the loop. The
            layer only: a bare cell in `keras.layers.RNN` refuses it.
        temporal_gate: `"recurrent"` (default, `a_t` above), `"input"`
            (`a_t` without `U_a`) or `None` (the paper's T, no gate). `b_a`
            starts at rates from 0.02 to 0.9 per frame across channels,
            whatever `bias_initializer`.
        seed: Random seed for dropout and Temporal Dropout.
        return_sequences: Whether to return every step's output or the last.
        return_state: Whether to also return the last state `c`.
        go_backwards: Whether to process the sequence backwards.
        stateful: Whether the last state of each sample is the initial state
            of the same sample in the next batch.
        unroll: Whether to unroll the loop (faster for short sequences).

    Call arguments:
        sequences: A 3D tensor `(batch, time, features)`.
        initial_state: Optional list with one tensor `(batch, units)`.
        mask: Optional boolean tensor `(batch, time)`.
        training: Python boolean, whether dropout and Temporal Dropout apply.

    Input shape:
        `(batch, time, features)`.

    Output shape:
        `(batch, time, output_units)` with `return_sequences`, else
        `(batch, output_units)`; with `return_state`, also the state
        `(batch, units)`.

    Returns:
        The output, or `[output, state]` with `return_state=True`.

    Example:

    >>> layer = CBM(8, merge="concat", return_sequences=True)
    >>> tuple(layer(np.zeros((2, 5, 3))).shape)
    (2, 5, 16)
    """

    def __init__(self, units, **kwargs):
        super().__init__(CBMCell, {"units": units}, **kwargs)

    def get_config(self):
        return {**super().get_config(), "units": self.units}

    units = cell_property("units")
