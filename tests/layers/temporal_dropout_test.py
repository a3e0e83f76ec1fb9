import keras
import numpy as np
from keras.src import testing

from keras_cbm.layers import CBM
from keras_cbm.layers import ConvCBM2D
from tests.layers import numpy_reference
from tests.layers.testing_utils import compiled_input_gradient
from tests.layers.testing_utils import layer_gradients
from tests.layers.testing_utils import random_sequences
from tests.layers.testing_utils import randomize_weights

SHAPE = (1, 3, 4, 4, 2)


def finite_difference_gradient(function, x, eps=1e-6):
    """Central differences of a scalar float64 function of `x`."""
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        gradient[index] = (function(x + step) - function(x - step)) / (2 * eps)
    return gradient


class TemporalDropoutGradientTest(testing.TestCase):
    def _layer_and_reference(self, rate):
        layer = ConvCBM2D(
            3, 3, padding="same", temporal_dropout=rate, return_sequences=True
        )
        layer.build(SHAPE)
        weights = randomize_weights(layer)
        x = random_sequences(SHAPE)
        cotangent = random_sequences(layer.compute_output_shape(SHAPE), 3)

        def reference(x_r, x_t):
            # The layer's defaults: the gate is part of T, so it is
            # blocked with T.
            outputs, _ = numpy_reference.cbm_sequence(
                x_r,
                x_t,
                *weights,
                merge="add",
                recurrent_activation=np.tanh,
                temporal_gate="recurrent",
            )
            return np.sum(outputs * cotangent)

        return layer, x, cotangent, reference

    def test_rate_one_leaves_only_the_gradient_through_r(self):
        layer, x, cotangent, reference = self._layer_and_reference(1.0)
        x64 = x.astype("float64")
        through_r = finite_difference_gradient(lambda v: reference(v, x64), x64)
        grad_x, _ = layer_gradients(layer, x, cotangent, training=True)
        self.assertAllClose(grad_x, through_r, atol=1e-5, rtol=1e-4)
        self.assertGreater(np.abs(through_r).max(), 1e-2)

        # T's weights still learn: only the path into the input is cut.
        _, (grad_kernel, _, _) = layer_gradients(
            layer, x, cotangent, training=True
        )
        self.assertGreater(np.abs(grad_kernel[..., 3:]).max(), 1e-3)

    def test_rate_zero_includes_the_gradient_through_t(self):
        layer, x, cotangent, reference = self._layer_and_reference(0.0)
        x64 = x.astype("float64")
        both = finite_difference_gradient(lambda v: reference(v, v), x64)
        through_r = finite_difference_gradient(lambda v: reference(v, x64), x64)
        grad_x, _ = layer_gradients(layer, x, cotangent, training=True)
        self.assertAllClose(grad_x, both, atol=1e-5, rtol=1e-4)
        self.assertGreater(np.abs(both - through_r).max(), 1e-2)

    def test_forward_values_never_change(self):
        layer, x, _, _ = self._layer_and_reference(1.0)
        self.assertAllClose(layer(x, training=True), layer(x, training=False))

    def test_inference_never_blocks(self):
        layer, x, cotangent, reference = self._layer_and_reference(1.0)
        x64 = x.astype("float64")
        both = finite_difference_gradient(lambda v: reference(v, v), x64)
        grad_x, _ = layer_gradients(layer, x, cotangent, training=False)
        self.assertAllClose(grad_x, both, atol=1e-5, rtol=1e-4)


class TemporalDropoutDrawTest(testing.TestCase):
    """One draw per layer call, traced, seeded."""

    def _blocked_frames(
        self, seed, calls=200, training=True, layer_kind="ConvCBM2D"
    ):
        """Whether each frame's input gradient is zero, call by call.

        R sees nothing of x (zero kernel, unit bias), so the gradient of the
        output w.r.t. a frame is zero exactly when T's path is blocked.
        """
        if layer_kind == "CBM":
            layer, shape = CBM(3, temporal_dropout=0.5, seed=seed), (2, 4, 5)
        else:
            layer = ConvCBM2D(3, 3, temporal_dropout=0.5, seed=seed)
            shape = SHAPE
        if layer_kind == "keras.layers.RNN":
            layer = keras.layers.RNN(layer.cell)
        layer.build(shape)
        kernel, recurrent_kernel, bias = randomize_weights(layer)
        kernel[..., :3] = 0.0
        bias[:3] = 1.0
        layer.set_weights([kernel, recurrent_kernel, bias])
        gradient = compiled_input_gradient(layer, training=training)
        x = random_sequences(shape)
        not_time = tuple(i for i in range(len(shape)) if i != 1)
        return np.array(
            [np.all(gradient(x) == 0, axis=not_time) for _ in range(calls)]
        )

    def assertOneDrawPerCall(self, frames):
        # Every frame of a call is blocked, or none is.
        self.assertTrue(np.all(frames == frames[:, :1]))
        return frames[:, 0]

    def test_fraction_blocked_in_one_compiled_function(self):
        blocked = self.assertOneDrawPerCall(self._blocked_frames(seed=11))
        self.assertBetween(np.mean(blocked), 0.4, 0.6)

    def test_same_seed_blocks_the_same_calls(self):
        first = self._blocked_frames(seed=5, calls=40)
        self.assertAllEqual(first, self._blocked_frames(seed=5, calls=40))
        self.assertFalse(np.array_equal(first, self._blocked_frames(6, 40)))

    def test_inference_calls_never_block(self):
        frames = self._blocked_frames(seed=1, calls=40, training=False)
        self.assertFalse(np.any(frames))

    def test_dense_cbm_and_bare_cell_draw_once_per_call(self):
        for layer_kind in ("CBM", "keras.layers.RNN"):
            frames = self._blocked_frames(3, 60, layer_kind=layer_kind)
            blocked = self.assertOneDrawPerCall(frames)
            self.assertBetween(np.mean(blocked), 0.25, 0.75)


class TemporalDropoutRateTest(testing.TestCase):
    def test_rate_outside_unit_interval(self):
        for rate in (-0.5, 1.01, "half"):
            with self.assertRaisesRegex(
                ValueError, r"`temporal_dropout` must be .*\[0, 1\]"
            ):
                ConvCBM2D(2, 3, temporal_dropout=rate)
            with self.assertRaisesRegex(ValueError, "`temporal_dropout`"):
                CBM(2, temporal_dropout=rate)
