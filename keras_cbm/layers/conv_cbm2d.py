import keras

from keras_cbm.layers.conv_cbm import ConvCBM


@keras.saving.register_keras_serializable(package="keras_cbm")
class ConvCBM2D(ConvCBM):
    """2D convolutional Context Bridge Module (CBM) layer.

    A recurrent layer like `keras.layers.ConvLSTM2D` that splits what flows
    along depth from what flows along time. At every step

        r_t = activation(W_R * x_t + b_R)                    # R, no recurrence
        u_t = recurrent_activation(W_T * td(x_t) + U_T * c_{t-1} + b_T)
        a_t = sigmoid(W_a * td(x_t) + U_a * c_{t-1} + b_a)   # T's gate
        c_t = c_{t-1} + a_t * (u_t - c_{t-1})                # T
        h_t = merge(r_t, c_t)                                # the output

    (products with `a_t` element-wise). `*` is a 2D convolution and `td` is
    Temporal Dropout: in training, with probability `temporal_dropout`, one
    draw per call blocks back-propagation from T (its gate included) into
    the input for the whole sequence (forward values never change; R's
    gradient is never blocked). The state is `c`, zeros at first. R and the
    input terms of T run for all frames at once, before the loop; only the
    one convolution of `c_{t-1}` by `[U_T, U_a]` runs step by step (about
    5/8 of a `ConvLSTM2D`'s operations).

    The gate `a_t` is the package's default, not the paper's: the paper's
    T rewrites `c` at every step, `c_t = recurrent_activation(W_T * td(x_t)
    + U_T * c_{t-1} + b_T)`, which forgets within a few frames (each step
    multiplies the gradient reaching back through `c` by `sigmoid' * U_T`,
    at most about 1/4), while a closed gate keeps `c` and its gradient.
    `temporal_gate=None` gives the paper's T (`"input"` drops `U_a`), and
    `**keras_cbm.layers.PAPER_CELL` the paper's whole cell (`temporal_gate=
    None, recurrent_activation="sigmoid", merge="multiply"`, 3/8 of a
    `ConvLSTM2D`'s operations). The README's "Design decisions" gives the
    evidence.

    Weights, the checkpoint format: `cell.kernel`
    `kernel_size + (input_channels, 3 * filters)` = `[W_R, W_T, W_a]` on
    the last axis, `cell.recurrent_kernel` `kernel_size + (filters,
    2 * filters)` = `[U_T, U_a]`, `cell.bias` `(3 * filters,)` =
    `[b_R, b_T, b_a]`, in that order in `get_weights()`. With
    `temporal_gate="input"`, `recurrent_kernel` is `U_T` alone; with `None`,
    `kernel` is `[W_R, W_T]` and `bias` `[b_R, b_T]` too.

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
        recurrent_activation: Activation of T's candidate `u_t`. Defaults
            to `"tanh"` (the paper's: `"sigmoid"`).
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
        merge: `"add"` (default, `h = r + c`), `"multiply"` (`h = r * c`,
            the paper's) or `"concat"` (`h = [r, c]`, `2 * filters`
            channels).
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

    >>> tuple(layer.cell.recurrent_kernel.shape)  # [U_T, U_a]
    (3, 3, 4, 8)

    The paper's cell:

    >>> from keras_cbm.layers import PAPER_CELL
    >>> paper = ConvCBM2D(4, 3, padding="same", **PAPER_CELL)
    >>> tuple(paper(frames).shape), tuple(paper.cell.recurrent_kernel.shape)
    ((2, 16, 16, 4), (3, 3, 4, 4))
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(
            rank=2, filters=filters, kernel_size=kernel_size, **kwargs
        )
