import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized
from keras.src import testing

from keras_cbm.losses import OverlapCoherence
from keras_cbm.losses import overlap_coherence

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="gradients are taken with tf.GradientTape",
)


def reference_terms(probabilities, alignment, mask, symmetric=False):
    """Per video: the list of squared-difference arrays, by explicit loops."""
    videos = []
    for p, align, valid in zip(probabilities, alignment, mask, strict=True):
        starts = [
            row[ok].min() if ok.any() else np.inf
            for row, ok in zip(align, valid, strict=True)
        ]
        terms = []
        for a in range(len(p)):
            for b in range(len(p)):
                if a == b or (starts[a], a) > (starts[b], b):
                    continue
                for i in np.flatnonzero(valid[a]):
                    for j in np.flatnonzero(valid[b]):
                        if align[a, i] == align[b, j]:
                            square = (p[b, j] - p[a, i]) ** 2
                            terms.append(square * (2 if symmetric else 1))
        videos.append(terms)
    return videos


def reference_loss(probabilities, alignment, mask, symmetric=False):
    terms = sum(reference_terms(probabilities, alignment, mask, symmetric), [])
    return float(np.mean(terms)) if terms else 0.0


def hand_made_batch():
    """Two videos of 3 clips of 5 steps. Video 0: clip 1 starts before clip
    0 and overlaps it partly (frames 4, 5); clip 2 (padded) overlaps both
    at frame 5 and a padded step would match frame 0 if unmasked. Video 1:
    two clips with equal starts (index order decides) and one clip
    overlapping nothing."""
    alignment = np.array(
        [
            [[4, 5, 6, 7, 8], [1, 2, 3, 4, 5], [5, -1, -1, -1, -1]],
            [[0, 1, 2, -1, -1], [0, 1, 2, 3, 4], [9, 10, 11, 12, 13]],
        ],
        "int32",
    )
    mask = alignment >= 0
    logits = np.random.default_rng(0).normal(size=alignment.shape + (4,))
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return probabilities.astype("float32"), alignment, mask


class OverlapCoherenceTest(testing.TestCase):
    @parameterized.parameters(False, True)
    def test_equals_numpy_reference(self, symmetric):
        p, alignment, mask = hand_made_batch()
        expected = reference_loss(p, alignment, mask, symmetric)
        self.assertAllClose(
            overlap_coherence(p, alignment, mask, symmetric=symmetric),
            expected,
            atol=1e-6,
        )
        # 2 + 1 + 1 terms in video 0, 3 in video 1.
        self.assertLen(sum(reference_terms(p, alignment, mask), []), 7)

    def test_padding_is_ignored_even_where_alignment_matches(self):
        p, alignment, mask = hand_made_batch()
        tampered = alignment.copy()
        tampered[0, 2, 1:] = 0
        self.assertAllClose(
            overlap_coherence(p, tampered, mask),
            overlap_coherence(p, alignment, mask),
        )

    def test_zero_without_overlap(self):
        p, _, _ = hand_made_batch()
        alignment = np.arange(30, dtype="int32").reshape(2, 3, 5)
        value = overlap_coherence(p, alignment, np.ones((2, 3, 5), bool))
        self.assertEqual(float(value), 0.0)

    def test_loss_object_averages_per_video_values(self):
        p, alignment, mask = hand_made_batch()
        masked = np.where(mask, alignment, -1)
        per_video = [
            float(np.mean(terms))
            for terms in reference_terms(p, alignment, mask)
        ]
        loss = OverlapCoherence(reduction=None)
        self.assertAllClose(loss(masked, p), per_video, atol=1e-6)
        self.assertAllClose(
            OverlapCoherence()(masked, p), np.mean(per_video), atol=1e-6
        )
        # One video: the same value as the function.
        self.assertAllClose(
            OverlapCoherence()(masked[:1], p[:1]),
            overlap_coherence(p[:1], alignment[:1], mask[:1]),
        )
        restored = OverlapCoherence.from_config(
            OverlapCoherence(symmetric=True).get_config()
        )
        self.assertTrue(restored.symmetric)

    @parameterized.parameters(False, True)
    def test_gradient_reaches_the_later_clip_only(self, symmetric):
        # Clip 1 starts at frame 1, before clip 0 (frame 4): clip 1 is the
        # earlier one of the pair.
        p, alignment, mask = hand_made_batch()
        p, alignment, mask = p[:1, :2], alignment[:1, :2], mask[:1, :2]
        variable = tf.Variable(p)
        with tf.GradientTape() as tape:
            loss = overlap_coherence(
                variable, alignment, mask, symmetric=symmetric
            )
        gradient = tape.gradient(loss, variable).numpy()
        overlap = np.isin(alignment, [4, 5])
        later, earlier = gradient[0, 0], gradient[0, 1]
        self.assertGreater(np.abs(later[overlap[0, 0]]).min(), 0.0)
        not_shared = later[~overlap[0, 0]]
        self.assertAllEqual(not_shared, np.zeros_like(not_shared))
        if symmetric:
            self.assertGreater(np.abs(earlier[overlap[0, 1]]).min(), 0.0)
        else:
            self.assertAllEqual(earlier, np.zeros_like(earlier))

    def test_of_two_clips_with_equal_starts_the_lower_index_is_earlier(self):
        # Video 1: clips 0 and 1 both start at frame 0.
        p, alignment, mask = hand_made_batch()
        p, alignment, mask = p[1:, :2], alignment[1:, :2], mask[1:, :2]
        variable = tf.Variable(p)
        with tf.GradientTape() as tape:
            loss = overlap_coherence(variable, alignment, mask)
        gradient = tape.gradient(loss, variable).numpy()[0]
        self.assertAllEqual(gradient[0], np.zeros_like(gradient[0]))
        self.assertGreater(np.abs(gradient[1, :3]).min(), 0.0)
