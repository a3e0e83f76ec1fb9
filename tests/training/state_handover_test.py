import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

from keras_cbm.training import CoherenceModel
from tests.training.tiny import FRAME_SHAPE
from tests.training.tiny import tiny_model

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="CoherenceModel's training step is TensorFlow's",
)

# Clips of a 20-frame video, not in start order: clip 0 starts inside
# clip 2, clip 1 inside clip 0, clip 3 (padded) inside clip 1 and clip 2,
# and clip 4 overlaps no earlier clip.
SPANS = [(5, 13), (10, 18), (0, 8), (12, 15), (0, 3)]
STEPS = 8


def clip_batch(video):
    alignment = np.full((1, len(SPANS), STEPS), -1, "int32")
    for k, (start, end) in enumerate(SPANS):
        alignment[0, k, : end - start] = np.arange(start, end)
    mask = alignment >= 0
    clips = video[np.maximum(alignment, 0)] * mask[..., None, None, None]
    return {"clips": clips, "mask": mask, "alignment": alignment}


class StateHandoverTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.video = rng.random((20,) + FRAME_SHAPE).astype("float32")
        self.model = tiny_model(batch_norm=True)
        self.inputs = clip_batch(self.video)

    def test_handed_clips_equal_one_run_over_the_video(self):
        whole = self.model(self.video[None], training=False).numpy()[0]
        trainer = CoherenceModel(self.model, state_handover=True)
        got = trainer.clip_predictions(self.inputs, training=False).numpy()
        cold = CoherenceModel(self.model).clip_predictions(
            self.inputs, training=False
        )
        for k, (start, end) in enumerate(SPANS):
            expected = whole[start:end]
            if k == 4:
                # Starts at frame 0 like the video: nothing to hand over.
                self.assertAllClose(got[0, k, : end - start], expected)
                continue
            self.assertAllClose(got[0, k, : end - start], expected, atol=1e-5)
            if start > 0:
                self.assertNotAllClose(
                    cold[0, k, : end - start], expected, atol=1e-3
                )

    def test_no_gradient_reaches_earlier_clips_through_the_state(self):
        trainer = CoherenceModel(self.model, state_handover=True)
        clips = tf.constant(self.inputs["clips"])
        inputs = dict(self.inputs, clips=clips)
        for k in range(len(SPANS)):
            with tf.GradientTape() as tape:
                tape.watch(clips)
                outputs = trainer.clip_predictions(inputs, training=True)
                total = tf.reduce_sum(outputs[0, k] ** 2)
            gradient = tape.gradient(total, clips).numpy()[0]
            own = np.abs(gradient[k]).sum()
            others = np.abs(np.delete(gradient, k, axis=0)).sum()
            self.assertGreater(own, 0.0)
            self.assertEqual(others, 0.0)
