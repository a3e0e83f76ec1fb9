import keras
import numpy as np
from absl.testing import parameterized
from keras.src import testing

from keras_cbm.layers import FrameAggregation

# Two videos of four frames, three classes. Video 0's last frame is masked.
FRAMES = np.array(
    [
        [[1, 0, 0], [0, 2, 0], [0, 3, 1], [5, 0, 0]],
        [[0, 0, 1], [2, 0, 0], [0, 0, 4.5], [3, 0, 0]],
    ],
    "float32",
)
MASK = np.array([[True, True, True, False], [True, True, True, True]])
EXPECTED = {
    # Video 0 averages its 3 valid frames; video 1 all 4.
    "mean": [[1 / 3, 5 / 3, 1 / 3], [5 / 4, 0, 5.5 / 4]],
    # Video 0 votes 0, 1, 1; video 1 votes 2, 0, 2, 0, a tie that class 2
    # wins on its mean (5.5 / 4 > 5 / 4).
    "vote": [[0, 1, 0], [0, 0, 1]],
    "last": [[0, 3, 1], [3, 0, 0]],
}


class FrameAggregationTest(testing.TestCase):
    @parameterized.parameters("mean", "vote", "last")
    def test_hand_computed_values_with_mask(self, mode):
        outputs = FrameAggregation(mode)(FRAMES, mask=MASK)
        self.assertAllClose(outputs, EXPECTED[mode])

    @parameterized.parameters(
        ("mean", [[1.5, 5 / 4, 1 / 4], [5 / 4, 0, 5.5 / 4]]),
        # Video 0 votes 0, 1, 1, 0: a tie class 0 wins on its mean (1.5).
        ("vote", [[1, 0, 0], [0, 0, 1]]),
        ("last", [[5, 0, 0], [3, 0, 0]]),
    )
    def test_hand_computed_values_without_mask(self, mode, expected):
        self.assertAllClose(FrameAggregation(mode)(FRAMES), expected)

    @parameterized.parameters("mean", "vote", "last")
    def test_gaps_and_fully_masked_videos(self, mode):
        mask = np.array([[True, False, True, False], [False] * 4])
        outputs = FrameAggregation(mode)(FRAMES, mask=mask)
        expected = {
            "mean": [0.5, 1.5, 0.5],
            "vote": [0, 1, 0],  # Votes 0 and 1 tie; class 1's mean is higher.
            "last": [0, 3, 1],
        }[mode]
        self.assertAllClose(outputs, [expected, [0, 0, 0]])

    def test_takes_the_mask_of_a_masked_sequence(self):
        inputs = keras.Input((4, 3))
        masked = keras.layers.Masking(mask_value=5.0)(inputs)
        model = keras.Model(inputs, FrameAggregation("last")(masked))
        # Video 0's last frame is [5, 5, 5]: masked, so frame 2 is the last.
        frames = FRAMES.copy()
        frames[0, 3] = 5.0
        self.assertAllClose(model(frames), [[0, 3, 1], [3, 0, 0]])

    def test_layer_contract(self):
        self.run_layer_test(
            FrameAggregation,
            init_kwargs={"mode": "vote"},
            input_shape=(2, 5, 3),
            expected_output_shape=(2, 3),
            expected_num_trainable_weights=0,
            supports_masking=True,
            run_training_check=False,
        )

    def test_bad_mode_and_rank(self):
        with self.assertRaisesRegex(
            ValueError, r"`mode` must be one of .*Received: mode='median'"
        ):
            FrameAggregation("median")
        with self.assertRaisesRegex(ValueError, "rank 3.*Received"):
            FrameAggregation("mean")(np.zeros((2, 3, 4, 5)))
