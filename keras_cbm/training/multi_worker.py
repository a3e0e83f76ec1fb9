"""`model.fit` under `tf.distribute.MultiWorkerMirroredStrategy`: the
workaround for Keras 3 upstream issue 20585,
https://github.com/keras-team/keras/issues/20585.

Two defects of `keras/src/backend/tensorflow/trainer.py` (Keras 3.15) stop a
multi-worker `fit` before its first step:

1. `_maybe_symbolic_build` builds the model from a first batch that it
   averages over the replicas with `strategy.reduce("MEAN", ...)`, eagerly,
   which fails on multi-worker values ("Attempt to convert a value
   (PerReplica...) to a Tensor") and on bool and string tensors anywhere.
   Building needs only shapes: one replica's batch serves.
2. `reduce_per_replica` reduces every log with `strategy.reduce("MEAN", v,
   axis=0)` on multi-worker, which fails on the scalar logs of every
   `train_step` ("Invalid reduction dimension 0 for input with 0
   dimensions"). A log of shape `(1,)` reduces to the same scalar mean.

Delete this module (and use the plain model classes) once Keras fixes the
issue.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_cbm.keras_internals import keras_changed
from keras_cbm.training.coherence_model import CoherenceModel


def _in_multi_worker_mode(strategy):
    # The test Keras' `reduce_per_replica` uses to pick its multi-worker path.
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def _one_replica(value, strategy):
    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


class MultiWorkerFit:
    """Mixin that lets a `keras.Model` subclass `fit` and `evaluate` under a
    multi-worker `MultiWorkerMirroredStrategy` in Keras 3.15.

    Put it first among the bases. It changes nothing outside multi-worker
    runs except that the model builds from one replica's first batch (not
    from the mean over replicas), which also lets bool and string inputs
    through a single-machine `MirroredStrategy`.

    Example:

    >>> class MultiWorkerSequential(MultiWorkerFit, keras.Sequential):
    ...     pass
    >>> model = MultiWorkerSequential([keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> history = model.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0)
    >>> list(history.history)
    ['loss']
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Without the hook, Keras would never call the override below
        # (the mixin serves the TensorFlow trainer alone).
        if keras.backend.backend() == "tensorflow" and not callable(
            getattr(super(MultiWorkerFit, cls), "_maybe_symbolic_build", None)
        ):
            raise keras_changed(
                "the TensorFlow trainer's `_maybe_symbolic_build` hook"
            )

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is not None and iterator is not None:
            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(
                    lambda v: _one_replica(v, strategy), next(batches)
                )
                break
            iterator = None
        return super()._maybe_symbolic_build(
            iterator=iterator, data_batch=data_batch
        )

    def _rank_one(self, logs):
        if not _in_multi_worker_mode(tf.distribute.get_strategy()):
            return logs
        return {name: ops.reshape(value, (1,)) for name, value in logs.items()}

    def train_step(self, data):
        return self._rank_one(super().train_step(data))

    def test_step(self, data):
        return self._rank_one(super().test_step(data))


@keras.saving.register_keras_serializable(package="keras_cbm")
class MultiWorkerCoherenceModel(MultiWorkerFit, CoherenceModel):
    """`CoherenceModel` that trains under a multi-worker
    `MultiWorkerMirroredStrategy` (see `MultiWorkerFit`); same arguments.

    Example:

    >>> from keras_cbm import models
    >>> net = models.standalone_classifier(
    ...     2, frame_shape=(16, 16, 3), stage_filters=(4,),
    ...     blocks_per_stage=1)
    >>> MultiWorkerCoherenceModel(net, coherence_weight=0.5).coherence_weight
    0.5
    """
