import os

import keras
import numpy as np
import pytest
from absl.testing import parameterized
from keras.src import testing

from keras_cbm.layers import ConvCBM2D
from keras_cbm.layers import DeepCBM
from keras_cbm.layers import deep_cbm
from tests.layers.testing_utils import paper_cell
from tests.layers.testing_utils import random_sequences
from tests.layers.testing_utils import tensorflow_only

# The standalone (ResNet-18-like) layout: a 7x7 stride-2 stem, max-pooling,
# then four stages of two 2-layer blocks, the first of stages 2-4 strided.
RESNET18_LAYOUT = dict(
    depth=17,
    kernel_size=[7] + [3] * 16,
    strides=[2, 1, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1],
    jump_stride=2,
    pool_after=(1,),
)
# Eager JAX compiles every op for every new shape: tests of the layout, which
# no backend changes, run on TensorFlow only; the numerics run on both.
layout_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="layout logic; slow to compile op by op on eager JAX",
)
REFERENCE_INIT = deep_cbm.REFERENCE_INITIALIZER


def zero_weights(layer):
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])


@tensorflow_only
class DeepCBMLayoutTest(testing.TestCase):
    @parameterized.parameters("cbm", "convlstm")
    def test_backbone_layout_pools_7x7_to_1x1(self, cell):
        stack = DeepCBM(
            depth=15,
            filters=4,
            jump_stride=5,
            pool_after=(5, 10, 15),
            layer_type=cell,
            return_state=True,
        )
        outputs, states = stack(random_sequences((2, 3, 7, 7, 4)))
        self.assertEqual(tuple(outputs.shape), (2, 3, 1, 1, 4))
        # The state of layer i has layer i's resolution, before its pool.
        sizes = [tuple(s[0].shape[1:3]) for s in states]
        self.assertEqual(sizes, [(7, 7)] * 5 + [(4, 4)] * 5 + [(2, 2)] * 5)
        self.assertEqual(stack.shortcut_count, 3)
        layer_type = ConvCBM2D if cell == "cbm" else keras.layers.ConvLSTM2D
        self.assertTrue(
            all(type(r) is layer_type for r in stack.recurrent_layers)
        )
        self.assertLen(states[0], 1 if cell == "cbm" else 2)

    @parameterized.parameters("cbm", "convlstm")
    def test_conv_shortcut_count_is_depth_over_jump_stride(self, cell):
        stack = DeepCBM(
            depth=15, filters=4, jump_stride=5, shortcut="conv", layer_type=cell
        )
        stack.build((None, None, 7, 7, 4))
        convs = [c for c in stack.shortcut_convs if c is not None]
        self.assertLen(convs, 15 // 5)
        self.assertEqual(
            [c.name for c in convs],
            ["shortcut_5", "shortcut_10", "shortcut_15"],
        )

    def test_resnet18_layout_resolutions_at_224(self):
        stack = DeepCBM(
            filters=[64] * 5 + [128] * 4 + [256] * 4 + [512] * 4,
            return_state=True,
            **RESNET18_LAYOUT,
        )
        outputs, states = stack.compute_output_shape((None, 5, 224, 224, 3))
        sizes = [s[0][1] for s in states]
        self.assertEqual(
            sizes, [112] + [56] * 4 + [28] * 4 + [14] * 4 + [7] * 4
        )
        self.assertEqual(outputs, (None, 5, 7, 7, 512))

    @layout_only
    def test_resnet18_layout_runs_with_strided_shortcuts(self):
        stack = DeepCBM(
            filters=[2] * 5 + [3] * 4 + [4] * 4 + [5] * 4,
            activation="relu",
            return_state=True,
            **RESNET18_LAYOUT,
        )
        outputs, states = stack(random_sequences((1, 2, 32, 32, 3)))
        self.assertEqual(tuple(outputs.shape), (1, 2, 1, 1, 5))
        sizes = [tuple(s[0].shape[1:]) for s in states]
        self.assertEqual(
            sizes,
            [(16, 16, 2)]
            + [(8, 8, 2)] * 4
            + [(4, 4, 3)] * 4
            + [(2, 2, 4)] * 4
            + [(1, 1, 5)] * 4,
        )
        # Eight blocks; the three that change shape project with stride 2.
        self.assertEqual(stack.shortcut_count, 8)
        convs = {
            c.name: c.strides for c in stack.shortcut_convs if c is not None
        }
        self.assertEqual(
            convs,
            {f"shortcut_{i}": (2, 2) for i in (7, 11, 15)},
        )

    @layout_only
    def test_pool_inside_a_block_strides_its_shortcut(self):
        stack = DeepCBM(depth=3, filters=4, jump_stride=3, pool_after=(1, 2))
        stack.build((None, None, 9, 9, 4))
        self.assertEqual(stack.shortcut_convs[2].strides, (4, 4))
        outputs = stack(random_sequences((1, 2, 9, 9, 4)))
        self.assertEqual(tuple(outputs.shape), (1, 2, 3, 3, 4))

    def test_per_layer_arguments_reach_the_layers(self):
        stack = DeepCBM(
            depth=3,
            filters=[2, 3, 4],
            kernel_size=[5, 3, 1],
            temporal_dropout=[1.0, 0.5, 0.0],
            merge="concat",
            activation="relu",
            temporal_gate="recurrent",
            kernel_initializer=REFERENCE_INIT,
            seed=7,
        )
        stack.build((None, None, 6, 6, 1))
        layers = stack.recurrent_layers
        self.assertEqual([r.filters for r in layers], [2, 3, 4])
        self.assertEqual(
            [r.kernel_size for r in layers], [(5, 5), (3, 3), (1, 1)]
        )
        self.assertEqual([r.temporal_dropout for r in layers], [1.0, 0.5, 0.0])
        self.assertEqual([r.cell.seed for r in layers], [7, 8, 9])
        self.assertTrue(all(r.merge == "concat" for r in layers))
        self.assertIs(layers[0].activation, keras.activations.relu)
        self.assertTrue(all(r.temporal_gate == "recurrent" for r in layers))
        # "concat" doubles the channels each next layer sees; the gate
        # adds a third block of outputs, W_a, and U_a a second of U_T's.
        self.assertEqual(layers[2].cell.kernel.shape, (1, 1, 6, 12))
        self.assertEqual(layers[2].cell.recurrent_kernel.shape, (1, 1, 4, 8))
        self.assertEqual(
            stack.compute_output_shape((None, None, 6, 6, 1)),
            (None, None, 6, 6, 8),
        )

    def test_reference_initializer_gives_xavier_normal_gain_3(self):
        stack = DeepCBM(
            depth=1,
            filters=64,
            kernel_initializer=REFERENCE_INIT,
            recurrent_initializer=REFERENCE_INIT,
            **paper_cell(),
        )
        stack.build((None, None, 4, 4, 64))
        cell = stack.recurrent_layers[0].cell
        # Fans of the (3, 3, 64, 128) kernel: 576 in, 1152 out.
        expected_std = 3.0 * np.sqrt(2.0 / (576 + 1152))
        kernel = keras.ops.convert_to_numpy(cell.kernel)
        self.assertAllClose(kernel.std(), expected_std, rtol=0.02)
        self.assertAllClose(
            keras.ops.convert_to_numpy(cell.recurrent_kernel).std(),
            3.0 * np.sqrt(2.0 / (576 + 576)),
            rtol=0.03,
        )
        self.assertAllClose(cell.bias, np.zeros(128))

    def test_equal_shaped_layers_start_different(self):
        stack = DeepCBM(depth=2, filters=4, kernel_initializer=REFERENCE_INIT)
        stack.build((None, None, 4, 4, 4))
        first, second = (r.cell for r in stack.recurrent_layers)
        self.assertNotAllClose(first.kernel, second.kernel)
        self.assertNotAllClose(first.recurrent_kernel, second.recurrent_kernel)


class DeepCBMDefaultsTest(testing.TestCase):
    def test_auto_gives_each_cell_its_own_default(self):
        cbm = DeepCBM(depth=2, filters=4)
        convlstm = DeepCBM(depth=2, filters=4, layer_type="convlstm")
        self.assertEqual(cbm.temporal_gate, "recurrent")
        self.assertEqual(cbm.merge, "add")
        self.assertIsNone(convlstm.temporal_gate)
        for stack, activation in ((cbm, "tanh"), (convlstm, "sigmoid")):
            config = stack.get_config()
            self.assertEqual(config["recurrent_activation"], activation)
            for layer in stack.recurrent_layers:
                self.assertEqual(
                    keras.activations.serialize(layer.recurrent_activation),
                    activation,
                )
            self.assertEqual(DeepCBM.from_config(config).get_config(), config)
        for layer in cbm.recurrent_layers:
            self.assertEqual(layer.temporal_gate, "recurrent")

    def test_papers_cell_reaches_every_layer(self):
        stack = DeepCBM(depth=3, filters=4, **paper_cell())
        for layer in stack.recurrent_layers:
            self.assertIsNone(layer.temporal_gate)
            self.assertEqual(layer.merge, "multiply")
            self.assertEqual(
                keras.activations.serialize(layer.recurrent_activation),
                "sigmoid",
            )


class DeepCBMResidualTest(testing.TestCase):
    @parameterized.parameters("cbm", "convlstm")
    def test_identity_shortcut_carries_the_signal_past_a_zeroed_layer(
        self, cell
    ):
        x = random_sequences((2, 3, 6, 6, 4))
        stack = DeepCBM(depth=5, filters=4, jump_stride=5, layer_type=cell)
        stack.build(x.shape)
        # A zeroed layer outputs zeros (tanh(0) * c, or o * tanh(0)); so
        # does every layer after it, whose input and biases are zero.
        zero_weights(stack.recurrent_layers[2])
        self.assertAllClose(stack(x), x, atol=1e-6)
        plain = DeepCBM(depth=5, filters=4, layer_type=cell)
        plain.build(x.shape)
        zero_weights(plain.recurrent_layers[2])
        self.assertAllClose(plain(x), np.zeros_like(x), atol=1e-6)

    def test_conv_shortcut_carries_the_projected_signal(self):
        x = random_sequences((2, 3, 6, 6, 3))
        stack = DeepCBM(depth=2, filters=4, strides=[2, 1], jump_stride=2)
        stack.build(x.shape)
        zero_weights(stack.recurrent_layers[1])
        kernel, bias = stack.shortcut_convs[1].get_weights()
        expected = x[:, :, ::2, ::2] @ kernel[0, 0] + bias
        self.assertAllClose(stack(x), expected, atol=1e-5, rtol=1e-5)

    def test_shortcut_adds_to_the_layer_output(self):
        x = random_sequences((2, 3, 6, 6, 4))
        stack = DeepCBM(depth=1, filters=4, jump_stride=1)
        layer = stack.recurrent_layers[0]
        self.assertAllClose(stack(x), layer(x)[0] + x, atol=1e-6)


class DeepCBMStateTest(testing.TestCase):
    @parameterized.parameters("cbm", "convlstm")
    def test_two_halves_with_handed_over_states_equal_one_call(self, cell):
        x = random_sequences((2, 16, 8, 8, 3))
        stack = DeepCBM(
            depth=4,
            filters=4,
            jump_stride=2,
            pool_after=(2,),
            batch_norm=True,
            layer_type=cell,
            return_state=True,
        )
        whole, whole_states = stack(x)
        first, states = stack(x[:, :8])
        second, final_states = stack(x[:, 8:], initial_state=states)
        self.assertEqual(tuple(whole.shape), (2, 16, 4, 4, 4))
        self.assertAllClose(
            np.concatenate([first, second], axis=1), whole, atol=1e-5
        )
        self.assertEqual(len(final_states), 4)
        for got, expected in zip(final_states, whole_states, strict=True):
            self.assertEqual(len(got), len(expected))
            for g, e in zip(got, expected, strict=True):
                self.assertAllClose(g, e, atol=1e-5)

    @parameterized.parameters("cbm", "convlstm")
    def test_call_return_state_and_masked_tail_give_an_inner_state(self, cell):
        # A stack built without `return_state` returns states when the call
        # asks; masking the frames after step 5 gives the state at step 5.
        if cell == "convlstm" and keras.backend.backend() == "jax":
            self.skipTest("Keras 3.15's masked ConvLSTM2D fails on JAX")
        x = random_sequences((2, 9, 6, 6, 3))
        stack = DeepCBM(depth=3, filters=4, jump_stride=2, layer_type=cell)
        self.assertEqual(tuple(stack(x).shape), (2, 9, 6, 6, 4))
        cut = np.arange(9)[None, :].repeat(2, axis=0) < 6
        _, states = stack(x, mask=cut, return_state=True)
        _, prefix_states = stack(x[:, :6], return_state=True)
        for got, expected in zip(states, prefix_states, strict=True):
            for g, e in zip(got, expected, strict=True):
                self.assertAllClose(g, e, atol=1e-5)
        symbolic = stack(keras.Input((None, 6, 6, 3)), return_state=True)
        self.assertEqual(tuple(symbolic[0].shape), (None, None, 6, 6, 4))
        self.assertEqual(
            [len(layer) for layer in symbolic[1]],
            [len(layer) for layer in states],
        )

    def test_initial_state_changes_the_outputs(self):
        x = random_sequences((1, 2, 4, 4, 2))
        stack = DeepCBM(depth=2, filters=2, return_state=True)
        _, states = stack(x)
        ones = [[keras.ops.ones_like(s) for s in layer] for layer in states]
        self.assertNotAllClose(stack(x)[0], stack(x, initial_state=ones)[0])

    def test_mask_reaches_every_layer(self):
        x = random_sequences((2, 4, 6, 6, 3))
        mask = np.array([[True, True, True, False], [True] * 4])
        stack = DeepCBM(
            depth=3,
            filters=4,
            jump_stride=1,
            pool_after=(2,),
            return_state=True,
        )
        outputs, states = stack(x, mask=mask)
        short_outputs, short_states = stack(x[:1, :3])
        self.assertAllClose(outputs[:1, :3], short_outputs, atol=1e-6)
        for layer_states, short in zip(states, short_states, strict=True):
            self.assertAllClose(layer_states[0][:1], short[0], atol=1e-6)
        full_outputs, _ = stack(x[1:])
        self.assertAllClose(outputs[1:], full_outputs, atol=1e-6)

    def test_masked_frames_stay_out_of_batch_statistics(self):
        x = random_sequences((2, 4, 6, 6, 3))
        x[:, 3] = 100.0
        mask = np.array([[True, True, True, False]] * 2)
        masked = DeepCBM(depth=2, filters=4, batch_norm=True)
        short = DeepCBM.from_config(masked.get_config())
        unmasked = DeepCBM.from_config(masked.get_config())
        for stack in (masked, short, unmasked):
            stack.build(x.shape)
            stack.set_weights(masked.get_weights())
        masked(x, mask=mask, training=True)
        short(x[:, :3], training=True)
        unmasked(x, training=True)
        means = [
            [w for w in stack.weights if "moving_mean" in w.path]
            for stack in (masked, short, unmasked)
        ]
        self.assertLen(means[0], 4)  # R's and T's, in both layers.
        for got, want in zip(means[0], means[1], strict=True):
            self.assertAllClose(got, want, atol=1e-5)
        # Counted in, the bright frame would move the first layer's means.
        for got, bright in zip(means[0][:2], means[2][:2], strict=True):
            self.assertNotAllClose(got, bright, atol=1e-2)


class DeepCBMKerasTest(testing.TestCase):
    def test_layer_contract(self):
        self.run_layer_test(
            DeepCBM,
            init_kwargs={
                "depth": 2,
                "filters": [3, 4],
                "jump_stride": 2,
                "pool_after": (1,),
                "batch_norm": True,
                "temporal_dropout": 0.5,
                "seed": 1,
            },
            input_shape=(2, 3, 8, 8, 2),
            expected_output_shape=(2, 3, 4, 4, 4),
            # Two CBM layers with two batch norms each, the shortcut conv
            # and its batch norm.
            expected_num_trainable_weights=2 * (3 + 2 * 2) + 1 + 2,
            expected_num_non_trainable_weights=2 * 2 * 2 + 2,
            supports_masking=True,
        )

    @parameterized.parameters(
        {"layer_type": "convlstm", "kernel_initializer": REFERENCE_INIT},
        {"temporal_gate": "input", "merge": "add"},
        {
            "temporal_gate": "recurrent",
            "merge": "add",
            "recurrent_activation": "tanh",
        },
    )
    @tensorflow_only
    def test_config_round_trip_predicts_the_same(self, **kwargs):
        x = random_sequences((2, 3, 6, 6, 2))
        stack = DeepCBM(
            depth=2,
            filters=3,
            jump_stride=2,
            shortcut="conv",
            pool_after=(1,),
            **kwargs,
        )
        stack.build(x.shape)
        copy = DeepCBM.from_config(stack.get_config())
        copy.build(x.shape)
        copy.set_weights(stack.get_weights())
        self.assertEqual(copy.get_config(), stack.get_config())
        self.assertAllClose(copy(x), stack(x))

    def test_the_renamed_cell_argument_warns_and_works(self):
        with self.assertWarnsRegex(
            UserWarning, "`cell` is deprecated. Use `layer_type` instead"
        ):
            stack = DeepCBM(depth=2, filters=3, cell="convlstm")
        self.assertEqual(stack.layer_type, "convlstm")
        self.assertNotIn("cell", stack.get_config())

    def test_config_saved_with_the_old_cell_argument_loads(self):
        config = DeepCBM(depth=2, filters=3, layer_type="convlstm").get_config()
        config["cell"] = config.pop("layer_type")
        with self.assertWarnsRegex(UserWarning, "Use `layer_type` instead"):
            copy = DeepCBM.from_config(config)
        self.assertEqual(copy.layer_type, "convlstm")
        self.assertNotIn("cell", copy.get_config())
        copy.build((None, None, 6, 6, 2))
        self.assertTrue(
            all(
                isinstance(r, keras.layers.ConvLSTM2D)
                for r in copy.recurrent_layers
            )
        )

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="tf.function tracing and SavedModel export are TensorFlow's",
    )
    def test_dynamic_batch_and_time_traced_and_exported(self):
        import tensorflow as tf

        inputs = keras.Input((None, 8, 8, 3))
        outputs = DeepCBM(
            depth=2,
            filters=4,
            jump_stride=2,
            pool_after=(2,),
            batch_norm=True,
        )(inputs)
        model = keras.Model(inputs, outputs)
        traced = tf.function(
            model,
            input_signature=[tf.TensorSpec((None, None, 8, 8, 3))],
        )
        path = os.path.join(self.get_temp_dir(), "deep_cbm")
        model.export(path)
        served = tf.saved_model.load(path)
        for shape in [(2, 5, 8, 8, 3), (3, 2, 8, 8, 3)]:
            x = random_sequences(shape)
            expected = model(x)
            self.assertEqual(tuple(expected.shape), shape[:2] + (4, 4, 4))
            self.assertAllClose(traced(x), expected, atol=1e-5)
            self.assertAllClose(served.serve(x), expected, atol=1e-5)


class DeepCBMValidationTest(testing.TestCase):
    @parameterized.parameters(
        ({"pool_after": (0, 5)}, "pool_after"),
        ({"pool_after": (16,)}, "pool_after"),
        ({"filters": [4] * 14}, "filters"),
        ({"temporal_dropout": [0.5] * 3}, "temporal_dropout"),
        ({"temporal_dropout": 1.5}, "temporal_dropout"),
        ({"strides": 0}, "strides"),
        ({"jump_stride": 0}, "jump_stride"),
        ({"layer_type": "lstm"}, "layer_type"),
        ({"shortcut": "identity"}, "shortcut"),
        ({"depth": 0}, "depth"),
        ({"temporal_gate": 1}, "temporal_gate"),
        ({"temporal_gate": True}, "temporal_gate"),
        ({"temporal_gate": False}, "temporal_gate"),
        ({"temporal_gate": "state"}, "temporal_gate"),
        ({"temporal_gate": "input", "layer_type": "convlstm"}, "temporal_gate"),
        (
            {"temporal_gate": "recurrent", "layer_type": "convlstm"},
            "temporal_gate",
        ),
    )
    def test_bad_arguments_name_argument_expected_and_received(
        self, override, name
    ):
        kwargs = {"depth": 15, "filters": 4, **override}
        with self.assertRaisesRegex(ValueError, f"`{name}` must .*Received"):
            DeepCBM(**kwargs)

    def test_bad_inputs(self):
        stack = DeepCBM(depth=2, filters=2)
        with self.assertRaisesRegex(ValueError, "rank 5.*Received"):
            stack(np.zeros((2, 3, 4, 4)))
        x = np.zeros((1, 2, 4, 4, 1), "float32")
        with self.assertRaisesRegex(ValueError, "`initial_state`.*Received"):
            stack(x, initial_state=[[np.zeros((1, 4, 4, 2), "float32")]])
