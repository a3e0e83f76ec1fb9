"""Metrics of predicted videos, per frame then averaged (TensorFlow), and
the mask IoU of predicted polygons (any backend)."""

from keras_cbm.metrics.frame_metrics import PSNR
from keras_cbm.metrics.frame_metrics import SSIM
from keras_cbm.metrics.frame_metrics import FrameSumMAE
from keras_cbm.metrics.frame_metrics import FrameSumMSE
from keras_cbm.metrics.polygon_iou import PolygonMaskIoU
from keras_cbm.metrics.polygon_iou import bounding_box_masks
from keras_cbm.metrics.polygon_iou import mask_iou
from keras_cbm.metrics.polygon_iou import rasterize_polygons

__all__ = [
    "PSNR",
    "SSIM",
    "FrameSumMAE",
    "FrameSumMSE",
    "PolygonMaskIoU",
    "bounding_box_masks",
    "mask_iou",
    "rasterize_polygons",
]
