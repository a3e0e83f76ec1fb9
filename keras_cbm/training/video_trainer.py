"""The base of keras_cbm's trainers: a `keras.Model` that trains a wrapped
per-frame video model through Keras' own training step, and what every
trainer shares (the wrapped model, its config, per-frame labels and
weights, the video prediction, `from_logits`)."""

import inspect

import keras
from keras import ops

from keras_cbm.layers.base_cbm import check_choice
from keras_cbm.layers.frame_aggregation import VIDEO_AGGREGATIONS
from keras_cbm.layers.frame_aggregation import video_probabilities
from keras_cbm.serving.frame_step import input_dtype


def check_per_frame(outputs_shape, where="per clip"):
    """Raises `ValueError` unless a model's outputs `(batch, time, ...)`
    are per-frame predictions `(batch, time, classes)`."""
    if len(outputs_shape) != 3:
        raise ValueError(
            "`model` must output per-frame predictions (batch, time, "
            "classes). Received: outputs of shape "
            f"{('batch',) + tuple(outputs_shape[1:])} {where}"
        )


def check_video_labels(labels, classes):
    """Raises `ValueError` unless `labels` hold one label per video:
    `(batch,)` or `(batch, 1)` class indices, or `(batch, classes)`."""
    trailing = tuple(labels.shape[1:])
    if trailing not in ((), (1,), (classes,)):
        raise ValueError(
            "`y` must hold one label per video, (batch,) or (batch, 1) "
            f"class indices or (batch, {classes}) class scores (the "
            "trainer repeats it for every frame). Received: labels of shape "
            f"{('batch',) + trailing}"
        )


def per_frame(values, frames):
    """Per-video `values` `(batch, ...)` repeated for every frame of
    `frames` `(batch, *frame_axes)`: `(batch, *frame_axes, ...)`."""
    values = ops.convert_to_tensor(values)
    trailing = tuple(values.shape[1:])
    axes = len(frames.shape) - 1
    values = ops.reshape(values, (-1,) + (1,) * axes + trailing)
    return ops.broadcast_to(values, tuple(ops.shape(frames)) + trailing)


def _loss_from_logits(loss):
    """The `from_logits` a compiled loss applies (`None`: it has none)."""
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        # The config, not an attribute: the 3.16 nightlies keep none.
        return loss.get_config().get("from_logits")
    if callable(loss):
        parameter = inspect.signature(loss).parameters.get("from_logits")
        if parameter is not None:
            return parameter.default
    return None


class VideoTrainer(keras.Model):
    """The base of keras_cbm's trainers: wraps a per-frame video model.

    A trainer is a `keras.Model` whose training scheme lives in Keras'
    hooks (`call`, `compute_loss`, `compute_metrics`), so that Keras' own
    `train_step` runs it, on TensorFlow and on JAX (the backends the
    suite tests). The base holds what the trainers share:

    - the wrapped model (`model`), which `keras_cbm.serving.export` and
      `export_step` export in place of any trainer;
    - the config: Keras' own (name, trainable, dtype policy) and the
      wrapped model, rebuilt by `from_config`;
    - the frame loss: the compiled loss of every frame against its video's
      label (`per_frame`), each frame weighted by `frame_weights`, each
      video's weights scaled to mean 1 over its frames (every video counts
      equally), times the video's sample weight;
    - the video prediction (`video_predictions`): `video_probabilities`
      of the frames the weights select, with `aggregation`, which the
      compiled metrics see;
    - `from_logits`, which must agree with the compiled loss's (checked
      in `compile`).

    Subclasses add their scheme: `call` (the per-frame outputs) and, where
    it differs, `frame_weights`.

    Args:
        model: A Keras model of frames `(batch, time, *frame_shape)` to
            per-frame predictions `(batch, time, classes)`.
        aggregation: How a video's frames make its prediction, one of
            `"mean"` (the softmax of the mean of the frames' logits),
            `"mean_probabilities"`, `"vote"` or `"last"` (see
            `keras_cbm.layers.video_probabilities`).
        from_logits: Whether `model` outputs logits (a softmax gives the
            probabilities) or probabilities.
        **kwargs: Base model arguments (`name`, `dtype`, ...).

    Example:

    >>> from keras_cbm.training import TruncatedBPTT
    >>> net = keras.Sequential([
    ...     keras.Input((None, 3)),
    ...     keras.layers.LSTM(4, return_sequences=True),
    ...     keras.layers.Dense(2)])
    >>> trainer = TruncatedBPTT(net, chunk_length=2, dtype="mixed_float16")
    >>> isinstance(trainer, VideoTrainer), trainer.model is net
    (True, True)
    >>> config = trainer.get_config()
    >>> TruncatedBPTT.from_config(config).dtype_policy.name
    'mixed_float16'
    """

    # Whether each row of a batch is a whole video, whose frame weights
    # are scaled to mean 1 (a stream's rows are chunks of videos).
    rows_are_videos = True

    @property
    def _input_dtype(self):
        # The one rule of every trainer and serving signature.
        return input_dtype(self.model)

    def __init__(self, model, aggregation="mean", from_logits=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise ValueError(
                "`model` must be a Keras model of frames (batch, time, ...) "
                "to per-frame predictions (batch, time, classes). Received: "
                f"model={model!r}"
            )
        for output in getattr(model, "outputs", None) or []:
            check_per_frame(output.shape, f"for model '{model.name}'")
        self.model = model
        self.aggregation = check_choice(
            "aggregation", aggregation, VIDEO_AGGREGATIONS
        )
        self.from_logits = from_logits

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        for loss in keras.tree.flatten(self.loss):
            applied = _loss_from_logits(loss)
            if applied is not None and applied != self.from_logits:
                raise ValueError(
                    f"`from_logits` must be the compiled loss's ({applied} "
                    f"for {loss!r}): the trainer reads the model's outputs "
                    f"the same way. Received: from_logits={self.from_logits}"
                )

    compile.__doc__ = keras.Model.compile.__doc__

    def compile_from_config(self, config):
        # Keras does not recompile a loaded model whose `compile` is
        # overridden; this one only adds a check, so the saved
        # configuration compiles as Keras' own would.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)

    def probabilities(self, outputs):
        """The class probabilities of the model's `outputs`."""
        return ops.softmax(outputs, axis=-1) if self.from_logits else outputs

    def frame_weights(self, inputs, outputs):
        """The weight of every frame `(batch, time)` of per-frame `outputs`
        `(batch, time, classes)`: the inputs' `"frame_weights"` where given,
        else ones."""
        if isinstance(inputs, dict) and "frame_weights" in inputs:
            return ops.cast(inputs["frame_weights"], self.compute_dtype)
        return ops.ones(ops.shape(outputs)[:2], self.compute_dtype)

    def loss_weights(self, weights, sample_weight=None):
        """The weight of every frame's loss: `weights` `(batch, ...)`, each
        video's scaled to mean 1 over its frames (`rows_are_videos`), times
        the videos' `sample_weight` `(batch,)`."""
        if self.rows_are_videos:
            axes = tuple(range(1, len(weights.shape)))
            frames = ops.cast(ops.size(weights[0]), weights.dtype)
            total = ops.sum(weights, axis=axes, keepdims=True)
            weights = weights * ops.divide_no_nan(frames, total)
        if sample_weight is not None:
            weights = weights * per_frame(
                ops.cast(sample_weight, weights.dtype), weights
            )
        return weights

    def frame_loss(self, x, y, outputs, weights, sample_weight, training):
        """The compiled loss of every frame of `outputs` `(batch, ...,
        classes)` against its video's label, weighted by `loss_weights`,
        plus the model's added losses (Keras' `compute_loss`)."""
        check_video_labels(y, outputs.shape[-1])
        return super().compute_loss(
            x,
            per_frame(y, weights),
            outputs,
            self.loss_weights(weights, sample_weight),
            training=training,
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        return self.frame_loss(
            x,
            y,
            y_pred,
            self.frame_weights(x, y_pred),
            sample_weight,
            training,
        )

    def video_predictions(self, inputs, outputs):
        """The video predictions `(batch, classes)` of per-frame `outputs`
        `(batch, time, classes)`: `aggregate` of the frames of weight
        > 0."""
        return self.aggregate(outputs, self.frame_weights(inputs, outputs) > 0)

    def aggregate(self, frames, mask):
        """`video_probabilities` (with `aggregation`) of `frames` `(batch,
        time, classes)` in frame order where `mask` `(batch, time)`."""
        return video_probabilities(
            frames,
            mask=mask,
            aggregation=self.aggregation,
            from_logits=self.from_logits,
        )

    def metric_inputs(self, x, y, y_pred, sample_weight=None):
        """`(y, y_pred, sample_weight)` for the compiled metrics: the
        labels, the video predictions (`video_predictions`) and the
        videos' weights."""
        return y, self.video_predictions(x, y_pred), sample_weight

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(
            x, *self.metric_inputs(x, y, y_pred, sample_weight)
        )

    def get_config(self):
        return {
            **super().get_config(),
            "model": keras.saving.serialize_keras_object(self.model),
            "aggregation": self.aggregation,
            "from_logits": self.from_logits,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


__all__ = ["VideoTrainer"]
