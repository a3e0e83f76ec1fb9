"""Streaming truncated back-propagation through time: consecutive chunks of
videos too long to hold arrive as consecutive batches, and every row keeps
its recurrent states from one batch to the next."""

import contextlib
import inspect

import keras
from keras import ops

from keras_cbm.layers.base_cbm import check_units
from keras_cbm.training.chunked_runs import ChunkedTrainer
from keras_cbm.training.video_trainer import per_frame

# Keys of a streaming batch: required, then optional.
REQUIRED_KEYS = ("video", "new_video")
ORDER_KEYS = ("chunk_index", "video_id")


class _FrameMask(keras.layers.Layer):
    """Its input, carrying `mask` as its Keras mask: what Keras' unweighted
    `metrics` read (as for a masked sequence model's outputs)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        return inputs


@keras.saving.register_keras_serializable(package="keras_cbm")
class StreamingBPTT(ChunkedTrainer):
    """Trains a per-frame video model on streams of chunks, one optimizer
    step per chunk, every row's recurrent states kept between batches.

    Each batch holds one chunk of frames per row; a row's next batch holds
    the next chunk of the same video, or the first chunk of another video
    where `"new_video"` is True, which starts that row from zero states.
    The states every row ends a batch in are kept in non-trainable
    variables of this model (so checkpoints and `BackupAndRestore` save
    them) and its next batch starts from them, the gradient cut at the
    batch boundary. Peak memory is set by the chunk length, whatever the
    videos' length. `keras_cbm.data.streaming_chunks` and
    `keras_cbm.data.video_chunks_from_directory` make such batches.

    `model` is any Keras model of frames `(batch, time, *frame_shape)` to
    per-frame predictions `(batch, time, classes)` that
    `keras_cbm.models.RecurrentStates` accepts (no `Bidirectional`,
    `go_backwards` or `stateful` layer). The states' variables take their
    shape from the first batch (its number of rows and frame shape); every
    later batch must have as many rows. Training runs through Keras' own
    `train_step` (the loss is in `compute_loss`, see `VideoTrainer`), on
    TensorFlow and JAX, on one replica: a `tf.distribute` strategy of
    several replicas, which would split the rows, is refused.

    The compiled loss applies to every frame, the row's label repeated per
    frame, weighted by the batch's `"frame_weights"` (0 on padding; each
    frame of weight 1 counts equally). The compiled metrics are per frame
    and see only the frames of weight > 0 (Keras' `metrics` through the
    outputs' mask, `weighted_metrics` through the weights).

    `fit` takes Keras' arguments (positionally too). The batches must be
    consecutive: a row's chunk is its previous chunk's successor
    (`"chunk_index"` one more, same `"video_id"`) or a new video's first
    chunk. A batch that breaks this (a shuffled or repeated stream) stops
    `fit` with a `ValueError` at the end of its epoch (the check reads the
    trainer's variables once an epoch, never a batch). `fit` also resumes
    a stream killed mid-epoch: the position in the epoch is kept in
    variables that `BackupAndRestore(save_freq=N)` saves, and the restored
    epoch skips the batches already trained (the dataset must be the one
    `streaming_chunks` or `video_chunks_from_directory` returned, whose
    `stream_position` this model sets). `steps_per_epoch` is not
    supported: an epoch is one pass over the stream. `evaluate` and
    `predict` run on the same rows (a stream's first batch starts every
    row on a new video), then give the training rows back their states.

    Args:
        model: A per-frame video model (see above).
        chunk_length: `None` (each batch runs as one chunk), or an integer
            >= 1: frames per sub-chunk within a batch, as in
            `TruncatedBPTT`, for batches longer than the memory allows.
        rematerialize: Whether to recompute each sub-chunk's activations
            in the backward pass (see `TruncatedBPTT`; useful with a
            `chunk_length` shorter than the batches).
        aggregation: How `keras_cbm.serving.export`'s `classify` makes a
            video's prediction of its frames (see `VideoTrainer`).
        from_logits: Whether `model` outputs logits or probabilities; must
            be the compiled loss's.
        **kwargs: Base model arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A dict: `"video"` `(batch, time, *frame_shape)` with a
            static `batch` and `time`, `"new_video"` `(batch,)` bool, and
            optionally `"frame_weights"` `(batch, time)`, `"chunk_index"`
            and `"video_id"` `(batch,)` integers (see
            `keras_cbm.data.streaming_chunks`).
        training: Python boolean.

    Returns:
        The model's per-frame outputs `(batch, time, classes)`: over a
        stream of chunks, the same (up to float rounding) as one run of
        `model` over each whole video.

    Example:

    >>> net = keras.Sequential([
    ...     keras.Input((None, 3)),
    ...     keras.layers.LSTM(4, return_sequences=True),
    ...     keras.layers.Dense(2)])
    >>> video = np.random.rand(1, 6, 3).astype("float32")
    >>> trainer = StreamingBPTT(net)
    >>> first = trainer({"video": video[:, :3], "new_video": np.array([True])})
    >>> second = trainer({"video": video[:, 3:],
    ...                   "new_video": np.array([False])})
    >>> bool(np.allclose(np.concatenate([first, second], 1), net(video),
    ...                  atol=1e-5))
    True
    """

    # A row is a chunk of a video: each frame of weight 1 counts equally.
    rows_are_videos = False

    def __init__(
        self,
        model,
        chunk_length=None,
        rematerialize=False,
        aggregation="mean",
        from_logits=True,
        **kwargs,
    ):
        super().__init__(
            model,
            rematerialize=rematerialize,
            aggregation=aggregation,
            from_logits=from_logits,
            **kwargs,
        )
        if chunk_length is not None:
            chunk_length = check_units("chunk_length", chunk_length)
        self.chunk_length = chunk_length
        # Where the stream stands in `fit`: the epoch and the batches of it
        # trained (-1: no epoch begun; see `StreamGuard`).
        self.stream_epoch = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(-1),
            dtype="int32",
            trainable=False,
            name="stream_epoch",
        )
        self.stream_batches = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int32",
            trainable=False,
            name="stream_batches",
        )
        # Batches seen out of order since `fit` began.
        self.order_errors = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int32",
            trainable=False,
            name="order_errors",
        )
        self.state_variables = None
        self.frame_mask = _FrameMask(name="frame_mask")

    def _check_one_replica(self):
        """Raises `ValueError` under a `tf.distribute` strategy of several
        replicas, which would split the rows whose states the variables
        keep."""
        strategy = getattr(self, "distribute_strategy", None)
        replicas = getattr(strategy, "num_replicas_in_sync", 1)
        if replicas > 1:
            raise ValueError(
                "`StreamingBPTT` must run on one replica: each row keeps its "
                "states in variables of the whole batch, which a strategy "
                "would split into per-replica batches. Received: "
                f"{type(strategy).__name__} with {replicas} replicas"
            )

    def build(self, input_shape):
        self._check_one_replica()
        if not isinstance(input_shape, dict) or any(
            key not in input_shape for key in REQUIRED_KEYS
        ):
            received = (
                sorted(input_shape)
                if isinstance(input_shape, dict)
                else input_shape
            )
            raise ValueError(
                f"`inputs` must be a dict with {list(REQUIRED_KEYS)} (and "
                f"optionally 'frame_weights', {list(ORDER_KEYS)}). "
                f"Received: {received}"
            )
        video_shape = tuple(input_shape["video"])
        if video_shape[0] is None or None in video_shape[2:]:
            raise ValueError(
                "`inputs['video']` must have a static batch size and frame "
                "shape: every row's states are variables of that shape. "
                f"Received: videos of shape {video_shape}"
            )
        batch = video_shape[0]
        shapes = self.recurrent_states.state_shapes(video_shape[2:])
        self.state_variables = [
            [
                self.add_weight(
                    shape=(batch,) + tuple(shape[1:]),
                    initializer="zeros",
                    dtype=layer.compute_dtype,
                    trainable=False,
                    autocast=False,
                    name=f"{layer.name}_state_{index}",
                )
                for index, shape in enumerate(layer_shapes)
            ]
            for layer, layer_shapes in zip(
                self.recurrent_states.layers, shapes, strict=True
            )
        ]
        # The last chunk every row ran (-1: none), for the order check.
        self.last_chunk = self.add_weight(
            shape=(batch,),
            initializer=keras.initializers.Constant(-1),
            dtype="int32",
            trainable=False,
            name="last_chunk_index",
        )
        self.last_video = self.add_weight(
            shape=(batch,),
            initializer="zeros",
            dtype="int32",
            trainable=False,
            name="last_video_id",
        )
        self.built = True

    @property
    def batch_size(self):
        """The rows of the stream (`None` before the first batch)."""
        if self.state_variables is None:
            return None
        return self.last_chunk.shape[0]

    def call(self, inputs, training=None):
        videos = inputs["video"]
        batch, time = videos.shape[0], videos.shape[1]
        if batch != self.batch_size or time is None:
            raise ValueError(
                "`inputs['video']` must have as many rows as the stream's "
                f"first batch ({self.batch_size}; each row keeps its own "
                "states) and a static number of frames. Received: videos "
                f"of shape {tuple(videos.shape)}"
            )
        if self.chunk_length is not None and time < self.chunk_length:
            raise ValueError(
                f"`chunk_length` must be at most the batches' length ({time} "
                "frames). Received: "
                f"chunk_length={self.chunk_length}"
            )
        new_video = ops.reshape(ops.cast(inputs["new_video"], "bool"), (batch,))
        states = [
            [
                ops.where(
                    ops.reshape(
                        new_video, (batch,) + (1,) * (len(v.shape) - 1)
                    ),
                    ops.zeros_like(v.value),
                    v.value,
                )
                for v in layer_variables
            ]
            for layer_variables in self.state_variables
        ]
        outputs, final = self.run_chunks(
            videos, states, self.chunk_length or time, training=training
        )
        for variables, values in zip(self.state_variables, final, strict=True):
            for variable, value in zip(variables, values, strict=True):
                # The gradient stops at the batch boundary.
                variable.assign(ops.stop_gradient(value))
        if all(key in inputs for key in ORDER_KEYS):
            self._check_order(inputs, new_video)
        if training:
            self.stream_batches.assign_add(1)
        return outputs

    def _check_order(self, inputs, new_video):
        """Counts a batch in which a row neither continues its video with
        the next chunk nor starts a new video at its first chunk."""
        chunk = ops.reshape(ops.cast(inputs["chunk_index"], "int32"), (-1,))
        video = ops.reshape(ops.cast(inputs["video_id"], "int32"), (-1,))
        continues = ops.logical_and(
            ops.equal(chunk, self.last_chunk.value + 1),
            ops.equal(video, self.last_video.value),
        )
        in_order = ops.where(new_video, ops.equal(chunk, 0), continues)
        self.order_errors.assign_add(
            ops.cast(ops.logical_not(ops.all(in_order)), "int32")
        )
        self.last_chunk.assign(chunk)
        self.last_video.assign(video)

    def metric_inputs(self, x, y, y_pred, sample_weight=None):
        # Per frame, a row being a chunk of a video: every metric sees the
        # frames of weight > 0 only (Keras' unweighted `metrics` through
        # the outputs' mask, `weighted_metrics` through the weights).
        weights = self.loss_weights(
            self.frame_weights(x, y_pred), sample_weight
        )
        return (
            per_frame(y, weights),
            self.frame_mask(y_pred, mask=weights > 0),
            weights,
        )

    def _stream_variables(self):
        """The variables a call writes: every row's states and the order
        check's record."""
        if self.state_variables is None:
            return []
        return keras.tree.flatten(self.state_variables) + [
            self.last_chunk,
            self.last_video,
            self.order_errors,
        ]

    @contextlib.contextmanager
    def _stream_kept(self):
        """Restores the training rows' states and order record on exit."""
        kept = [
            (variable, ops.copy(variable.value))
            for variable in self._stream_variables()
        ]
        try:
            yield
        finally:
            for variable, value in kept:
                variable.assign(value)

    def evaluate(self, *args, **kwargs):
        with self._stream_kept():
            return super().evaluate(*args, **kwargs)

    def predict(self, *args, **kwargs):
        with self._stream_kept():
            return super().predict(*args, **kwargs)

    def fit(self, *args, **kwargs):
        arguments = (
            inspect.signature(keras.Model.fit)
            .bind(self, *args, **kwargs)
            .arguments
        )
        del arguments["self"]
        if arguments.get("steps_per_epoch") is not None:
            raise ValueError(
                "`steps_per_epoch` must be None for a streaming fit: an "
                "epoch is one pass over the stream, which a restored epoch "
                "resumes. Received: "
                f"steps_per_epoch={arguments['steps_per_epoch']!r}"
            )
        self._check_one_replica()
        x = arguments.get("x")
        if not self.built and hasattr(x, "element_spec"):
            # `BackupAndRestore` restores the states' variables, which must
            # exist first; Keras' TensorFlow trainer builds a model only
            # when it traces the training step.
            spec = x.element_spec
            inputs = spec[0] if isinstance(spec, tuple) else spec
            self.build(
                keras.tree.map_structure(lambda s: tuple(s.shape), inputs)
            )
        # A fit starts its stream afresh, unless `BackupAndRestore`
        # restores these (in `on_train_begin`).
        self.stream_epoch.assign(-1)
        self.order_errors.assign(0)
        # Keras' `shuffle` cannot apply to a dataset (it warns).
        arguments.setdefault("shuffle", False)
        # First, so that its `on_epoch_end` runs before the others'; a
        # fresh one a fit, and never in the caller's `CallbackList`.
        callbacks = arguments.get("callbacks")
        given = (
            callbacks.callbacks
            if isinstance(callbacks, keras.callbacks.CallbackList)
            else list(callbacks or [])
        )
        # Only a restored epoch needs a hook after every batch, which
        # keeps Keras from dispatching the callbacks asynchronously (JAX).
        resumable = any(
            isinstance(c, keras.callbacks.BackupAndRestore) for c in given
        )
        guard = (ResumableStreamGuard if resumable else StreamGuard)(
            getattr(x, "stream_position", None)
        )
        if isinstance(callbacks, keras.callbacks.CallbackList):
            arguments["callbacks"] = keras.callbacks.CallbackList(
                [guard] + given, model=self, **callbacks.params
            )
        else:
            arguments["callbacks"] = [guard] + given
        return super().fit(**arguments)

    fit.__signature__ = inspect.signature(keras.Model.fit)

    def get_config(self):
        return {**super().get_config(), "chunk_length": self.chunk_length}


class StreamGuard(keras.callbacks.Callback):
    """What `StreamingBPTT.fit` adds to the callbacks (first), one a fit.

    At each epoch's start, it starts counting the stream's batches afresh
    (see `ResumableStreamGuard` for an epoch `BackupAndRestore` restores);
    at each epoch's end, it stops `fit` if a batch came out of order. It
    reads the model's variables once an epoch, never a batch, and has no
    hook after a batch, so that Keras may dispatch the callbacks
    asynchronously.
    """

    def __init__(self, position):
        super().__init__()
        self.position = position
        self.epoch = None
        # In a resumed epoch: the batches trained before it, and those of
        # the stream's pass.
        self.done = 0
        self.resumed_until = None
        self.cut = False

    def on_epoch_begin(self, epoch, logs=None):
        trainer = self.model
        self.epoch, self.resumed_until, self.cut = epoch, None, False
        done = int(ops.convert_to_numpy(trainer.stream_batches.value))
        if int(ops.convert_to_numpy(trainer.stream_epoch.value)) != epoch:
            trainer.stream_epoch.assign(epoch)
            trainer.stream_batches.assign(0)
            done = 0
        self.done = done
        if self.position is not None:
            self.position.epoch = epoch
            self.position.skip_batches = done
            if done:
                self.resumed_until = self.position.batches
        elif done:
            raise ValueError(
                f"`x` must be the dataset that `streaming_chunks` or "
                f"`video_chunks_from_directory` returned (it has a "
                f"`stream_position`) to resume epoch {epoch + 1} after its "
                f"{done} batches already trained. Received: a dataset "
                "without `stream_position`"
            )

    def on_epoch_end(self, epoch, logs=None):
        errors = int(ops.convert_to_numpy(self.model.order_errors.value))
        if errors:
            raise ValueError(
                "`x` must give each row of a stream its video's chunks in "
                "order: every batch must continue each row's video with its "
                "next chunk (`chunk_index` one more, the same `video_id`) or "
                "start a new video at its chunk 0 (`new_video`). Received: "
                f"{errors} batches of epoch {epoch + 1} out of order (a "
                "shuffled, repeated or skipping streaming dataset?)"
            )
        if self.cut:
            # Only the resumed epoch ends here, not the fit.
            self.model.stop_training = self.cut = False

    def on_train_end(self, logs=None):
        if self.position is not None:
            self.position.epoch, self.position.skip_batches = None, 0


class ResumableStreamGuard(StreamGuard):
    """`StreamGuard` for a fit with `BackupAndRestore`: it resumes an epoch
    restored where its backup was taken. The dataset's `stream_position`
    skips the batches already trained, and the epoch ends after the
    stream's last batch, where Keras, which counts the batches of a whole
    pass, would ask for more (a step past the data's end still advances
    the optimizer's iteration count on TensorFlow): counted on the host
    from Keras' own batch index."""

    def on_train_batch_end(self, batch, logs=None):
        if self.resumed_until is None or self.model.stop_training:
            return
        if self.done + batch + 1 >= self.resumed_until:
            self.model.stop_training = self.cut = True


__all__ = ["StreamingBPTT"]
