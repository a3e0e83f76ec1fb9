"""keras_cbm: deep recurrent models of video for Keras 3.

`keras_cbm.layers` (the Context Bridge Module layers), `keras_cbm.models`
(the model builders), `keras_cbm.losses` (the overlap coherence loss) and
`keras_cbm.training` (`CoherenceModel`) need only Keras, on any backend, and
import no TensorFlow of their own (Keras' TensorFlow backend imports it);
`training.MultiWorkerFit` / `MultiWorkerCoherenceModel` and the subpackages
`data`, `datasets`, `metrics`, `serving` and `tuning` are TensorFlow's.
Every subpackage but `layers`, `models`, `losses` and `training` loads
when first used (`keras_cbm.data`); those four load with `keras_cbm` where
Keras is installed (so that saved models and trainers load after `import
keras_cbm`), and `keras_cbm.serving`'s runtimes (`LiteRTStep`, `OnnxStep`,
`StreamServer`) need neither Keras nor TensorFlow, for devices. Reading
and writing video files needs PyAV (`pip install keras_cbm[video]`), the
`moving_digits` dataset scikit-learn (`keras_cbm[digits]`).
"""

import importlib

try:
    import keras  # noqa: F401
except ImportError:
    # A device running an exported step: the serving runtimes need no Keras.
    pass
else:
    # The layers, models, losses and trainers register their classes for
    # `keras.saving` on import, so that a saved model (or a saved trainer,
    # as the main job writes) loads after `import keras_cbm`.
    from keras_cbm import layers as layers
    from keras_cbm import losses as losses
    from keras_cbm import models as models
    from keras_cbm import training as training

LAZY_SUBPACKAGES = (
    "data",
    "datasets",
    "layers",
    "losses",
    "metrics",
    "models",
    "serving",
    "training",
    "tuning",
)


def __getattr__(name):
    # The other subpackages load when first used: most are TensorFlow's
    # (`layers` and `models` only here where Keras is missing: the error).
    if name in LAZY_SUBPACKAGES:
        return importlib.import_module(f"keras_cbm.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"
