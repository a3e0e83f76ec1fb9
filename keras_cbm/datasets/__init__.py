"""Video datasets generated locally, as TFDS builders.

Importing this subpackage registers the builders with TensorFlow Datasets,
so that `tfds.load("motion_order")` and `tfds.load("moving_digits")` build
them (nothing is downloaded):

* `motion_order`: action recognition whose label is the order of two
  motions, unreadable from any single frame; `recognition` (default) and
  `anticipation` configs.
* `moving_digits`: Moving-MNIST-like future-frame prediction with
  scikit-learn's handwritten digits; configs set the observed and predicted
  frames.
* `polygons`: object crops whose outline is a vertex sequence (the
  Polygon-RNN task); `easy` (default) and `cluttered` configs.
  `polygon_sequences` makes `keras_cbm.models.polygon_rnn`'s inputs.

`export_videos` writes such a dataset as video files, one folder per class,
for `keras_cbm.data.video_dataset_from_directory` (with PyAV, which
`pip install keras_cbm[video]` installs, loaded when first used).

This subpackage imports TensorFlow; `keras_cbm` does not import it.
"""

from keras_cbm.datasets.motion_order import CLASS_NAMES as MOTION_ORDER_CLASSES
from keras_cbm.datasets.motion_order import MotionOrder
from keras_cbm.datasets.motion_order import MotionOrderConfig
from keras_cbm.datasets.moving_digits import MovingDigits
from keras_cbm.datasets.moving_digits import MovingDigitsConfig
from keras_cbm.datasets.pipelines import future_frame_pairs
from keras_cbm.datasets.polygons import Polygons
from keras_cbm.datasets.polygons import PolygonsConfig
from keras_cbm.datasets.polygons import polygon_sequences

__all__ = [
    "MOTION_ORDER_CLASSES",
    "MotionOrder",
    "MotionOrderConfig",
    "MovingDigits",
    "MovingDigitsConfig",
    "Polygons",
    "PolygonsConfig",
    "export_videos",
    "future_frame_pairs",
    "polygon_sequences",
]


def __getattr__(name):
    # Writing video files needs PyAV (the `video` extra); the builders do
    # not.
    if name == "export_videos":
        from keras_cbm.datasets import video_export

        return video_export.export_videos
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
