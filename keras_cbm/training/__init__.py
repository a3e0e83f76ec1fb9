"""Training per-frame video models on TensorFlow and JAX: on overlapping
clips with the overlap coherence loss (`CoherenceModel`), on whole videos
in chunks with truncated back-propagation through time (`TruncatedBPTT`), on
streams of chunks of videos too long to hold (`StreamingBPTT`).

`MultiWorkerFit` and `MultiWorkerCoherenceModel` are TensorFlow's
(`tf.distribute`), imported only when used.
"""

from keras_cbm.frame_targets import FrameTargets
from keras_cbm.frame_targets import frame_weights
from keras_cbm.training.coherence_model import CoherenceModel
from keras_cbm.training.streaming_bptt import StreamingBPTT
from keras_cbm.training.truncated_bptt import TruncatedBPTT
from keras_cbm.training.video_trainer import VideoTrainer

__all__ = [
    "CoherenceModel",
    "FrameTargets",
    "MultiWorkerCoherenceModel",
    "MultiWorkerFit",
    "StreamingBPTT",
    "TruncatedBPTT",
    "VideoTrainer",
    "frame_weights",
]


def __getattr__(name):
    # Multi-worker `fit` (workaround for keras-team/keras issue 20585) needs
    # TensorFlow; the rest of the package does not.
    if name in ("MultiWorkerCoherenceModel", "MultiWorkerFit"):
        from keras_cbm.training import multi_worker

        return getattr(multi_worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
