"""Metrics of predicted videos, per frame then averaged (TensorFlow)."""

from keras_cbm.metrics.frame_metrics import PSNR
from keras_cbm.metrics.frame_metrics import SSIM
from keras_cbm.metrics.frame_metrics import FrameSumMAE
from keras_cbm.metrics.frame_metrics import FrameSumMSE

__all__ = ["PSNR", "SSIM", "FrameSumMAE", "FrameSumMSE"]
