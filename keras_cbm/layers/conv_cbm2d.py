import keras

from keras_cbm.layers.conv_cbm import ConvCBM


@keras.saving.register_keras_serializable(package="keras_cbm")
class ConvCBM2D(ConvCBM):
    """2D convolutional Context Bridge Module (CBM) layer.

    A recurrent layer like `keras.layers.ConvLSTM2D` that splits what flows
    along depth from what flows along time. At every step

        r_t = activation(W_R * x_t + b_R)                    # R, no recurrence
        c_t = recurrent_activation(W_T * td(x_t) + U_T * c_{t-1} + b_T)  # T
        h_t = merge(r_t, c_t)                                # the output

    `*` is a 2D convolution and `td` is Temporal Dropout: in training, with
    probability `temporal_dropout`, one draw per call blocks back-propagation
    from T into the input for the whole sequence (forward values never
    change; R's gradient is never blocked). The state is `c`, zeros at
    first. R and the input term of T run for all frames at once, before the
    loop; only `U_T * c_{t-1}` runs step by step, so forward and backward
    cost about 3/8 of a `ConvLSTM2D` with the same filters.

    This T, the paper's, forgets within a few frames: each step multiplies
    the gradient reaching back through `c` by `sigmoid' * U_T`, at most
    about 1/4 at the default initialisation. `temporal_gate` (an option,
    not the paper's T) makes T leak at a gated rate `a_t`:

        c_t = c_{t-1} + a_t * (recurrent_activation(W_T * td(x_t)
                               + U_T * c_{t-1} + b_T) - c_{t-1})
        a_t = sigmoid(W_a * td(x_t) + b_a)                   # "input"
        a_t = sigmoid(W_a * td(x_t) + U_a * c_{t-1} + b_a)   # "recurrent"

    (products with `a_t` element-wise). A closed gate keeps `c` and its
    gradient. `W_a * td(x_t)` joins the time-batched projection; `U_a`
    joins `U_T` in the one convolution of `c_{t-1}` per step (about 4/8
    and 5/8 of a `ConvLSTM2D`'s operations). Temporal Dropout blocks the
    gate's gradient into the input too.

    Measured best: `temporal_gate="recurrent", recurrent_activation="tanh",
    merge="add"` (the README's "Memory" section and
    `benchmarks/memory_tasks.md`).

    Weights, the checkpoint format: `cell.kernel`
    `kernel_size + (input_channels, 2 * filters)` = `[W_R, W_T]` on the last
    axis, `cell.recurrent_kernel` `kernel_size + (filters, filters)` = `U_T`,
    `cell.bias` `(2 * filters,)` = `[b_R, b_T]`, in that order in
    `get_weights()`. With `temporal_gate`, `3 * filters` outputs:
    `[W_R, W_T, W_a]` and `[b_R, b_T, b_a]`; with `"recurrent"`,
    `cell.recurrent_kernel` `kernel_size + (filters, 2 * filters)` =
    `[U_T, U_a]`.

    Args:
        filters: Positive integer, the channels of `r` and `c`.
        kernel_size: An integer or tuple of 2 integers.
        strides: An integer or tuple of 2 integers, the strides of the input
            convolutions (the state convolution has stride 1). Any stride
            > 1 is incompatible with any `dilation_rate` > 1.
        padding: `"valid"` or `"same"`, of the input convolutions (the state
            convolution is always `"same"`).
        data_format: `"channels_last"` (`(batch, time, rows, cols,
            channels)`) or `"channels_first"` (`(batch, time, channels, rows,
            cols)`); defaults to `keras.config.image_data_format()`.
        dilation_rate: An integer or tuple of 2 integers.
        activation: Activation of R. Defaults to `"tanh"`.
        recurrent_activation: Activation of T. Defaults to `"sigmoid"`.
        use_bias: Whether R and T have biases.
        kernel_initializer, recurrent_initializer, bias_initializer:
            Initializers of the three weights.
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            Regularizers of the three weights.
        kernel_constraint, recurrent_constraint, bias_constraint:
            Constraints of the three weights.
        dropout: Float in [0, 1], fraction of input units dropped (one mask
            for the whole sequence).
        recurrent_dropout: Float in [0, 1], fraction of state units dropped.
        temporal_dropout: Float in [0, 1], the Temporal Dropout rate.
        merge: `"multiply"` (default, `h = r * c`), `"add"` (`h = r + c`) or
            `"concat"` (`h = [r, c]`, `2 * filters` channels).
        batch_norm: Whether to batch-normalise R's and T's input
            convolutions (`W_R * x + b_R`, `W_T * x + b_T`) before their
            activations, with statistics over all unmasked `batch * time`
            frames of the call. The reference normalises T's whole
            pre-activation, `U_T * c` included, with statistics per time
            step; here the recurrent term is left out, which keeps batch
            statistics and moving-average updates out of the loop. The
            layer only: a bare cell in `keras.layers.RNN` refuses it.
        temporal_gate: `None` (the paper's T, default), `"input"` or
            `"recurrent"`: T leaks at the rate `a_t` above (an option, not
            the paper's T). `b_a` starts at rates from 0.02 to 0.9 per
            frame across channels, whatever `bias_initializer`.
        seed: Random seed for dropout and Temporal Dropout.
        return_sequences: Whether to return every step's output or the last.
        return_state: Whether to also return the last state `c`.
        go_backwards: Whether to process the sequence backwards.
        stateful: Whether the last state of each sample is the initial state
            of the same sample in the next batch.
        unroll: Whether to unroll the loop (faster for short sequences).

    Call arguments:
        sequences: A 5D tensor.
        initial_state: Optional list with one state tensor `c_0`.
        mask: Optional boolean tensor `(batch, time)`, or `(batch, time,
            *spatial)` as `keras.layers.Masking` gives it (a step counts
            where any of its positions does).
        training: Python boolean, whether dropout and Temporal Dropout apply.

    Input shape:
        `(batch, time, rows, cols, channels)` (channels_last) or
        `(batch, time, channels, rows, cols)` (channels_first).

    Output shape:
        With `return_sequences`: `(batch, time, new_rows, new_cols,
        output_channels)`, else `(batch, new_rows, new_cols,
        output_channels)` (channels_last; channels_first puts channels
        after `time`/`batch`), where `output_channels` is `2 * filters` for
        `merge="concat"`, else `filters`. With `return_state`, the state
        `(batch, new_rows, new_cols, filters)` follows.

    Returns:
        The output, or `[output, state]` with `return_state=True`.

    Example:

    >>> frames = np.random.rand(2, 8, 16, 16, 3).astype("float32")
    >>> layer = ConvCBM2D(4, 3, padding="same", return_sequences=True,
    ...                   temporal_dropout=0.5)
    >>> tuple(layer(frames, training=True).shape)
    (2, 8, 16, 16, 4)

    The gated T, with the settings measured best:

    >>> gated = ConvCBM2D(4, 3, padding="same", temporal_gate="recurrent",
    ...                   recurrent_activation="tanh", merge="add")
    >>> tuple(gated(frames).shape), tuple(gated.cell.recurrent_kernel.shape)
    ((2, 16, 16, 4), (3, 3, 4, 8))
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(
            rank=2, filters=filters, kernel_size=kernel_size, **kwargs
        )
