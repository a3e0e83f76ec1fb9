"""A `keras.Model` that trains a per-frame video model on overlapping clips
with the overlap coherence loss, through Keras' own training step."""

import math
import warnings

import keras
from keras import ops

from keras_cbm.keras_internals import unscale_loss_for_distribution
from keras_cbm.losses.overlap_coherence import OverlapCoherence
from keras_cbm.models.recurrent_states import RecurrentStates
from keras_cbm.models.recurrent_states import call_with_mask
from keras_cbm.training.state_handover import clip_starts
from keras_cbm.training.state_handover import donor_states
from keras_cbm.training.state_handover import whole_past_states
from keras_cbm.training.video_trainer import VideoTrainer
from keras_cbm.training.video_trainer import check_per_frame

CLIP_KEYS = ("clips", "alignment")
PAST_KEYS = ("past", "past_alignment")
HANDOVERS = (None, "donor", "whole_past")
# The booleans `state_handover` took before, by the value that replaced them.
OLD_HANDOVERS = {False: None, True: "donor"}


def check_handover(state_handover, warn=True):
    """The handover `state_handover` selects (`None`, `"donor"` or
    `"whole_past"`); the old booleans give their new value, with a
    `DeprecationWarning` if `warn`; raises `ValueError` for anything
    else."""
    if isinstance(state_handover, bool):
        new = OLD_HANDOVERS[state_handover]
        if warn:
            warnings.warn(
                f"`state_handover={state_handover}` is deprecated: use "
                f"`state_handover={new!r}`.",
                DeprecationWarning,
                stacklevel=3,
            )
        return new
    if state_handover is None or (
        isinstance(state_handover, str) and state_handover in HANDOVERS
    ):
        return state_handover
    raise ValueError(
        "`state_handover` must be one of None, 'donor' or 'whole_past'. "
        f"Received: state_handover={state_handover!r}"
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


@keras.saving.register_keras_serializable(package="keras_cbm")
class CoherenceModel(VideoTrainer):
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
    `compute_loss`, see `VideoTrainer`), on TensorFlow and JAX, under
    `tf.distribute` strategies and `keras.distribution`. `History` and the
    progress bar show `loss` (the total), `task_loss`, `coherence_loss` and
    the compiled metrics. Evaluation (`evaluate`, `validation_data`)
    measures the same losses on its clips, so `val_loss` is `loss` on the
    validation data (what `EarlyStopping` and `ReduceLROnPlateau` compare).

    The model's outputs are per video: `call`, `predict` and the compiled
    metrics see `"probabilities"`, `keras_cbm.layers.video_probabilities`
    of the outputs on all the clips of a video (on their target frames
    where the inputs hold `"frame_weights"`), in frame order: by default
    the softmax of the mean of the frames' logits (of the logarithms of
    the probabilities without `from_logits`, which is the same), the
    quantity `keras_cbm.serving.export`'s `classify` returns. A video-level
    loss is a compiled metric on them, e.g.
    `keras.metrics.SparseCategoricalCrossentropy()`.

    With `state_handover="donor"`, a clip that starts inside
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
    video whose clips hold no target frame). Losses the model's layers add
    (`add_loss`, an `activity_regularizer`) count in the clips' own runs,
    not in the handover's inference passes (which, as `predict`, train
    nothing).

    Args:
        model: A per-frame video model (see above).
        coherence_weight: Float >= 0, the weight of the coherence loss.
        state_handover: How clips start: `None` (from zero states),
            `"donor"` (from the states of the earliest earlier clip of
            their video that holds their start, the paper's handover) or
            `"whole_past"` (from the states a pass over the video's frames
            before their start reaches). The former `False` and `True`
            still work, with a `DeprecationWarning` naming `None` and
            `"donor"`.
        symmetric: Whether the coherence loss runs both ways (see
            `overlap_coherence`).
        aggregation: How a video's frames make its prediction, one of
            `"mean"` (the softmax of the mean of the frames' logits),
            `"mean_probabilities"`, `"vote"` or `"last"` (see
            `keras_cbm.layers.video_probabilities`).
        from_logits: Whether `model` outputs logits (a softmax gives the
            probabilities) or probabilities; must be the compiled loss's.
        **kwargs: Base model arguments (`name`, `dtype`, ...).

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
    ...                          state_handover="donor")
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
        state_handover=None,
        symmetric=False,
        aggregation="mean",
        from_logits=True,
        **kwargs,
    ):
        super().__init__(
            model, aggregation=aggregation, from_logits=from_logits, **kwargs
        )
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
        self.coherence_weight = coherence_weight
        self.state_handover = check_handover(state_handover)
        self.symmetric = symmetric
        # Handover needs every recurrent layer to run forward from given
        # states; clips on their own take any recurrent layer.
        self.recurrent_states = (
            RecurrentStates(model) if self.state_handover else None
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
        if self.state_handover == "donor":
            states = donor_states(self.recurrent_states, clips, alignment)
        elif self.state_handover == "whole_past":
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

        # `ops.shape`: a retrace for another clip length leaves the time
        # axis' static size unknown.
        def flat(values):
            return ops.reshape(values, (-1,) + tuple(ops.shape(values)[2:]))

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
        return ops.reshape(
            outputs, (batch, count) + tuple(ops.shape(outputs)[1:])
        )

    def call(self, inputs, training=None):
        outputs = self.clip_outputs(inputs, training=training)
        return {
            "probabilities": self.video_predictions(inputs, outputs),
            "clip_outputs": outputs,
        }

    def frame_weights(self, inputs, outputs):
        """The weight of every clip frame `(batch, clips, steps)`: 1 on
        real frames, 0 on padding, times the inputs' `"frame_weights"`
        where given."""
        weights = ops.cast(inputs["alignment"] >= 0, self.compute_dtype)
        if "frame_weights" in inputs:
            weights = weights * ops.cast(inputs["frame_weights"], weights.dtype)
        return weights

    def video_predictions(self, inputs, outputs):
        """The video predictions `(batch, classes)` of the clip outputs
        `(batch, clips, steps, classes)`: those of their frames (of weight
        > 0) in frame order, so that `"last"` means the video's last
        frame."""
        classes = outputs.shape[-1]
        batch = ops.shape(outputs)[0]
        frames = ops.reshape(outputs, (batch, -1, classes))
        alignment = ops.reshape(
            ops.cast(inputs["alignment"], "int32"), (batch, -1)
        )
        weights = ops.reshape(self.frame_weights(inputs, outputs), (batch, -1))
        order = ops.argsort(alignment, axis=1)
        return self.aggregate(
            ops.take_along_axis(frames, order[..., None], axis=1),
            ops.take_along_axis(weights, order, axis=1) > 0,
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        outputs = y_pred["clip_outputs"]
        # The same quantity in training and evaluation, so that `val_loss`
        # compares with `loss` (see docs/training.md).
        task = self.frame_loss(
            x,
            y,
            outputs,
            self.frame_weights(x, outputs),
            sample_weight,
            training,
        )
        alignment = ops.cast(x["alignment"], "int32")
        coherence = self.coherence(
            alignment, self.probabilities(outputs), sample_weight
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

    def metric_inputs(self, x, y, y_pred, sample_weight=None):
        return y, y_pred["probabilities"], sample_weight

    def get_config(self):
        return {
            **super().get_config(),
            "coherence_weight": self.coherence_weight,
            "state_handover": self.state_handover,
            "symmetric": self.symmetric,
        }

    @classmethod
    def from_config(cls, config):
        # A file saved before `state_handover` took None for False and
        # "donor" for True loads without the deprecation warning.
        config = dict(config)
        config["state_handover"] = check_handover(
            config.get("state_handover"), warn=False
        )
        return super().from_config(config)
