import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

from keras_cbm import metrics

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the image metrics are TensorFlow's",
)


def video_pair(seed=0):
    """Two videos of 3 frames and a noisy, clipped prediction of them."""
    rng = np.random.default_rng(seed)
    y_true = rng.random((2, 3, 16, 16, 1)).astype("float32")
    noise = rng.normal(0.0, 0.1, y_true.shape).astype("float32")
    return y_true, np.clip(y_true + noise, 0.0, 1.0)


class ImageMetricsTest(testing.TestCase):
    def test_psnr_and_ssim_are_tf_image_averaged_over_frames(self):
        y_true, y_pred = video_pair()
        frames = [
            (y_true[b, t], y_pred[b, t]) for b in range(2) for t in range(3)
        ]
        expected_psnr = np.mean(
            [tf.image.psnr(t, p, max_val=1.0) for t, p in frames]
        )
        expected_ssim = np.mean(
            [tf.image.ssim(t, p, max_val=1.0) for t, p in frames]
        )
        psnr, ssim = metrics.PSNR(), metrics.SSIM()
        psnr.update_state(y_true, y_pred)
        ssim.update_state(y_true, y_pred)
        self.assertAllClose(psnr.result(), expected_psnr, rtol=1e-5)
        self.assertAllClose(ssim.result(), expected_ssim, rtol=1e-5)

    def test_psnr_of_a_constant_error_by_hand(self):
        # An error of 0.1 everywhere: MSE 0.01, PSNR 10 log10(1 / 0.01) dB.
        y_true = np.zeros((1, 2, 4, 4, 3), "float32")
        psnr = metrics.PSNR()
        psnr.update_state(y_true, y_true + 0.1)
        self.assertAllClose(psnr.result(), 20.0, rtol=1e-5)
        psnr = metrics.PSNR(max_val=255.0)
        psnr.update_state(y_true, y_true + 25.5)
        self.assertAllClose(psnr.result(), 20.0, rtol=1e-5)

    def test_every_frame_weighs_the_same_across_batches(self):
        y_true, y_pred = video_pair()
        psnr = metrics.PSNR()
        psnr.update_state(y_true[:1], y_pred[:1])
        psnr.update_state(y_true[1:, :2], y_pred[1:, :2])
        per_frame = tf.image.psnr(y_true, y_pred, max_val=1.0).numpy()
        expected = np.mean(np.concatenate([per_frame[0], per_frame[1, :2]]))
        self.assertAllClose(psnr.result(), expected, rtol=1e-5)

    def test_openstl_frame_sum_errors(self):
        y_true, y_pred = video_pair(seed=1)
        # OpenSTL: mean over videos and frames of the per-frame pixel sum.
        expected_mse = np.mean((y_pred - y_true) ** 2, axis=(0, 1)).sum()
        expected_mae = np.mean(np.abs(y_pred - y_true), axis=(0, 1)).sum()
        mse, mae = metrics.FrameSumMSE(), metrics.FrameSumMAE()
        mse.update_state(y_true, y_pred)
        mae.update_state(y_true, y_pred)
        self.assertAllClose(mse.result(), expected_mse, rtol=1e-5)
        self.assertAllClose(mae.result(), expected_mae, rtol=1e-5)

    def test_config_round_trip(self):
        for metric in [
            metrics.PSNR(max_val=255.0),
            metrics.SSIM(filter_size=7),
            metrics.FrameSumMSE(),
            metrics.FrameSumMAE(),
        ]:
            copy = keras.metrics.deserialize(keras.metrics.serialize(metric))
            self.assertEqual(type(copy), type(metric))
            self.assertEqual(copy.get_config(), metric.get_config())

    def test_per_frame_sample_weights(self):
        y_true, y_pred = video_pair()
        weights = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 2.0]], "float32")
        psnr = metrics.PSNR()
        psnr.update_state(y_true, y_pred, sample_weight=weights)
        per_frame = tf.image.psnr(y_true, y_pred, max_val=1.0).numpy()
        expected = (per_frame * weights).sum() / weights.sum()
        self.assertAllClose(psnr.result(), expected, rtol=1e-5)
