"""The convolutional Context Bridge Module, for rank 1, 2 and 3 inputs."""

import keras
from keras import ops

from keras_cbm.keras_internals import compute_conv_output_shape
from keras_cbm.keras_internals import standardize_data_format
from keras_cbm.keras_internals import standardize_padding
from keras_cbm.keras_internals import standardize_tuple
from keras_cbm.layers.base_cbm import BaseCBM
from keras_cbm.layers.base_cbm import BaseCBMCell
from keras_cbm.layers.base_cbm import cell_property


@keras.saving.register_keras_serializable(package="keras_cbm")
class ConvCBMCell(BaseCBMCell):
    """Cell class for the ConvCBM layers; usable inside `keras.layers.RNN`.

    One step computes

        r_t = activation(W_R * x_t + b_R)
        u_t = recurrent_activation(W_T * td(x_t) + U_T * c_{t-1} + b_T)
        a_t = sigmoid(W_a * td(x_t) + U_a * c_{t-1} + b_a)
        c_t = c_{t-1} + a_t * (u_t - c_{t-1})
        h_t = merge(r_t, c_t)

    with convolutions `*` (other products element-wise). The input
    convolutions (`W_R`, `W_T`, `W_a`) use `strides`, `padding` and
    `dilation_rate`; the state convolution (`[U_T, U_a]`) runs at the
    output resolution with stride 1 and `"same"` padding, as in
    `keras.layers.ConvLSTM2D`. The state is `c_t`, zeros at first.

    Weights: `kernel` of shape `kernel_size + (input_channels, 3 * filters)`
    holding `[W_R, W_T, W_a]` along its last axis; `recurrent_kernel`
    `kernel_size + (filters, 2 * filters)` (`[U_T, U_a]`); `bias`
    `(3 * filters,)` = `[b_R, b_T, b_a]`. With `temporal_gate="input"`,
    `recurrent_kernel` is `U_T` alone; with `temporal_gate=None`, the
    paper's T (`c_t = u_t`), `kernel` is `[W_R, W_T]` and `bias`
    `[b_R, b_T]` too; for stride 1 and `"same"` padding that T is the
    reference's single convolution over `[td(x_t), c_{t-1}]` with its
    kernel split along input channels. `**keras_cbm.layers.PAPER_CELL`
    gives the paper's whole cell, as in `ConvCBM2D`.

    Args:
        rank: Integer, 1, 2 or 3: the rank of the convolutions.
        filters: Positive integer, the channels of `r` and `c`.
        kernel_size: An integer or tuple of `rank` integers.
        strides: An integer or tuple of `rank` integers; any stride > 1 is
            incompatible with any `dilation_rate` > 1.
        padding: `"valid"` or `"same"` (case-insensitive).
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        dilation_rate: An integer or tuple of `rank` integers.
        activation: Activation of R. Defaults to `"tanh"`.
        recurrent_activation: Activation of T's candidate `u_t`. Defaults
            to `"tanh"` (the paper's: `"sigmoid"`).
        use_bias: Whether R and T have biases.
        kernel_initializer: Initializer for `kernel`.
        recurrent_initializer: Initializer for `recurrent_kernel`.
        bias_initializer: Initializer for `bias`.
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            Regularizers of the three weights.
        kernel_constraint, recurrent_constraint, bias_constraint:
            Constraints of the three weights.
        dropout: Float in [0, 1], fraction of input units dropped (one
            mask for the whole sequence, as in `keras.layers.ConvLSTM2D`).
        recurrent_dropout: Float in [0, 1], fraction of state units dropped
            before `U_T`.
        temporal_dropout: Float in [0, 1], the Temporal Dropout rate: the
            probability that a training call blocks back-propagation from T
            into the input (forward values never change).
        merge: `"add"` (default, `h = r + c`), `"multiply"` (the paper's)
            or `"concat"` (`2 * filters` output channels).
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

    Call arguments:
        inputs: A `(rank + 2)`D tensor, one time step.
        states: A list holding the previous state `c_{t-1}`.
        training: Python boolean, whether dropout and Temporal Dropout apply.

    Returns:
        `(h_t, [c_t])`.

    Example:

    >>> cell = ConvCBMCell(rank=2, filters=4, kernel_size=3, padding="same")
    >>> layer = keras.layers.RNN(cell, return_sequences=True)
    >>> tuple(layer(np.zeros((2, 5, 8, 8, 3))).shape)
    (2, 5, 8, 8, 4)
    """

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        **kwargs,
    ):
        super().__init__(units=filters, units_name="filters", **kwargs)
        if rank not in (1, 2, 3):
            raise ValueError(
                f"`rank` must be 1, 2 or 3. Received: rank={rank!r}"
            )
        self.rank = rank
        self.filters = self.units
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(strides, rank, "strides")
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self.dilation_rate = standardize_tuple(
            dilation_rate, rank, "dilation_rate"
        )
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "`strides > 1` is not compatible with `dilation_rate > 1`. "
                f"Received: strides={self.strides} and "
                f"dilation_rate={self.dilation_rate}"
            )
        # Counted from the end, so that it holds for one step and for a
        # whole (time, batch, ...) sequence alike.
        self.channel_axis = (
            -(rank + 1) if self.data_format == "channels_first" else -1
        )
        self.step_ndim = rank + 2
        spatial = ", ".join(["dim"] * rank)
        self.step_layout = (
            f"(batch, time, channels, {spatial})"
            if self.data_format == "channels_first"
            else f"(batch, time, {spatial}, channels)"
        )
        self.state_size = -1  # The state's shape depends on the input's.

    def build(self, inputs_shape, states_shape=None):
        if len(inputs_shape) != self.step_ndim:
            raise ValueError(
                f"`inputs` of a rank-{self.rank} ConvCBMCell must have rank "
                f"{self.step_ndim} (one time step). Received: "
                f"inputs.shape={tuple(inputs_shape)}"
            )
        if self.data_format == "channels_first":
            self.spatial_dims = tuple(inputs_shape[2:])
        else:
            self.spatial_dims = tuple(inputs_shape[1:-1])
        input_dim = inputs_shape[self.channel_axis]
        if None in self.spatial_dims or input_dim is None:
            raise ValueError(
                "ConvCBM layers need static spatial and channel dimensions. "
                f"Received: inputs.shape={tuple(inputs_shape)}"
            )
        self._build_weights(
            self.kernel_size, input_dim, self.state_shape(inputs_shape)
        )

    def _project_input(self, inputs, kernel):
        return ops.conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )

    def _project_state(self, state, kernel):
        return ops.conv(
            state,
            kernel,
            strides=1,
            padding="same",
            data_format=self.data_format,
        )

    def state_shape(self, inputs_shape):
        """The shape of `c` for one step of input of shape `inputs_shape`."""
        return compute_conv_output_shape(
            inputs_shape,
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )

    def compute_output_shape(self, inputs_shape, states_shape=None):
        state_shape = self.state_shape(inputs_shape)
        output_shape = list(state_shape)
        output_shape[self.channel_axis] = self.output_units
        return tuple(output_shape), [state_shape]

    def get_initial_state(self, batch_size=None):
        if self.data_format == "channels_last":
            inputs_shape = (batch_size,) + self.spatial_dims + (self.input_dim,)
        else:
            inputs_shape = (batch_size, self.input_dim) + self.spatial_dims
        return [ops.zeros(self.state_shape(inputs_shape), self.compute_dtype)]

    def conv_config(self):
        """The convolution arguments, shared with the ConvCBM layers."""
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "rank": self.rank,
            **self.conv_config(),
        }


class ConvCBM(BaseCBM):
    """Rank-generic convolutional CBM layer; see `ConvCBM2D`.

    The user-facing layers are `ConvCBM1D`, `ConvCBM2D` and `ConvCBM3D`,
    which fix `rank` and document the arguments.
    """

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        **kwargs,
    ):
        super().__init__(
            ConvCBMCell,
            dict(
                rank=rank,
                filters=filters,
                kernel_size=kernel_size,
                strides=strides,
                padding=padding,
                data_format=data_format,
                dilation_rate=dilation_rate,
            ),
            **kwargs,
        )

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch_size, steps = sequences_shape[:2]
        step_shape = (batch_size,) + tuple(sequences_shape[2:])
        output_shape, (state_shape,) = self.cell.compute_output_shape(
            step_shape
        )
        if self.return_sequences:
            output_shape = (batch_size, steps) + output_shape[1:]
        if self.return_state:
            return output_shape, state_shape
        return output_shape

    def get_config(self):
        return {**super().get_config(), **self.cell.conv_config()}

    filters = cell_property("filters")
    kernel_size = cell_property("kernel_size")
    strides = cell_property("strides")
    padding = cell_property("padding")
    data_format = cell_property("data_format")
    dilation_rate = cell_property("dilation_rate")
