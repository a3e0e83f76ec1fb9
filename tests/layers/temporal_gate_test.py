"""`temporal_gate="input"` / `"recurrent"`: the gated T of every CBM layer
(`"recurrent"` by default), against the NumPy reference with the paper's
sigmoid and with the defaults' tanh."""

import itertools
import re

import keras
import numpy as np
from absl.testing import parameterized
from keras.src import testing

from keras_cbm.layers import CBM
from keras_cbm.layers import CBMCell
from keras_cbm.layers import ConvCBM2D
from keras_cbm.layers import ConvCBMCell
from keras_cbm.layers.base_cbm import gate_rate_logits
from tests.layers import numpy_reference
from tests.layers.testing_utils import layer_gradients
from tests.layers.testing_utils import paper_cell
from tests.layers.testing_utils import random_sequences
from tests.layers.testing_utils import randomize_weights

UNITS = 4
DENSE_SHAPE = (3, 5, 2)
CONV_SHAPE = (2, 4, 6, 6, 2)
KINDS = ("CBM", "ConvCBM2D")
GATES = ("input", "recurrent")


def gated_layer(kind, gate, **kwargs):
    """A `CBM` or `ConvCBM2D` ("same" padding) of `UNITS` channels: the
    paper's cell (the reference's defaults) with `gate` and `kwargs`."""
    kwargs = paper_cell(temporal_gate=gate, **kwargs)
    if kind == "CBM":
        return CBM(UNITS, **kwargs)
    return ConvCBM2D(UNITS, 3, padding="same", **kwargs)


def gated_cell(kind, gate, **kwargs):
    kwargs = paper_cell(temporal_gate=gate, **kwargs)
    if kind == "CBM":
        return CBMCell(UNITS, **kwargs)
    return ConvCBMCell(
        rank=2, filters=UNITS, kernel_size=3, padding="same", **kwargs
    )


def layer_shape(kind):
    return DENSE_SHAPE if kind == "CBM" else CONV_SHAPE


class GatedReferenceTest(testing.TestCase):
    @parameterized.parameters(
        itertools.product(KINDS, GATES, [False, True], [False, True])
    )
    def test_matches_numpy_reference(self, kind, gate, masked, go_backwards):
        x = random_sequences(layer_shape(kind))
        layer = gated_layer(
            kind,
            gate,
            merge="add",
            go_backwards=go_backwards,
            return_sequences=True,
            return_state=True,
        )
        layer.build(x.shape)
        weights = randomize_weights(layer)
        mask = None
        if masked:
            mask = np.ones(x.shape[:2], bool)
            mask[0, 2:] = False
            mask[-1, 1] = False
        outputs, state = layer(x, mask=mask)
        expected, expected_state = numpy_reference.cbm_sequence(
            x,
            x,
            *weights,
            merge="add",
            mask=mask,
            go_backwards=go_backwards,
            temporal_gate=gate,
        )
        self.assertAllClose(outputs, expected, atol=1e-5, rtol=1e-5)
        self.assertAllClose(state, expected_state, atol=1e-5, rtol=1e-5)
        # The gate changes the numbers: the reference without it differs,
        # and so does the input gate's without U_a.
        kernel, recurrent_kernel, bias = weights
        u_t = recurrent_kernel[..., :UNITS]
        common = dict(merge="add", mask=mask, go_backwards=go_backwards)
        ungated, _ = numpy_reference.cbm_sequence(
            x, x, kernel[..., : 2 * UNITS], u_t, bias[: 2 * UNITS], **common
        )
        self.assertNotAllClose(outputs, ungated, atol=1e-2)
        if gate == "recurrent":
            input_gated, _ = numpy_reference.cbm_sequence(
                x, x, kernel, u_t, bias, temporal_gate="input", **common
            )
            self.assertNotAllClose(outputs, input_gated, atol=1e-2)

    @parameterized.parameters(*KINDS)
    def test_recurrent_gate_with_zero_u_a_is_the_input_gate(self, kind):
        x = random_sequences(layer_shape(kind))
        recurrent = gated_layer(kind, "recurrent", return_sequences=True)
        input_only = gated_layer(kind, "input", return_sequences=True)
        recurrent.build(x.shape)
        input_only.build(x.shape)
        kernel, recurrent_kernel, bias = randomize_weights(recurrent)
        recurrent_kernel[..., UNITS:] = 0.0
        recurrent.set_weights([kernel, recurrent_kernel, bias])
        input_only.set_weights([kernel, recurrent_kernel[..., :UNITS], bias])
        self.assertAllClose(recurrent(x), input_only(x), atol=1e-6)

    @parameterized.parameters(*KINDS)
    def test_defaults_are_the_recurrent_gate_with_tanh_and_add(self, kind):
        x = random_sequences(layer_shape(kind))
        if kind == "CBM":
            layer = CBM(UNITS, return_sequences=True)
        else:
            layer = ConvCBM2D(UNITS, 3, padding="same", return_sequences=True)
        layer.build(x.shape)
        weights = randomize_weights(layer)
        expected, _ = numpy_reference.cbm_sequence(
            x,
            x,
            *weights,
            merge="add",
            recurrent_activation=np.tanh,
            temporal_gate="recurrent",
        )
        self.assertAllClose(layer(x), expected, atol=1e-5, rtol=1e-5)

    @parameterized.parameters(*GATES)
    def test_channels_first_and_strides(self, gate):
        x = random_sequences(CONV_SHAPE)
        layer = ConvCBM2D(
            UNITS,
            3,
            strides=2,
            padding="valid",
            data_format="channels_first",
            **paper_cell(temporal_gate=gate),
            return_sequences=True,
        )
        layer.build(x.transpose(0, 1, 4, 2, 3).shape)
        weights = randomize_weights(layer)
        outputs = layer(x.transpose(0, 1, 4, 2, 3))
        expected, _ = numpy_reference.cbm_sequence(
            x, x, *weights, strides=2, padding="valid", temporal_gate=gate
        )
        self.assertAllClose(
            np.asarray(outputs).transpose(0, 1, 3, 4, 2), expected, atol=1e-5
        )

    @parameterized.parameters(*GATES)
    def test_batch_norm_normalises_t_but_not_the_gate(self, gate):
        x = random_sequences(CONV_SHAPE)
        layer = gated_layer(
            "ConvCBM2D", gate, batch_norm=True, return_sequences=True
        )
        layer.build(x.shape)
        norms = layer.get_weights()[3:]
        weights = randomize_weights(layer)[:3]
        layer.set_weights(weights + norms)
        expected, _ = numpy_reference.cbm_sequence(
            x,
            x,
            *weights,
            normalize=numpy_reference.batch_norm,
            temporal_gate=gate,
        )
        self.assertAllClose(layer(x, training=True), expected, atol=1e-4)

    @parameterized.parameters(
        itertools.product(
            KINDS,
            GATES,
            [
                {"mask": True},
                {"go_backwards": True},
                {"dropout": 0.3, "recurrent_dropout": 0.3, "seed": 7},
            ],
        )
    )
    def test_time_batched_path_equals_cell_in_keras_rnn(
        self, kind, gate, options
    ):
        options = dict(options)
        masked = options.pop("mask", False)
        rnn_args = {"return_sequences": True, "unroll": True}
        if options.pop("go_backwards", False):
            rnn_args["go_backwards"] = True
        x = random_sequences(layer_shape(kind))
        batched = gated_layer(kind, gate, merge="concat", **options, **rnn_args)
        stepwise = keras.layers.RNN(
            gated_cell(kind, gate, merge="concat", **options), **rnn_args
        )
        batched.build(x.shape)
        stepwise.build(x.shape)
        randomize_weights(batched)
        stepwise.set_weights(batched.get_weights())
        call_kwargs = {"training": True}
        if masked:
            mask = np.ones(x.shape[:2], bool)
            mask[0, 2:] = False
            call_kwargs["mask"] = mask
        # Its shape without a call: any call draws from the seed generator.
        cotangent = random_sequences(
            batched.compute_output_shape(x.shape), seed=2
        )
        got = layer_gradients(batched, x, cotangent, **call_kwargs)
        want = layer_gradients(stepwise, x, cotangent, **call_kwargs)
        self.assertAllClose(got[0], want[0], atol=1e-5)
        for got_w, want_w in zip(got[1], want[1], strict=True):
            self.assertAllClose(got_w, want_w, atol=1e-5)


class GatedWeightsTest(testing.TestCase):
    @parameterized.parameters(
        itertools.product(
            [
                (lambda gate: CBM(UNITS, temporal_gate=gate), DENSE_SHAPE, ()),
                (
                    lambda gate: ConvCBM2D(UNITS, (3, 5), temporal_gate=gate),
                    CONV_SHAPE,
                    (3, 5),
                ),
            ],
            [("input", UNITS), ("recurrent", 2 * UNITS)],
        )
    )
    def test_shapes(self, make_shape_prefix, gate_recurrent_units):
        make, shape, prefix = make_shape_prefix
        gate, recurrent_units = gate_recurrent_units
        layer = make(gate)
        layer.build(shape)
        self.assertEqual(
            [tuple(w.shape) for w in layer.get_weights()],
            [
                prefix + (2, 3 * UNITS),
                prefix + (UNITS, recurrent_units),
                (3 * UNITS,),
            ],
        )

    def test_recurrent_initializer_initialises_u_t_and_u_a_as_one(self):
        layer = gated_layer(
            "CBM", "recurrent", recurrent_initializer="orthogonal"
        )
        layer.build(DENSE_SHAPE)
        recurrent_kernel = layer.get_weights()[1]
        # One orthogonal (units, 2 * units) matrix: orthonormal rows.
        self.assertAllClose(
            recurrent_kernel @ recurrent_kernel.T, np.eye(UNITS), atol=1e-5
        )

    @parameterized.parameters(*GATES)
    def test_gate_bias_starts_at_the_rate_logits(self, gate):
        layer = gated_layer("CBM", gate, bias_initializer="ones")
        layer.build(DENSE_SHAPE)
        bias = layer.get_weights()[2]
        # `bias_initializer` sets [b_R, b_T]; b_a spreads the rates.
        self.assertAllClose(bias[: 2 * UNITS], np.ones(2 * UNITS))
        self.assertAllClose(bias[2 * UNITS :], gate_rate_logits(UNITS))
        rates = 1 / (1 + np.exp(-bias[2 * UNITS :]))
        self.assertAllClose(rates, np.geomspace(0.02, 0.9, UNITS), rtol=1e-5)

    def test_without_the_gate_the_weights_keep_the_papers_layout(self):
        layer = ConvCBM2D(UNITS, 3, bias_initializer="ones", temporal_gate=None)
        layer.build(CONV_SHAPE)
        kernel, _, bias = layer.get_weights()
        self.assertEqual(kernel.shape[-1], 2 * UNITS)
        self.assertAllClose(bias, np.ones(2 * UNITS))

    @parameterized.parameters(*GATES)
    def test_config_round_trip_gives_the_same_outputs(self, gate):
        x = random_sequences(CONV_SHAPE)
        layer = gated_layer(
            "ConvCBM2D",
            gate,
            merge="add",
            recurrent_activation="tanh",
            return_sequences=True,
        )
        layer.build(x.shape)
        randomize_weights(layer)
        config = layer.get_config()
        self.assertEqual(config["temporal_gate"], gate)
        copy = ConvCBM2D.from_config(config)
        copy.build(x.shape)
        copy.set_weights(layer.get_weights())
        self.assertEqual(copy.get_config(), config)
        self.assertAllClose(copy(x), layer(x))

    def test_bad_values_are_refused(self):
        message = (
            r"`temporal_gate` must be one of \(None, 'input', 'recurrent'\)\. "
            r"Received: temporal_gate="
        )
        for value in (True, False, "state", 1, 0, "True", 1.0):
            for make in (
                lambda v: CBM(UNITS, temporal_gate=v),
                lambda v: CBMCell(UNITS, temporal_gate=v),
                lambda v: ConvCBM2D(UNITS, 3, temporal_gate=v),
            ):
                with self.assertRaisesRegex(
                    ValueError, message + re.escape(repr(value)) + "$"
                ):
                    make(value)
        self.assertIsNone(CBM(UNITS, temporal_gate=None).temporal_gate)


class GatedGradientTest(testing.TestCase):
    def _first_frame_share(self, x, **kwargs):
        """|d sum(last output) / d first frame| over the same for the last
        frame, at the default initialisation."""
        keras.utils.set_random_seed(0)
        layer = CBM(8, **paper_cell(merge="add", **kwargs))
        layer.build(x.shape)
        cotangent = np.ones(layer.compute_output_shape(x.shape), "float32")
        grad_x, _ = layer_gradients(layer, x, cotangent)
        return np.linalg.norm(grad_x[:, 0]) / np.linalg.norm(grad_x[:, -1])

    @parameterized.parameters(itertools.product(GATES, ["tanh", "sigmoid"]))
    def test_gate_keeps_the_gradient_of_early_frames(self, gate, activation):
        x = random_sequences((4, 20, 6))
        papers = self._first_frame_share(x)
        gated = self._first_frame_share(
            x, temporal_gate=gate, recurrent_activation=activation
        )
        # Measured at 20 frames: ~1e-13 for the paper's T, ~2e-2 (tanh)
        # and ~5e-3 (sigmoid) for the gated T.
        self.assertGreater(gated, 1e-3)
        self.assertGreater(gated, 100 * papers)

    def _gate_only_gradients(self, kind, gate, **call_kwargs):
        """The gradients through the gate alone: W_R and W_T are zero, so x
        reaches the output only through `a_t`.

        Returns:
            `(input gradient, W_a's gradient, the recurrent kernel's)`.
        """
        x = random_sequences(layer_shape(kind))
        layer = gated_layer(
            kind, gate, temporal_dropout=1.0, merge="add", return_sequences=True
        )
        layer.build(x.shape)
        kernel, recurrent_kernel, bias = randomize_weights(layer)
        kernel[..., : 2 * UNITS] = 0.0
        layer.set_weights([kernel, recurrent_kernel, bias])
        cotangent = random_sequences(layer(x).shape, seed=3)
        grad_x, grad_w = layer_gradients(layer, x, cotangent, **call_kwargs)
        return grad_x, grad_w[0][..., 2 * UNITS :], grad_w[1]

    @parameterized.parameters(itertools.product(KINDS, GATES))
    def test_temporal_dropout_blocks_the_gate_path_too(self, kind, gate):
        grad_x, _, _ = self._gate_only_gradients(kind, gate, training=False)
        self.assertGreater(np.abs(grad_x).max(), 1e-3)
        grad_x, grad_gate, grad_recurrent = self._gate_only_gradients(
            kind, gate, training=True
        )
        self.assertAllEqual(grad_x, np.zeros_like(grad_x))
        # W_a still learns: only the path into the input is cut.
        self.assertGreater(np.abs(grad_gate).max(), 1e-3)
        if gate == "recurrent":
            # U_a reads c, T's own recurrence, which TD leaves alone.
            u_a = grad_recurrent[..., UNITS:]
            self.assertGreater(np.abs(u_a).max(), 1e-3)
