"""A `keras.Model` that trains a per-frame video model on overlapping clips
with the overlap coherence loss, through Keras' own training step."""

import math

import keras
from keras import ops

from keras_cbm.keras_internals import unscale_loss_for_distribution
from keras_cbm.layers.base_cbm import check_choice
from keras_cbm.layers.frame_aggregation import VIDEO_AGGREGATIONS
from keras_cbm.layers.frame_aggregation import video_probabilities
from keras_cbm.losses.overlap_coherence import OverlapCoherence
from keras_cbm.models.recurrent_states import RecurrentStates
from keras_cbm.models.recurrent_states import call_with_mask
from keras_cbm.serving.frame_step import input_dtype
from keras_cbm.training.state_handover import clip_starts
from keras_cbm.training.state_handover import donor_states
from keras_cbm.training.state_handover import whole_past_states

CLIP_KEYS = ("clips", "alignment")
PAST_KEYS = ("past", "past_alignment")
# `state_handover` values, by the handover they select.
HANDOVERS = {
    False: None,
    True: "donor",
    "donor": "donor",
    "whole_past": "whole_past",
}


def check_per_frame(outputs_shape):
    """Raises `ValueError` unless a model's outputs `(batch, time, ...)`
    are per-frame predictions `(batch, time, classes)`."""
    if len(outputs_shape) != 3:
        raise ValueError(
            "`model` must output per-frame predictions (batch, time, "
            "classes). Received: outputs of shape "
            f"{('batch',) + tuple(outputs_shape[1:])} per clip"
        )


def _check_handover(state_handover):
    """The handover `state_handover` selects (`None`, `"donor"` or
    `"whole_past"`); raises `ValueError` for any other value."""
    if isinstance(state_handover, (bool, str)):
        if state_handover in HANDOVERS:
            return HANDOVERS[state_handover]
    raise ValueError(
        "`state_handover` must be one of False, True (the same as "
        "'donor'), 'donor' or 'whole_past'. Received: "
        f"state_handover={state_handover!r}"
    )


def _check_past_inputs(inputs):
    """Raises `ValueError` unless `inputs` holds the past frames that the
    whole-past handover reads."""
    if not all(key in inputs for key in PAST_KEYS):
        raise ValueError(
            "`inputs` must hold 'past' (batch, past_steps, *frame_shape) and "
            "'past_alignment' (batch, past_steps) for "
            "state_handover='whole_past', as "
            "`keras_cbm.data.overlapping_clips(..., past_length=...)` makes "
            f"them. Received: a dict with keys {sorted(inputs)}"
        )


def _check_clip_inputs(inputs):
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
    clips, alignment = inputs["clips"].shape, inputs["alignment"].shape
    if len(alignment) != 3 or tuple(clips[:3]) != tuple(alignment):
        raise ValueError(
            "`inputs` must hold 'clips' (batch, clips, steps, *frame_shape) "
            "and 'alignment' (batch, clips, steps). Received shapes: "
            f"clips={tuple(clips)}, alignment={tuple(alignment)}"
        )


def _per_frame(values, alignment):
    """Per-video `values` `(batch, ...)` repeated for every clip frame."""
    values = ops.convert_to_tensor(values)
    trailing = tuple(values.shape[1:])
    values = ops.reshape(values, (-1, 1, 1) + trailing)
    return ops.broadcast_to(values, tuple(ops.shape(alignment)) + trailing)


@keras.saving.register_keras_serializable(package="keras_cbm")
class CoherenceModel(keras.Model):
    """Trains a per-frame video model on overlapping clips of each video.

    The overlap coherence training scheme: each batch holds `K` clips per
    video (from `keras_cbm.data.overlapping_clips`); the wrapped model runs
    on every clip, the compiled loss applies to every real frame of every
    clip (the video label repeated per frame; the mean over each video's
    real frames, averaged over videos), and `coherence_weight` times the
    overlap coherence loss (`keras_cbm.losses.OverlapCoherence` on the
    per-frame probabilities) ties the clips of a video together. Memory is
    bounded by the clip length, not the video length.

    `model` is any Keras model of frames `(batch, time, *frame_shape)` to
    per-frame predictions `(batch, time, classes)`: `Sequential`,
    functional or subclassed, with any recurrent layers (keras_cbm's,
    `DeepCBM`, `LSTM`, `GRU`, `ConvLSTM*`, `keras.layers.RNN(cell)`). Clip
    padding (alignment -1) reaches every recurrent layer as its time mask,
    whatever layers lie between.

    Training runs through Keras' own `train_step` (the losses are in
    `compute_loss`), so it works on every backend, under `tf.distribute`
    strategies and `keras.distribution`. `History` and the progress bar show
    `loss` (the total), `task_loss`, `coherence_loss` and the compiled
    metrics.

    The model's outputs are per video: `call`, `predict` and the compiled
    metrics see `"probabilities"`, `keras_cbm.layers.video_probabilities`
    of the outputs on all the clips of a video, in frame order: by default
    the softmax of the mean of the frames' logits (of the logarithms of
    the probabilities without `from_logits`, which is the same), the
    quantity `keras_cbm.serving.export`'s `classify` returns. In
    evaluation (`evaluate`, `validation_data`) the task loss compares that
    video prediction with the label (as logits `log(p)` when
    `from_logits`); `coherence_loss` is measured on the clips as in
    training.

    With `state_handover="donor"` (or `True`), a clip that starts inside
    an earlier-starting clip of its video begins from that clip's recurrent
    states (every recurrent layer) at the frame just before its start, as
    an inference run of that clip reaches them, with the gradient cut (see
    `keras_cbm.training.state_handover`). With
    `state_handover="whole_past"`, every clip begins from the states an
    inference pass of the model over the video's frames before its start
    reaches, gradient cut (the inputs then hold the video's `"past"`
    frames, from `overlapping_clips(..., past_length=...)`). Either way the
    clips then run side by side from those states, as without handover.

    Sample weights (one per video) weight both losses; `class_weight` is not
    supported. Frame targets: where the inputs hold `"frame_weights"`
    `(batch, clips, steps)` (`overlapping_clips(..., targets=...)`), the
    task loss of a video is the weighted mean over its frames (0 for a
    video whose clips hold no target frame).

    Args:
        model: A per-frame video model (see above).
        coherence_weight: Float >= 0, the weight of the coherence loss.
        state_handover: How clips start: `False` (from zero states),
            `"donor"` or `True` (from the states of the earliest earlier
            clip of their video that holds their start, the paper's
            handover) or `"whole_past"` (from the states a pass over the
            video's frames before their start reaches).
        symmetric: Whether the coherence loss runs both ways (see
            `overlap_coherence`).
        aggregation: How a video's frames make its prediction, one of
            `"mean"` (the softmax of the mean of the frames' logits),
            `"mean_probabilities"`, `"vote"` or `"last"` (see
            `keras_cbm.layers.video_probabilities`).
        from_logits: Whether `model` outputs logits (a softmax gives the
            probabilities) or probabilities.
        **kwargs: Base model arguments (`name`, ...).

    Call arguments:
        inputs: A dict with `"clips"` `(batch, clips, steps, *frame_shape)`
            and `"alignment"` `(batch, clips, steps)`, the absolute frame
            index of every step, -1 on padding, as `overlapping_clips` and
            `uniform_clips` batch them; with `state_handover="whole_past"`,
            also `"past"` `(batch, past_steps, *frame_shape)` and
            `"past_alignment"` `(batch, past_steps)` (other keys are
            ignored).
        training: Python boolean, whether the model runs in training mode.

    Returns:
        A dict: `"probabilities"`, the video predictions `(batch, classes)`,
        and `"clip_outputs"`, the model's outputs on every clip `(batch,
        clips, steps, classes)`.

    Example:

    >>> import tensorflow as tf
    >>> from keras_cbm import data
    >>> from keras_cbm.layers import ConvCBM2D
    >>> videos = tf.data.Dataset.from_tensor_slices(
    ...     {"video": np.random.rand(4, 24, 16, 16, 3).astype("float32"),
    ...      "label": [0, 1, 0, 1]})
    >>> clips = data.overlapping_clips(videos, 3, 4, 8, seed=0).batch(2)
    >>> net = keras.Sequential([
    ...     keras.Input((None, 16, 16, 3)),
    ...     ConvCBM2D(4, 3, padding="same", return_sequences=True),
    ...     keras.layers.TimeDistributed(
    ...         keras.layers.GlobalAveragePooling2D()),
    ...     keras.layers.Dense(2)])
    >>> trainer = CoherenceModel(net, coherence_weight=0.5,
    ...                          state_handover=True)
    >>> trainer.compile(
    ...     "adam",
    ...     keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...     metrics=["accuracy"])
    >>> history = trainer.fit(clips, epochs=1, shuffle=False, verbose=0)
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
        if not isinstance(model, keras.Model):
            raise ValueError(
                "`model` must be a Keras model of frames (batch, time, ...) "
                "to per-frame predictions (batch, time, classes). Received: "
                f"model={model!r}"
            )
        self.model = model
        self.coherence_weight = coherence_weight
        self._handover = _check_handover(state_handover)
        self.state_handover = state_handover
        self.symmetric = symmetric
        self.aggregation = check_choice(
            "aggregation", aggregation, VIDEO_AGGREGATIONS
        )
        self.from_logits = from_logits
        # Handover needs every recurrent layer to run forward from given
        # states; clips on their own take any recurrent layer.
        self.recurrent_states = (
            RecurrentStates(model) if self._handover else None
        )
        self.coherence = OverlapCoherence(symmetric=symmetric)
        self.task_loss_tracker = keras.metrics.Mean(name="task_loss")
        self.coherence_loss_tracker = keras.metrics.Mean(name="coherence_loss")
        self.built = True

    def clip_outputs(self, inputs, training=None):
        """The wrapped model's per-frame outputs on every clip.

        Args:
            inputs: The clip dict of `call`.
            training: Python boolean.

        Returns:
            `(batch, clips, steps, classes)` outputs.
        """
        _check_clip_inputs(inputs)
        clips = ops.cast(inputs["clips"], self._input_dtype)
        alignment = ops.cast(inputs["alignment"], "int32")
        if self._handover == "donor":
            states = donor_states(self.recurrent_states, clips, alignment)
        elif self._handover == "whole_past":
            _check_past_inputs(inputs)
            states = whole_past_states(
                self.recurrent_states,
                ops.cast(inputs["past"], clips.dtype),
                ops.cast(inputs["past_alignment"], "int32"),
                clip_starts(alignment),
                window=clips.shape[2],
            )
        else:
            states = None
        outputs = self._side_by_side(clips, alignment, training, states)
        check_per_frame((None,) + tuple(outputs.shape[2:]))
        return outputs

    def _side_by_side(self, clips, alignment, training, initial_states=None):
        """The model's outputs on all clips in one run, clips along the
        batch axis, from `initial_states` `(batch, clips, ...)` if given."""
        batch, count = ops.shape(alignment)[:2]

        def flat(values):
            return ops.reshape(values, (-1,) + tuple(values.shape[2:]))

        if initial_states is None:
            outputs = call_with_mask(
                self.model, flat(clips), flat(alignment >= 0), training
            )
        else:
            outputs, _ = self.recurrent_states(
                flat(clips),
                initial_states=keras.tree.map_structure(flat, initial_states),
                mask=flat(alignment >= 0),
                training=training,
            )
        return ops.reshape(outputs, (batch, count) + tuple(outputs.shape[1:]))

    @property
    def _input_dtype(self):
        return input_dtype(self.model)

    def call(self, inputs, training=None):
        outputs = self.clip_outputs(inputs, training=training)
        return {
            "probabilities": self._video_probabilities(
                inputs["alignment"], outputs
            ),
            "clip_outputs": outputs,
        }

    def _probabilities(self, outputs):
        return ops.softmax(outputs, axis=-1) if self.from_logits else outputs

    def _video_probabilities(self, alignment, outputs):
        classes = outputs.shape[-1]
        frames = ops.reshape(outputs, (ops.shape(outputs)[0], -1, classes))
        alignment = ops.reshape(
            ops.cast(alignment, "int32"), (ops.shape(frames)[0], -1)
        )
        # Frame order, so that "last" means the video's last frame.
        order = ops.argsort(alignment, axis=1)
        return video_probabilities(
            ops.take_along_axis(frames, order[..., None], axis=1),
            mask=ops.take_along_axis(alignment, order, axis=1) >= 0,
            aggregation=self.aggregation,
            from_logits=self.from_logits,
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        alignment = ops.cast(x["alignment"], "int32")
        outputs = y_pred["clip_outputs"]
        if training:
            task = super().compute_loss(
                x,
                _per_frame(y, alignment),
                outputs,
                self._frame_weights(x, alignment, sample_weight),
                training=training,
            )
        else:
            video = y_pred["probabilities"]
            if self.from_logits:
                # A softmax of log(p) is p: the loss sees the probabilities.
                video = ops.log(ops.maximum(video, keras.config.epsilon()))
            task = super().compute_loss(
                x, y, video, sample_weight, training=training
            )
        coherence = self.coherence(
            alignment, self._probabilities(outputs), sample_weight
        )
        # As Keras tracks its "loss": replica values unscaled, weighted by
        # the replica's batch size.
        size = ops.shape(alignment)[0]
        for tracker, value in (
            (self.task_loss_tracker, task),
            (self.coherence_loss_tracker, coherence),
        ):
            tracker.update_state(
                unscale_loss_for_distribution(value), sample_weight=size
            )
        return task + ops.cast(self.coherence_weight, task.dtype) * coherence

    def _frame_weights(self, inputs, alignment, sample_weight):
        """Weights that make the loss the mean over videos of the mean over
        each video's real frames (every video counts equally, whatever its
        clips' lengths, and replicas reduce exactly), times each video's
        `sample_weight`; with the inputs' `"frame_weights"`, the weighted
        mean over each video's frames."""
        real = ops.cast(alignment >= 0, self.compute_dtype)
        if "frame_weights" in inputs:
            real = real * ops.cast(inputs["frame_weights"], real.dtype)
        frames = ops.cast(ops.size(real[0]), real.dtype)
        real_per_video = ops.sum(real, axis=(1, 2), keepdims=True)
        weights = real * ops.divide_no_nan(frames, real_per_video)
        if sample_weight is not None:
            weights = weights * _per_frame(
                ops.cast(sample_weight, weights.dtype), alignment
            )
        return weights

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(
            x, y, y_pred["probabilities"], sample_weight
        )

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
