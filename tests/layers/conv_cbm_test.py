import itertools

import keras
import numpy as np
import pytest
from absl.testing import parameterized
from keras.src import testing

from keras_cbm.layers import ConvCBM1D
from keras_cbm.layers import ConvCBM2D
from keras_cbm.layers import ConvCBM3D
from keras_cbm.layers import ConvCBMCell
from tests.layers import numpy_reference
from tests.layers.testing_utils import layer_gradients
from tests.layers.testing_utils import paper_cell
from tests.layers.testing_utils import random_sequences
from tests.layers.testing_utils import randomize_weights

BATCH, STEPS, SIZE, CHANNELS, FILTERS = 2, 4, 7, 3, 4


class ConvCBM2DReferenceTest(testing.TestCase):
    @parameterized.parameters(
        itertools.product(
            ["multiply", "add", "concat"],
            ["channels_last", "channels_first"],
            ["same", "valid"],
            [1, 2],
        )
    )
    def test_matches_numpy_reference(self, merge, data_format, padding, stride):
        x = random_sequences((BATCH, STEPS, SIZE, SIZE, CHANNELS))
        layer = ConvCBM2D(
            FILTERS,
            3,
            strides=stride,
            padding=padding,
            data_format=data_format,
            **paper_cell(merge=merge),
            return_sequences=True,
            return_state=True,
        )
        layer_input = x
        if data_format == "channels_first":
            layer_input = x.transpose(0, 1, 4, 2, 3)
        layer.build(layer_input.shape)
        kernel, recurrent_kernel, bias = randomize_weights(layer)
        outputs, state = layer(layer_input)
        outputs, state = np.asarray(outputs), np.asarray(state)
        if data_format == "channels_first":
            outputs = outputs.transpose(0, 1, 3, 4, 2)
            state = state.transpose(0, 2, 3, 1)

        expected, expected_state = numpy_reference.cbm_sequence(
            x, x, kernel, recurrent_kernel, bias, merge, stride, padding
        )
        self.assertAllClose(outputs, expected, atol=1e-5, rtol=1e-5)
        self.assertAllClose(state, expected_state, atol=1e-5, rtol=1e-5)
        self.assertEqual(
            outputs.shape[-1], 2 * FILTERS if merge == "concat" else FILTERS
        )

    @parameterized.parameters(
        (ConvCBM1D, (BATCH, STEPS, 9, CHANNELS), {"dilation_rate": 2}),
        (ConvCBM3D, (BATCH, STEPS, 5, 5, 5, CHANNELS), {"strides": 2}),
    )
    def test_rank_1_and_3_match_numpy_reference(self, layer_cls, shape, geo):
        x = random_sequences(shape)
        layer = layer_cls(
            FILTERS,
            3,
            padding="same",
            return_sequences=True,
            **geo,
            **paper_cell(),
        )
        layer.build(shape)
        weights = randomize_weights(layer)
        expected, _ = numpy_reference.cbm_sequence(
            x,
            x,
            *weights,
            strides=geo.get("strides", 1),
            dilation=geo.get("dilation_rate", 1),
        )
        self.assertAllClose(layer(x), expected, atol=1e-5, rtol=1e-5)

    def test_last_output_and_initial_state(self):
        x = random_sequences((BATCH, STEPS, SIZE, SIZE, CHANNELS))
        layer = ConvCBM2D(FILTERS, 3, padding="same", return_state=True)
        layer.build(x.shape)
        randomize_weights(layer)
        sequence_layer = ConvCBM2D(
            FILTERS, 3, padding="same", return_sequences=True
        )
        sequence_layer.build(x.shape)
        sequence_layer.set_weights(layer.get_weights())
        last, state = layer(x[:, :2])
        # Continuing from the returned state equals one pass over all steps.
        continued, _ = layer(x[:, 2:], initial_state=[state])
        self.assertAllClose(last, sequence_layer(x[:, :2])[:, -1], atol=1e-6)
        self.assertAllClose(continued, sequence_layer(x)[:, -1], atol=1e-5)


class TimeBatchedPathTest(testing.TestCase):
    """The layer's time-batched path against the cell in keras.layers.RNN."""

    def _pair(self, **kwargs):
        shape = (BATCH, 5, 6, 6, CHANNELS)
        cell_args = dict(filters=FILTERS, kernel_size=3, padding="same")
        cell_args.update({k: v for k, v in kwargs.items() if k not in RNN_ARGS})
        rnn_args = {k: v for k, v in kwargs.items() if k in RNN_ARGS}
        batched = ConvCBM2D(**cell_args, **rnn_args)
        stepwise = keras.layers.RNN(
            ConvCBMCell(rank=2, **cell_args), **rnn_args
        )
        batched.build(shape)
        stepwise.build(shape)
        randomize_weights(batched)
        stepwise.set_weights(batched.get_weights())
        return batched, stepwise, random_sequences(shape)

    @parameterized.parameters(
        itertools.product([False, True], [False, True], [False, True])
    )
    def test_same_outputs_and_gradients(self, masked, go_backwards, unroll):
        batched, stepwise, x = self._pair(
            go_backwards=go_backwards, unroll=unroll, return_sequences=True
        )
        # Keras' JAX scan loop takes a masked step's output from the first
        # state, `c` for a CBM cell; its unrolled loop is right everywhere.
        stepwise.unroll = unroll or masked
        call_kwargs = {}
        if masked:
            mask = np.ones(x.shape[:2], bool)
            mask[0, 3:] = False
            mask[1, 1] = False
            call_kwargs["mask"] = mask
        cotangent = random_sequences(batched(x).shape, seed=2)
        self.assertAllClose(
            batched(x, **call_kwargs), stepwise(x, **call_kwargs), atol=1e-5
        )
        grads = layer_gradients(batched, x, cotangent, **call_kwargs)
        expected = layer_gradients(stepwise, x, cotangent, **call_kwargs)
        self.assertAllClose(grads[0], expected[0], atol=1e-5)
        for got, want in zip(grads[1], expected[1], strict=True):
            self.assertAllClose(got, want, atol=1e-5)

    def test_same_with_dropouts_in_training(self):
        # Equal seeds draw equal masks and Temporal Dropout gates.
        batched, stepwise, x = self._pair(
            dropout=0.3,
            recurrent_dropout=0.3,
            temporal_dropout=0.5,
            seed=7,
            return_sequences=True,
        )
        cotangent = random_sequences(batched.compute_output_shape(x.shape), 2)
        for _ in range(3):
            grads = layer_gradients(batched, x, cotangent, training=True)
            expected = layer_gradients(stepwise, x, cotangent, training=True)
            self.assertAllClose(grads[0], expected[0], atol=1e-5)

    def test_mask_keeps_last_valid_output(self):
        batched, _, x = self._pair()
        mask = np.ones(x.shape[:2], bool)
        mask[:, 3:] = False
        self.assertAllClose(batched(x, mask=mask), batched(x[:, :3]), atol=1e-6)


RNN_ARGS = ("return_sequences", "go_backwards", "unroll", "return_state")


class ConvCBMLayerTest(testing.TestCase):
    @parameterized.parameters(
        (ConvCBM1D, (3, 2, 8, 3), {}, (3, 8, 5)),
        (ConvCBM2D, (3, 2, 6, 6, 3), {}, (3, 6, 6, 5)),
        (ConvCBM2D, (3, 2, 6, 6, 3), {"merge": "concat"}, (3, 6, 6, 10)),
        (
            ConvCBM2D,
            (3, 2, 6, 6, 3),
            {"return_sequences": True, "temporal_dropout": 0.5},
            (3, 2, 6, 6, 5),
        ),
        (ConvCBM3D, (3, 2, 4, 4, 4, 3), {"dropout": 0.2}, (3, 4, 4, 4, 5)),
        (
            ConvCBM1D,
            (3, 2, 8, 3),
            {"temporal_gate": "recurrent", "recurrent_dropout": 0.2},
            (3, 8, 5),
        ),
        (
            ConvCBM2D,
            (3, 2, 6, 6, 3),
            {"temporal_gate": "input", "return_sequences": True},
            (3, 2, 6, 6, 5),
        ),
    )
    def test_run_layer_test(self, layer_cls, input_shape, kwargs, output_shape):
        self.run_layer_test(
            layer_cls,
            init_kwargs={"filters": 5, "kernel_size": 3, "padding": "same"}
            | kwargs,
            input_shape=input_shape,
            call_kwargs={"training": True},
            expected_output_shape=output_shape,
            expected_num_trainable_weights=3,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=1,
            supports_masking=True,
        )

    def test_weight_layout(self):
        layer = ConvCBM2D(FILTERS, (3, 5), padding="same")
        layer.build((None, 3, 8, 8, CHANNELS))
        self.assertEqual(
            [tuple(w.shape) for w in layer.get_weights()],
            [
                (3, 5, CHANNELS, 3 * FILTERS),
                (3, 5, FILTERS, 2 * FILTERS),
                (3 * FILTERS,),
            ],
        )
        paper = ConvCBM2D(FILTERS, (3, 5), padding="same", **paper_cell())
        paper.build((None, 3, 8, 8, CHANNELS))
        self.assertEqual(
            [tuple(w.shape) for w in paper.get_weights()],
            [(3, 5, CHANNELS, 2 * FILTERS), (3, 5, FILTERS, FILTERS), (8,)],
        )
        self.assertEqual(
            [v.path.split("/")[-1] for v in layer.weights],
            ["kernel", "recurrent_kernel", "bias"],
        )

    def test_output_shapes(self):
        layer = ConvCBM2D(
            FILTERS, 3, strides=2, merge="concat", return_state=True
        )
        x = random_sequences((BATCH, STEPS, 9, 9, CHANNELS))
        output, state = layer(x)
        self.assertEqual(output.shape, (BATCH, 4, 4, 2 * FILTERS))
        self.assertEqual(state.shape, (BATCH, 4, 4, FILTERS))
        self.assertEqual(
            layer.compute_output_shape(x.shape),
            ((BATCH, 4, 4, 2 * FILTERS), (BATCH, 4, 4, FILTERS)),
        )

    def test_config_round_trip(self):
        layer = ConvCBM2D(
            FILTERS,
            3,
            strides=2,
            merge="add",
            temporal_dropout=0.25,
            activation="relu",
            kernel_initializer=keras.initializers.VarianceScaling(9.0),
            return_sequences=True,
        )
        config = layer.get_config()
        self.assertEqual(config["merge"], "add")
        self.assertEqual(config["temporal_dropout"], 0.25)
        self.assertEqual(config["strides"], (2, 2))
        clone = ConvCBM2D.from_config(config)
        self.assertEqual(clone.get_config(), config)

    def test_saved_keras_file_predicts_the_same(self):
        x = random_sequences((BATCH, STEPS, 8, 8, CHANNELS))
        model = keras.Sequential(
            [
                keras.Input(x.shape[1:]),
                ConvCBM2D(FILTERS, 3, padding="same", temporal_dropout=0.5),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(2),
            ]
        )
        path = self.get_temp_dir() + "/model.keras"
        model.save(path)
        restored = keras.saving.load_model(path)
        self.assertAllClose(restored.predict(x), model.predict(x), atol=1e-6)

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow", reason="XLA via tf.function"
    )
    def test_jit_compile_gives_the_same_gradients(self):
        import tensorflow as tf

        layer = ConvCBM2D(
            FILTERS,
            3,
            padding="same",
            temporal_dropout=1.0,
            return_sequences=True,
        )
        x = tf.constant(random_sequences((BATCH, STEPS, 6, 6, CHANNELS)))
        layer.build(x.shape)
        randomize_weights(layer)

        def grads(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.reduce_sum(layer(x, training=True) ** 2)
            return tape.gradient(y, [x] + layer.trainable_variables)

        for got, want in zip(
            tf.function(grads, jit_compile=True)(x), grads(x), strict=True
        ):
            # float32 sums in another order: gradients up to ~0.2 in size.
            self.assertAllClose(got, want, atol=1e-5, rtol=1e-4)


class StatefulTest(testing.TestCase):
    def test_two_halves_equal_one_call_and_reset(self):
        x = random_sequences((BATCH, 16, 6, 6, CHANNELS))
        stateful = ConvCBM2D(
            FILTERS, 3, padding="same", stateful=True, return_sequences=True
        )
        stateless = ConvCBM2D(FILTERS, 3, padding="same", return_sequences=True)
        stateful.build(x.shape)
        stateless.build(x.shape)
        randomize_weights(stateful)
        stateless.set_weights(stateful.get_weights())
        halves = np.concatenate(
            [stateful(x[:, :8]), stateful(x[:, 8:])], axis=1
        )
        self.assertAllClose(halves, stateless(x), atol=1e-5)
        self.assertGreater(np.abs(np.asarray(stateful.states[0])).max(), 0)

        stateful.reset_state()
        self.assertAllClose(
            stateful.states[0], np.zeros((BATCH, 6, 6, FILTERS))
        )
        self.assertAllClose(stateful(x[:, :8]), stateless(x)[:, :8], atol=1e-5)


class BadArgumentsTest(testing.TestCase):
    def test_constructor_arguments(self):
        cases = [
            (
                {"merge": "max"},
                r"`merge` must be one of .*Received: merge='max'",
            ),
            ({"filters": 0}, r"`filters` must be a positive integer\. .*=0"),
            (
                {"batch_norm": "both"},
                r"`batch_norm` must be one of .*Received: batch_norm='both'",
            ),
            (
                {"temporal_dropout": 1.5},
                r"`temporal_dropout` must be in \[0, 1\]\. .*=1\.5",
            ),
            ({"dropout": -0.1}, r"`dropout` must be in \[0, 1\]\. .*=-0\.1"),
            (
                {"strides": 2, "dilation_rate": 2},
                r"`strides > 1` is not compatible with `dilation_rate > 1`\. "
                r"Received: strides=\(2, 2\) and dilation_rate=\(2, 2\)",
            ),
        ]
        for kwargs, message in cases:
            arguments = {"filters": FILTERS, "kernel_size": 3} | kwargs
            with self.assertRaisesRegex(ValueError, message):
                ConvCBM2D(**arguments)

    def test_wrong_input_rank(self):
        layer = ConvCBM2D(FILTERS, 3)
        with self.assertRaisesRegex(
            ValueError,
            r"`sequences` of layer 'conv_cbm2d.*' must have rank 5, "
            r"\(batch, time, dim, dim, channels\)\. "
            r"Received: sequences\.shape=\(2, 4, 8, 3\)",
        ):
            layer(np.zeros((2, 4, 8, 3), "float32"))

    def test_channel_count_changes_after_build(self):
        layer = ConvCBM2D(FILTERS, 3)
        layer(np.zeros((2, 3, 8, 8, 3), "float32"))
        with self.assertRaisesRegex(
            ValueError,
            r"must have 3 channels, as when the layer was built\. "
            r"Received: sequences\.shape=\(2, 3, 8, 8, 4\) with 4",
        ):
            layer(np.zeros((2, 3, 8, 8, 4), "float32"))


class BatchNormTest(testing.TestCase):
    def _layer(self, x, batch_norm=True):
        layer = ConvCBM2D(
            FILTERS,
            3,
            padding="same",
            batch_norm=batch_norm,
            return_sequences=True,
            **paper_cell(),
        )
        layer.build(x.shape)
        weights = layer.get_weights()
        kernel, recurrent_kernel, bias = randomize_weights(layer)[:3]
        layer.set_weights([kernel, recurrent_kernel, bias] + weights[3:])
        return layer, (kernel, recurrent_kernel, bias)

    def test_normalises_both_input_projections_over_all_frames(self):
        x = random_sequences((BATCH, STEPS, SIZE, SIZE, CHANNELS))
        layer, weights = self._layer(x)
        expected, _ = numpy_reference.cbm_sequence(
            x, x, *weights, normalize=numpy_reference.batch_norm
        )
        self.assertAllClose(layer(x, training=True), expected, atol=1e-4)
        # At inference the moving statistics (still near 0 and 1) apply.
        self.assertNotAllClose(layer(x, training=False), expected, atol=1e-2)

    @parameterized.parameters("representation", "temporal")
    def test_normalises_one_input_projection(self, normalized):
        x = random_sequences((BATCH, STEPS, SIZE, SIZE, CHANNELS))
        layer, weights = self._layer(x, batch_norm=normalized)
        expected, _ = numpy_reference.cbm_sequence(
            x,
            x,
            *weights,
            normalize=numpy_reference.batch_norm,
            normalized=(normalized,),
        )
        self.assertAllClose(layer(x, training=True), expected, atol=1e-4)
        self.assertLen(layer.non_trainable_weights, 2)  # One moving mean, var.

    def test_masked_frames_stay_out_of_the_statistics(self):
        x = random_sequences((BATCH, STEPS, SIZE, SIZE, CHANNELS))
        layer, _ = self._layer(x)
        mask = np.ones(x.shape[:2], bool)
        mask[:, 2:] = False
        masked = layer(x, mask=mask, training=True)[:, :2]
        self.assertAllClose(masked, layer(x[:, :2], training=True), atol=1e-5)

    def test_weights_and_layer_test(self):
        self.run_layer_test(
            ConvCBM2D,
            init_kwargs={"filters": 4, "kernel_size": 3, "batch_norm": True},
            input_shape=(2, 3, 6, 6, 3),
            call_kwargs={"training": True},
            expected_output_shape=(2, 4, 4, 4),
            expected_num_trainable_weights=7,
            expected_num_non_trainable_weights=4,
            expected_num_seed_generators=1,
            supports_masking=True,
        )

    def test_bare_cell_in_keras_rnn_is_refused(self):
        cell = ConvCBMCell(rank=2, filters=4, kernel_size=3, batch_norm=True)
        with self.assertRaisesRegex(ValueError, "Received: batch_norm=True"):
            keras.layers.RNN(cell)(np.zeros((2, 3, 6, 6, 3), "float32"))
