"""Property-based tests of the CBM layers: drawn configurations and inputs,
checked against the NumPy reference (values, and gradients by finite
differences of the reference) with the masking semantics of Keras' RNNs.

Examples are drawn with `derandomize=True`, so every run checks the same
ones; `max_examples` keeps the whole file within a minute and a half on
2 CPU cores per backend (JAX, which compiles every drawn configuration,
checks half as many).
"""

import keras
import numpy as np
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_cbm.layers import CBM
from keras_cbm.layers import ConvCBM1D
from keras_cbm.layers import ConvCBM2D
from keras_cbm.layers import ConvCBM3D
from keras_cbm.layers.base_cbm import TEMPORAL_GATES
from tests.layers import numpy_reference
from tests.layers.testing_utils import layer_gradients
from tests.layers.testing_utils import randomize_weights

FILTERS, CHANNELS = 3, 2
# Rank 0 is the dense CBM: the reference's convolution without spatial axes
# is a matrix product.
LAYERS = {0: CBM, 1: ConvCBM1D, 2: ConvCBM2D, 3: ConvCBM3D}
SETTINGS = dict(derandomize=True, deadline=None, database=None)


def examples(count):
    """`count` drawn examples on TensorFlow, half as many on JAX."""
    if keras.backend.backend() == "tensorflow":
        return count
    return max(1, count // 2)


# T's activation: the paper's and the layers' default.
RECURRENT_ACTIVATIONS = {"sigmoid": numpy_reference.sigmoid, "tanh": np.tanh}


@st.composite
def geometries(draw, ranks=(0, 1, 2, 3)):
    """A layer's rank, convolution arguments and one frame's shape."""
    rank = draw(st.sampled_from(ranks))
    if rank == 0:
        return {"rank": 0, "arguments": {}, "frame": (CHANNELS,)}
    kernel = draw(st.integers(1, 3))
    strides = draw(st.sampled_from([1, 2]))
    dilation = 1 if strides > 1 else draw(st.sampled_from([1, 2]))
    padding = draw(st.sampled_from(["same", "valid"]))
    # Large enough for a "valid" output; small, for speed.
    size = (kernel - 1) * dilation + 1 + draw(st.integers(0, 4 - rank))
    return {
        "rank": rank,
        "arguments": {
            "kernel_size": kernel,
            "strides": strides,
            "dilation_rate": dilation,
            "padding": padding,
            "data_format": draw(
                st.sampled_from(["channels_last", "channels_first"])
            ),
        },
        "frame": (size,) * rank + (CHANNELS,),
    }


def make_layer(geometry, **kwargs):
    return LAYERS[geometry["rank"]](FILTERS, **geometry["arguments"], **kwargs)


def channels_first(geometry):
    return geometry["arguments"].get("data_format") == "channels_first"


def to_layer(x, geometry):
    """Channels-last `(B, T, *spatial, C)` in the layer's data format."""
    if channels_first(geometry):
        return np.moveaxis(x, -1, 2)
    return x


def from_layer(y, geometry, time_axis=True):
    """The layer's output in channels-last."""
    if channels_first(geometry):
        return np.moveaxis(np.asarray(y), 2 if time_axis else 1, -1)
    return np.asarray(y)


def reference(x, weights, geometry, merge, **kwargs):
    """The NumPy reference for the layer's geometry, channels-last."""
    arguments = geometry["arguments"]
    return numpy_reference.cbm_sequence(
        x,
        x,
        *weights,
        merge=merge,
        strides=arguments.get("strides", 1),
        padding=arguments.get("padding", "same"),
        dilation=arguments.get("dilation_rate", 1),
        **kwargs,
    )


def full_weights(layer, weights):
    """`[kernel, recurrent_kernel, bias]`, zero bias without `use_bias`
    (as long as the kernel's last axis: 3 blocks with `temporal_gate`)."""
    if len(weights) == 2:
        return weights + [np.zeros(weights[0].shape[-1])]
    return weights


def expected_outputs(x, weights, geometry, config, mask=None):
    """What the layer must return (channels-last), from the reference."""
    outputs, state = reference(
        x,
        weights,
        geometry,
        config["merge"],
        mask=mask,
        go_backwards=config["go_backwards"],
        temporal_gate=config["temporal_gate"],
        recurrent_activation=RECURRENT_ACTIVATIONS[
            config["recurrent_activation"]
        ],
    )
    if not config["return_sequences"]:
        outputs = outputs[:, -1]
    return outputs, state


MASK_LAYOUTS = ("none", "steps", "masking")


@st.composite
def masks(draw, batch, steps, layout):
    """A `(batch, time)` mask drawn per step (rows may be all masked), or
    `None`."""
    if layout == "none":
        return None
    return np.array(
        draw(
            st.lists(
                st.lists(st.booleans(), min_size=steps, max_size=steps),
                min_size=batch,
                max_size=batch,
            )
        )
    )


@settings(max_examples=examples(10), **SETTINGS)
@given(
    data=st.data(),
    geometry=geometries(),
    merge=st.sampled_from(["multiply", "add", "concat"]),
    use_bias=st.booleans(),
    temporal_gate=st.sampled_from(TEMPORAL_GATES),
    recurrent_activation=st.sampled_from(sorted(RECURRENT_ACTIVATIONS)),
    return_sequences=st.booleans(),
    return_state=st.booleans(),
    go_backwards=st.booleans(),
    unroll=st.booleans(),
    batch=st.integers(1, 3),
    steps=st.integers(1, 4),
    layout=st.sampled_from(MASK_LAYOUTS),
)
def test_outputs_and_gradients_match_the_reference(
    data,
    geometry,
    merge,
    use_bias,
    temporal_gate,
    recurrent_activation,
    return_sequences,
    return_state,
    go_backwards,
    unroll,
    batch,
    steps,
    layout,
):
    config = dict(
        merge=merge,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        temporal_gate=temporal_gate,
        recurrent_activation=recurrent_activation,
    )
    layer = make_layer(
        geometry,
        use_bias=use_bias,
        return_state=return_state,
        unroll=unroll,
        **config,
    )
    rng = np.random.default_rng(steps * 10 + batch)
    x = rng.normal(size=(batch, steps) + geometry["frame"])
    mask = data.draw(masks(batch, steps, layout))
    if layout == "masking":
        # keras.layers.Masking masks the all-zero positions of a frame:
        # a mask of shape (batch, time, *spatial) for a conv layer.
        x = x * mask.reshape(mask.shape + (1,) * (x.ndim - 2))
    layer_x = to_layer(x, geometry).astype("float32")
    call = {}
    if layout == "steps":
        call["mask"] = mask
    elif layout == "masking":
        call["mask"] = keras.layers.Masking(0.0).compute_mask(layer_x)
    layer.build(layer_x.shape)
    weights = full_weights(layer, randomize_weights(layer, seed=steps))

    results = layer(layer_x, **call)
    expected, expected_state = expected_outputs(
        x, weights, geometry, config, mask
    )
    if return_state:
        results, state = results
        np.testing.assert_allclose(
            from_layer(state, geometry, time_axis=False),
            expected_state,
            atol=1e-5,
        )
    outputs = from_layer(results, geometry, time_axis=return_sequences)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)

    # Gradients: directional derivatives of the reference, by central
    # differences in float64, against the layer's gradients.
    cotangent = rng.normal(size=expected.shape)
    layer_cotangent = cotangent
    if channels_first(geometry):
        layer_cotangent = np.moveaxis(
            cotangent, -1, 2 if return_sequences else 1
        )
    grad_x, grad_w = layer_gradients(
        layer, layer_x, layer_cotangent.astype("float32"), **call
    )
    direction_x = rng.normal(size=x.shape)
    direction_w = [rng.normal(size=w.shape) for w in weights]
    if not use_bias:
        direction_w[-1] = np.zeros_like(direction_w[-1])
        grad_w = grad_w + [np.zeros_like(direction_w[-1])]

    def objective(epsilon):
        shifted_x = x + epsilon * direction_x
        if layout == "masking":
            shifted_x = shifted_x * mask.reshape(
                mask.shape + (1,) * (x.ndim - 2)
            )
        shifted_w = [
            w + epsilon * d for w, d in zip(weights, direction_w, strict=True)
        ]
        outputs, _ = expected_outputs(
            shifted_x, shifted_w, geometry, config, mask
        )
        return np.sum(outputs * cotangent)

    epsilon = 1e-5
    numeric = (objective(epsilon) - objective(-epsilon)) / (2 * epsilon)
    analytic = np.sum(from_layer(grad_x, geometry) * direction_x) + sum(
        np.sum(g * d) for g, d in zip(grad_w, direction_w, strict=True)
    )
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-3)


def compiled_model(layer, frame, batch_size=None):
    """A functional model with an undefined time length, for `predict`."""
    inputs = keras.Input((None,) + frame, batch_size=batch_size)
    return keras.Model(inputs, layer(inputs))


def predict_chunk(model, x):
    """The model's outputs for one chunk of a stateful model's sequence.

    `predict` (compiled) on TensorFlow; on JAX, whose `predict` leaves an
    RNN's state variables as they were (`keras.layers.SimpleRNN` alike), a
    direct call.
    """
    if keras.backend.backend() == "jax":
        return np.asarray(model(x))
    return model.predict(x, verbose=0)


@settings(max_examples=examples(5), **SETTINGS)
@given(
    geometry=geometries(),
    merge=st.sampled_from(["multiply", "add", "concat"]),
    go_backwards=st.booleans(),
    batch=st.integers(1, 2),
    lengths=st.lists(st.integers(1, 4), min_size=2, max_size=3, unique=True),
    masking=st.booleans(),
    temporal_gate=st.sampled_from(TEMPORAL_GATES),
    recurrent_activation=st.sampled_from(sorted(RECURRENT_ACTIVATIONS)),
)
def test_one_compiled_model_takes_any_time_length(
    geometry,
    merge,
    go_backwards,
    batch,
    lengths,
    masking,
    temporal_gate,
    recurrent_activation,
):
    config = dict(
        merge=merge,
        go_backwards=go_backwards,
        return_sequences=True,
        temporal_gate=temporal_gate,
        recurrent_activation=recurrent_activation,
    )
    layer = make_layer(geometry, **config)
    frame = to_layer(np.zeros((1, 1) + geometry["frame"]), geometry).shape[2:]
    layer.build((batch, None) + frame)
    weights = full_weights(layer, randomize_weights(layer))
    if masking:
        inputs = keras.Input((None,) + frame)
        model = keras.Model(inputs, layer(keras.layers.Masking(0.0)(inputs)))
    else:
        model = compiled_model(layer, frame)
    rng = np.random.default_rng(len(lengths))
    for steps in lengths:
        x = rng.normal(size=(batch, steps) + geometry["frame"])
        mask = None
        if masking:
            mask = rng.random((batch, steps)) < 0.7
            x = x * mask.reshape(mask.shape + (1,) * (x.ndim - 2))
        outputs = model.predict(
            to_layer(x, geometry).astype("float32"), verbose=0
        )
        expected, _ = expected_outputs(x, weights, geometry, config, mask)
        np.testing.assert_allclose(
            from_layer(outputs, geometry), expected, atol=1e-5
        )


@settings(max_examples=examples(5), **SETTINGS)
@given(
    geometry=geometries(),
    go_backwards=st.booleans(),
    batch=st.integers(1, 2),
    lengths=st.lists(st.integers(1, 4), min_size=2, max_size=3),
    temporal_gate=st.sampled_from(TEMPORAL_GATES),
    recurrent_activation=st.sampled_from(sorted(RECURRENT_ACTIVATIONS)),
)
def test_stateful_chunks_carry_the_state(
    geometry, go_backwards, batch, lengths, temporal_gate, recurrent_activation
):
    config = dict(
        merge="multiply",
        go_backwards=go_backwards,
        temporal_gate=temporal_gate,
        recurrent_activation=recurrent_activation,
    )
    layer = make_layer(geometry, stateful=True, return_sequences=True, **config)
    frame = to_layer(np.zeros((1, 1) + geometry["frame"]), geometry).shape[2:]
    model = compiled_model(layer, frame, batch_size=batch)
    weights = full_weights(layer, randomize_weights(layer))
    rng = np.random.default_rng(sum(lengths))
    state = None
    for steps in lengths:
        x = rng.normal(size=(batch, steps) + geometry["frame"])
        outputs = predict_chunk(model, to_layer(x, geometry).astype("float32"))
        expected, state = reference(
            x,
            weights,
            geometry,
            "multiply",
            go_backwards=go_backwards,
            initial_state=state,
            temporal_gate=temporal_gate,
            recurrent_activation=RECURRENT_ACTIVATIONS[recurrent_activation],
        )
        np.testing.assert_allclose(
            from_layer(outputs, geometry), expected, atol=1e-5
        )
