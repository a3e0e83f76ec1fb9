import keras
import numpy as np
from absl.testing import parameterized
from keras.src import testing

from keras_cbm.layers import CBM
from keras_cbm.layers import CBMCell
from tests.layers import numpy_reference
from tests.layers.testing_utils import layer_gradients
from tests.layers.testing_utils import paper_cell
from tests.layers.testing_utils import random_sequences
from tests.layers.testing_utils import randomize_weights

SHAPE = (3, 5, 4)


class CBMTest(testing.TestCase):
    @parameterized.parameters("multiply", "add", "concat")
    def test_matches_numpy_reference(self, merge):
        x = random_sequences(SHAPE)
        layer = CBM(
            6,
            **paper_cell(merge=merge),
            return_sequences=True,
            return_state=True,
        )
        layer.build(SHAPE)
        weights = randomize_weights(layer)
        outputs, state = layer(x)
        expected, expected_state = numpy_reference.cbm_sequence(
            x, x, *weights, merge=merge
        )
        self.assertAllClose(outputs, expected, atol=1e-5, rtol=1e-5)
        self.assertAllClose(state, expected_state, atol=1e-5, rtol=1e-5)

    def test_weight_layout(self):
        layer = CBM(6)
        layer.build(SHAPE)
        self.assertEqual(
            [tuple(w.shape) for w in layer.get_weights()],
            [(4, 18), (6, 12), (18,)],
        )
        paper = CBM(6, **paper_cell())
        paper.build(SHAPE)
        self.assertEqual(
            [tuple(w.shape) for w in paper.get_weights()],
            [(4, 12), (6, 6), (12,)],
        )

    @parameterized.parameters(
        ({}, (3, 6)),
        ({"return_sequences": True, "merge": "concat"}, (3, 5, 12)),
        ({"temporal_dropout": 0.5, "recurrent_dropout": 0.2}, (3, 6)),
        ({"temporal_gate": "input", "temporal_dropout": 0.5}, (3, 6)),
        ({"temporal_gate": "recurrent", "recurrent_dropout": 0.2}, (3, 6)),
    )
    def test_run_layer_test(self, kwargs, output_shape):
        self.run_layer_test(
            CBM,
            init_kwargs={"units": 6} | kwargs,
            input_shape=SHAPE,
            call_kwargs={"training": True},
            expected_output_shape=output_shape,
            expected_num_trainable_weights=3,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=1,
            supports_masking=True,
        )

    def test_time_batched_path_equals_cell_in_keras_rnn(self):
        x = random_sequences(SHAPE)
        mask = np.ones(SHAPE[:2], bool)
        mask[1, 2:] = False
        batched = CBM(6, merge="concat", return_sequences=True)
        stepwise = keras.layers.RNN(
            CBMCell(6, merge="concat"), return_sequences=True, unroll=True
        )
        batched.build(SHAPE)
        stepwise.build(SHAPE)
        randomize_weights(batched)
        stepwise.set_weights(batched.get_weights())
        cotangent = random_sequences((3, 5, 12), seed=4)
        for kwargs in ({}, {"mask": mask}):
            got = layer_gradients(batched, x, cotangent, **kwargs)
            want = layer_gradients(stepwise, x, cotangent, **kwargs)
            self.assertAllClose(got[0], want[0], atol=1e-5)
            self.assertAllClose(
                batched(x, **kwargs), stepwise(x, **kwargs), atol=1e-6
            )

    def test_bad_arguments(self):
        with self.assertRaisesRegex(
            ValueError, r"`units` must be a positive integer\. .*units=-1"
        ):
            CBM(-1)
        with self.assertRaisesRegex(
            ValueError, r"`merge` must be one of .*Received: merge='sum'"
        ):
            CBM(4, merge="sum")
        with self.assertRaisesRegex(
            ValueError,
            r"`sequences` of layer 'cbm.*' must have rank 3, "
            r"\(batch, time, features\)\. Received: sequences\.shape=\(3, 5\)",
        ):
            CBM(4)(np.zeros((3, 5), "float32"))
