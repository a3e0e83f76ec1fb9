"""A step-by-step NumPy float64 reference of the CBM (method.md, section 1).

Independent of the layer code: convolutions are written here, T's kernel is
the reference's single kernel over `[x_t, c_{t-1}]` (input channels first,
then state channels), and R and T can be fed different inputs so that
finite differences can isolate one path's gradient. `temporal_gate="input"`
or `"recurrent"` runs the gated T (`gated_step`) instead of the paper's.
"""

import itertools

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _same_padding(size, kernel, stride, dilation):
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def conv(x, w, strides=1, padding="same", dilation=1):
    """N-d convolution, channels last: x `(B, *spatial, C)`, w `(*k, C, F)`.

    Zero spatial dimensions make it a matrix product.
    """
    rank = x.ndim - 2
    strides = (strides,) * rank if np.isscalar(strides) else strides
    dilation = (dilation,) * rank if np.isscalar(dilation) else dilation
    kernel = w.shape[:rank]
    if padding == "same":
        pads = [
            _same_padding(x.shape[1 + i], kernel[i], strides[i], dilation[i])
            for i in range(rank)
        ]
        x = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    out_shape = [
        (x.shape[1 + i] - (kernel[i] - 1) * dilation[i] - 1) // strides[i] + 1
        for i in range(rank)
    ]
    out = np.zeros((x.shape[0], *out_shape, w.shape[-1]))
    for offset in itertools.product(*[range(k) for k in kernel]):
        window = tuple(
            slice(
                offset[i] * dilation[i],
                offset[i] * dilation[i] + (out_shape[i] - 1) * strides[i] + 1,
                strides[i],
            )
            for i in range(rank)
        )
        out += x[(slice(None),) + window] @ w[offset]
    return out


def cbm_sequence(
    x_r,
    x_t,
    kernel,
    recurrent_kernel,
    bias,
    merge="multiply",
    strides=1,
    padding="same",
    dilation=1,
    activation=np.tanh,
    recurrent_activation=sigmoid,
    normalize=None,
    normalized=("representation", "temporal"),
    mask=None,
    go_backwards=False,
    initial_state=None,
    temporal_gate=None,
):
    """Runs the CBM over a channels-last sequence, one step at a time.

    Args:
        x_r: `(B, T, *spatial, C)`, the input R sees.
        x_t: `(B, T, *spatial, C)`, the input T sees (normally `x_r`).
        kernel, recurrent_kernel, bias: the layer's weights.
        normalize: Optional function applied to the stacked input terms
            `W_R * x + b_R` and `W_T * x + b_T` of all steps,
            `(B, T, *spatial, F)`, before the recurrence (batch norm);
            `normalized` names the terms it applies to.
        mask: Optional boolean `(B, T)`. As in Keras' RNNs, a masked step
            keeps the state and repeats the previous output (zeros before
            the first unmasked step).
        go_backwards: Whether to run from the last step to the first; the
            outputs are then in the order they were computed, as in Keras.
        initial_state: Optional `c_0`; zeros by default.
        temporal_gate: `None`, `"input"` or `"recurrent"`: whether T leaks
            at the gated rate (`gated_step`); `kernel` and `bias` then hold
            `W_a`, `b_a` third, and the gate reads `x_t` (it is part of T)
            and is never normalised. With `"recurrent"`, `recurrent_kernel`
            is `[U_T, U_a]` on its last axis and the gate reads `c_{t-1}`.

    Returns:
        `(outputs (B, T, ...), last state c)`.
    """
    filters = recurrent_kernel.shape[-2]
    channels = kernel.shape[-2]
    w_r = kernel[..., :filters]
    u_a = None
    if temporal_gate == "recurrent":
        recurrent_kernel, u_a = np.split(recurrent_kernel, 2, axis=-1)
    # The reference implementation's single T kernel over [x_t, c_{t-1}].
    w_t = np.concatenate(
        [kernel[..., filters : 2 * filters], recurrent_kernel], axis=-2
    )
    b_r, b_t = bias[:filters], bias[filters : 2 * filters]
    one_conv = np.all(np.equal(strides, 1)) and padding == "same"
    one_conv = one_conv and np.all(np.equal(dilation, 1)) and normalize is None
    geometry = dict(strides=strides, padding=padding, dilation=dilation)
    steps = range(x_r.shape[1])
    pre_r = np.stack([conv(x_r[:, t], w_r, **geometry) + b_r for t in steps], 1)
    pre_t = np.stack(
        [conv(x_t[:, t], w_t[..., :channels, :], **geometry) for t in steps], 1
    )
    pre_t = pre_t + b_t
    if normalize is not None:
        if "representation" in normalized:
            pre_r = normalize(pre_r)
        if "temporal" in normalized:
            pre_t = normalize(pre_t)
    if temporal_gate:
        w_a, b_a = kernel[..., 2 * filters :], bias[2 * filters :]
        pre_a = np.stack([conv(x_t[:, t], w_a, **geometry) for t in steps], 1)
        pre_a = pre_a + b_a
    state = np.zeros(pre_r.shape[:1] + pre_r.shape[2:])
    if initial_state is not None:
        state = np.asarray(initial_state, "float64")
    output = None
    outputs = []
    for t in reversed(steps) if go_backwards else steps:
        r = activation(pre_r[:, t])
        if one_conv:
            # The reference implementation's single convolution for T.
            both = np.concatenate([x_t[:, t], state], axis=-1)
            new_state = recurrent_activation(conv(both, w_t) + b_t)
        else:
            new_state = recurrent_activation(
                pre_t[:, t] + conv(state, w_t[..., channels:, :])
            )
        if temporal_gate:
            new_state = gated_step(state, new_state, pre_a[:, t], u_a)
        if merge == "multiply":
            new_output = r * new_state
        elif merge == "add":
            new_output = r + new_state
        else:
            new_output = np.concatenate([r, new_state], axis=-1)
        if output is None:
            output = np.zeros_like(new_output)
        if mask is None:
            state, output = new_state, new_output
        else:
            keep = np.reshape(mask[:, t], (-1,) + (1,) * (state.ndim - 1))
            state = np.where(keep, new_state, state)
            output = np.where(keep, new_output, output)
        outputs.append(output)
    return np.stack(outputs, axis=1), state


def gated_step(state, candidate, gate_input, recurrent_gate_kernel=None):
    """The gated T: `c_t = c_{t-1} + a_t * (candidate - c_{t-1})`, with
    `candidate` the paper's T step, `gate_input` `W_a x_t + b_a` and `a_t =
    sigmoid(gate_input)`, or `sigmoid(gate_input + U_a * c_{t-1})` given
    `U_a` (`recurrent_gate_kernel`, the recurrent gate)."""
    if recurrent_gate_kernel is not None:
        gate_input = gate_input + conv(state, recurrent_gate_kernel)
    return state + sigmoid(gate_input) * (candidate - state)


def batch_norm(values, epsilon=1e-3):
    """Normalises per channel over every other axis (Keras' default
    epsilon, initial scale 1 and offset 0)."""
    axes = tuple(range(values.ndim - 1))
    mean, variance = values.mean(axes), values.var(axes)
    return (values - mean) / np.sqrt(variance + epsilon)
