"""A `keras.Model` that trains a per-frame video model on overlapping clips
with the overlap coherence loss."""

import math

import keras
import tensorflow as tf
from keras import ops

from keras_cbm.layers.frame_aggregation import FrameAggregation
from keras_cbm.losses.overlap_coherence import OverlapCoherence
from keras_cbm.training.deep_cbm_split import DeepCBMSplit

CLIP_KEYS = ("clips", "mask", "alignment")


def _check_clip_inputs(inputs, input_rank):
    """Raises `ValueError` unless `inputs` is a batch of clips."""
    if not isinstance(inputs, dict) or not all(k in inputs for k in CLIP_KEYS):
        received = (
            f"a dict with keys {sorted(inputs)}"
            if isinstance(inputs, dict)
            else type(inputs).__name__
        )
        raise ValueError(
            "`inputs` (each dataset element's inputs) must be a dict with "
            f"keys {CLIP_KEYS}, as `keras_cbm.data.overlapping_clips` makes "
            f"them. Received: {received}"
        )
    shapes = {key: tuple(inputs[key].shape) for key in CLIP_KEYS}
    if (
        len(shapes["mask"]) != 3
        or shapes["alignment"] != shapes["mask"]
        or len(shapes["clips"]) != input_rank + 1
        or shapes["clips"][:3] != shapes["mask"]
    ):
        raise ValueError(
            "`inputs` must hold 'clips' (batch, clips, steps, "
            f"*frame_shape) with the model's {input_rank - 2} frame "
            "dimensions, and 'mask' and 'alignment' (batch, clips, steps). "
            f"Received shapes: {shapes}"
        )


def _starts(alignment, mask):
    """The first real frame of every clip; empty clips sort last."""
    return ops.min(ops.where(mask, alignment, 2**30), axis=-1)


def _take_clips(values, indices):
    """`values[b, indices[b, k]]` for `values` `(batch, clips, ...)`."""
    indices = ops.reshape(
        indices, tuple(ops.shape(indices)) + (1,) * (len(values.shape) - 2)
    )
    return ops.take_along_axis(values, indices, axis=1)


@keras.saving.register_keras_serializable(package="keras_cbm")
class CoherenceModel(keras.Model):
    """Trains a per-frame video model on overlapping clips of each video.

    The overlap coherence training scheme: each batch holds `K` clips per
    video (from `keras_cbm.data.overlapping_clips`); the wrapped model runs
    on every clip, the compiled loss is applied to every frame of every clip
    (the video label repeated per frame, padding weighted 0), and
    `coherence_weight` times the overlap coherence loss
    (`keras_cbm.losses.OverlapCoherence` on the softmax probabilities) ties
    the clips of a video together. Memory is bounded by the clip length,
    not the video length. `History` and the progress bar show `loss` (the
    total), `task_loss`, `coherence_loss` and the compiled metrics, which
    are per frame in training.

    Evaluation (`evaluate`, `validation_data`) and `predict` work per video:
    the clip predictions of a video (e.g. `keras_cbm.data.uniform_clips`
    windows) are aggregated by `FrameAggregation(aggregation)` over all
    their frames, in frame order, and the compiled loss and metrics compare
    that video prediction with the label. The validation `task_loss` is this
    video loss; `coherence_loss` is measured on the clips as in training.

    With `state_handover`, the clips of a video run in order of their
    start, and a clip that starts inside an earlier clip begins from that
    clip's recurrent states (every layer) at the frame just before its
    start (from the earliest-starting such clip, whose history is the
    longest), with the gradient cut. Those states come from an inference
    run of the earlier clip (no dropout draws, no batch-normalisation
    updates) with its frames from the start on masked, so they are exact
    for models whose training and inference runs agree. In training, batch
    normalisation then sees one clip of each video at a time.

    Under a `tf.distribute` strategy, both losses are Keras losses and
    reduce over the global batch exactly as on one device (Keras 3.15's
    `fit` there averages a first batch over the replicas to build the model,
    which fails on bool and string tensors: map `"mask"` to `uint8` and drop
    string `"video_id"`s). Sample weights
    (one per video) weight both losses; `class_weight` is not supported.

    Args:
        model: A functional per-frame model: frames `(batch, time, ...)` to
            `(batch, time, classes)`, with one `DeepCBM` layer (e.g.
            `keras_cbm.models.standalone_classifier`).
        coherence_weight: Float >= 0, the weight of the coherence loss.
        state_handover: Whether clips start from the states of earlier
            clips of their video.
        symmetric: Whether the coherence loss runs both ways (see
            `overlap_coherence`).
        aggregation: `FrameAggregation` mode for video predictions.
        from_logits: Whether `model` outputs logits (a softmax gives the
            probabilities of the coherence loss) or probabilities.
        **kwargs: Base model arguments (`name`, ...).

    Call arguments:
        inputs: A dict with `"clips"` `(batch, clips, steps, *frame_shape)`,
            `"mask"` and `"alignment"` `(batch, clips, steps)`, as
            `overlapping_clips` and `uniform_clips` batch them.
        training: Python boolean, whether the model runs in training mode.

    Returns:
        Video predictions `(batch, classes)`.

    Example:

    >>> import tensorflow as tf
    >>> from keras_cbm import data, models
    >>> videos = tf.data.Dataset.from_tensor_slices(
    ...     {"video": np.random.rand(4, 24, 16, 16, 3).astype("float32"),
    ...      "label": [0, 1, 0, 1]})
    >>> clips = data.overlapping_clips(videos, 3, 4, 8, seed=0).batch(2)
    >>> net = models.standalone_classifier(
    ...     2, frame_shape=(16, 16, 3), stage_filters=(4,),
    ...     blocks_per_stage=1)
    >>> trainer = CoherenceModel(net, coherence_weight=0.5)
    >>> trainer.compile(
    ...     "adam",
    ...     keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...     metrics=["accuracy"])
    >>> history = trainer.fit(clips, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'coherence_loss', 'loss', 'task_loss']
    """

    def __init__(
        self,
        model,
        coherence_weight=1.0,
        state_handover=False,
        symmetric=False,
        aggregation="mean",
        from_logits=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (
            isinstance(coherence_weight, bool)
            or not isinstance(coherence_weight, (int, float))
            or not math.isfinite(coherence_weight)
            or coherence_weight < 0
        ):
            raise ValueError(
                "`coherence_weight` must be a finite number >= 0. Received: "
                f"coherence_weight={coherence_weight!r}"
            )
        output_shape = getattr(model, "output_shape", None)
        if not isinstance(output_shape, tuple) or len(output_shape) != 3:
            raise ValueError(
                "`model` must output per-frame predictions (batch, time, "
                "classes). Received: a model with output shape "
                f"{output_shape}"
            )
        self.model = model
        self.coherence_weight = coherence_weight
        self.state_handover = state_handover
        self.symmetric = symmetric
        self.aggregation = aggregation
        self.from_logits = from_logits
        # Not tracked: the parts share the model's layers and weights.
        self._split = DeepCBMSplit(model)
        self.aggregate = FrameAggregation(aggregation)
        self.coherence = OverlapCoherence(symmetric=symmetric)
        self.task_loss_tracker = keras.metrics.Mean(name="task_loss")
        self.coherence_loss_tracker = keras.metrics.Mean(name="coherence_loss")
        self.built = True

    def clip_predictions(self, inputs, training=None):
        """The wrapped model's per-frame predictions on every clip.

        Args:
            inputs: The clip dict of `call`.
            training: Python boolean.

        Returns:
            `(batch, clips, steps, classes)` predictions.
        """
        _check_clip_inputs(inputs, len(self.model.inputs[0].shape))
        clips = ops.cast(inputs["clips"], self.model.inputs[0].dtype)
        mask = ops.cast(inputs["mask"], "bool")
        alignment = ops.cast(inputs["alignment"], "int32")
        if self.state_handover:
            return self._handed_over_predictions(
                clips, mask, alignment, training
            )
        batch, count, steps = ops.shape(mask)
        frames = ops.reshape(clips, (-1,) + tuple(clips.shape[2:]))
        outputs, _ = self._split(
            frames, mask=ops.reshape(mask, (-1, steps)), training=training
        )
        return ops.reshape(
            outputs, (batch, count, steps) + tuple(outputs.shape[2:])
        )

    def _handed_over_predictions(self, clips, mask, alignment, training):
        split = self._split
        starts = _starts(alignment, mask)
        order = ops.argsort(starts, axis=1)
        clips, mask, alignment = (
            _take_clips(t, order) for t in (clips, mask, alignment)
        )
        starts = _take_clips(starts, order)
        ends = ops.max(alignment, axis=-1)
        batch, count, steps = ops.shape(mask)
        features = split.before(
            ops.reshape(clips, (-1,) + tuple(clips.shape[2:])),
            training=training,
        )
        features = ops.reshape(
            features, (batch, count, steps) + tuple(features.shape[2:])
        )
        outputs, initial_states = [], []
        for k in range(count):
            state = None
            if k > 0:
                state = self._handed_state(
                    split,
                    features[:, :k],
                    mask[:, :k],
                    alignment[:, :k],
                    (starts[:, :k], ends[:, :k]),
                    initial_states,
                    starts[:, k],
                )
            sequence, final = split.run_stack(
                features[:, k],
                initial_state=state,
                mask=mask[:, k],
                training=training,
            )
            if state is None:
                state = keras.tree.map_structure(ops.zeros_like, final)
            initial_states.append(state)
            outputs.append(split.after(sequence, training=training))
        # Back to the clips' own order.
        return _take_clips(ops.stack(outputs, axis=1), ops.argsort(order))

    @staticmethod
    def _handed_state(split, features, mask, alignment, spans, states, start):
        """The states at frame `start - 1` of the earliest earlier clip that
        holds `start` inside it (zeros where none does), gradient cut."""
        donor_starts, donor_ends = spans
        holds = ops.logical_and(
            donor_starts < start[:, None], donor_ends >= start[:, None]
        )
        donor = ops.argmax(ops.cast(holds, "int32"), axis=1)[:, None]
        has_donor = ops.any(holds, axis=1)
        # A masked step keeps every layer's state, so the final state with
        # the frames from `start` on masked is the state at `start - 1`.
        cut = ops.logical_and(mask, alignment < start[:, None, None])
        donor_states = keras.tree.map_structure(
            lambda *s: _take_clips(ops.stack(s, axis=1), donor)[:, 0], *states
        )
        _, handed = split.run_stack(
            _take_clips(features, donor)[:, 0],
            initial_state=donor_states,
            mask=_take_clips(cut, donor)[:, 0],
            training=False,
        )

        def keep(state):
            where = ops.reshape(
                has_donor, (-1,) + (1,) * (len(state.shape) - 1)
            )
            return ops.stop_gradient(ops.where(where, state, 0.0))

        return keras.tree.map_structure(keep, handed)

    def call(self, inputs, training=None):
        return self._video_predictions(
            inputs, self.clip_predictions(inputs, training=training)
        )

    def _video_predictions(self, inputs, predictions):
        classes = predictions.shape[-1]
        frames = ops.reshape(
            predictions, (ops.shape(predictions)[0], -1, classes)
        )
        alignment = ops.reshape(
            ops.cast(inputs["alignment"], "int32"), (ops.shape(frames)[0], -1)
        )
        mask = ops.reshape(
            ops.cast(inputs["mask"], "bool"), ops.shape(alignment)
        )
        # Frame order, so that "last" means the video's last frame.
        order = ops.argsort(ops.where(mask, alignment, -1), axis=1)
        return self.aggregate(
            ops.take_along_axis(frames, order[..., None], axis=1),
            mask=ops.take_along_axis(mask, order, axis=1),
        )

    def _loss_terms(
        self, inputs, y, y_pred, weight, clips, sample_weight, training
    ):
        """Total, task and coherence losses, each scaled for the strategy
        as Keras scales its losses: the compiled loss of `y_pred` against
        `y` (weighted by `weight`), and the coherence of the `clips`
        predictions (weighted per video by `sample_weight`)."""
        task = self.compute_loss(inputs, y, y_pred, weight, training=training)
        if self.from_logits:
            clips = ops.softmax(clips, axis=-1)
        mask = ops.cast(inputs["mask"], "bool")
        alignment = ops.where(mask, ops.cast(inputs["alignment"], "int32"), -1)
        coherence = self.coherence(alignment, clips, sample_weight)
        return task + self.coherence_weight * coherence, task, coherence

    def _track(self, inputs, total, task, coherence):
        # As Keras tracks its "loss": the unscaled replica values weighted
        # by the replica's batch size average to the global values.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        size = ops.shape(inputs["mask"])[0]
        trackers = {metric.name: metric for metric in self.metrics}
        for name, value in (
            ("loss", total),
            ("task_loss", task),
            ("coherence_loss", coherence),
        ):
            trackers[name].update_state(value * replicas, sample_weight=size)

    def train_step(self, data):
        inputs, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        _check_clip_inputs(inputs, len(self.model.inputs[0].shape))
        mask = ops.cast(inputs["mask"], self.compute_dtype)
        frame_weight = mask
        if sample_weight is not None:
            frame_weight = mask * ops.reshape(sample_weight, (-1, 1, 1))
        frame_y = ops.broadcast_to(
            ops.reshape(y, (-1, 1, 1) + tuple(y.shape[1:])),
            tuple(ops.shape(mask)) + tuple(y.shape[1:]),
        )
        with tf.GradientTape() as tape:
            predictions = self.clip_predictions(inputs, training=True)
            total, task, coherence = self._loss_terms(
                inputs,
                frame_y,
                predictions,
                frame_weight,
                predictions,
                sample_weight,
                training=True,
            )
            scaled = self.optimizer.scale_loss(total)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self._track(inputs, total, task, coherence)
        return self.compute_metrics(inputs, frame_y, predictions, frame_weight)

    def test_step(self, data):
        inputs, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        predictions = self.clip_predictions(inputs, training=False)
        videos = self._video_predictions(inputs, predictions)
        total, task, coherence = self._loss_terms(
            inputs,
            y,
            videos,
            sample_weight,
            predictions,
            sample_weight,
            training=False,
        )
        self._track(inputs, total, task, coherence)
        return self.compute_metrics(inputs, y, videos, sample_weight)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.model),
            "coherence_weight": self.coherence_weight,
            "state_handover": self.state_handover,
            "symmetric": self.symmetric,
            "aggregation": self.aggregation,
            "from_logits": self.from_logits,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)
