"""A deep stack of recurrent convolutional layers with residual shortcuts."""

import warnings

import keras
from keras import activations
from keras import initializers
from keras import layers
from keras import ops

from keras_cbm.layers.base_cbm import TEMPORAL_GATES
from keras_cbm.layers.base_cbm import check_choice
from keras_cbm.layers.conv_cbm2d import ConvCBM2D
from keras_cbm.layers.deep_cbm_layout import plan_layout
from keras_cbm.layers.per_frame import apply_per_frame

LAYER_TYPES = ("cbm", "convlstm")
# The reference's CBM initialisation: Xavier-normal with gain 3.0.
REFERENCE_INITIALIZER = initializers.VarianceScaling(
    9.0, "fan_avg", "untruncated_normal"
)


def _fresh(initializer):
    """A copy of `initializer`: an unseeded Keras initializer object gives
    the same values at every call, which would make equal-shaped layers
    start equal."""
    return initializers.get(initializers.serialize(initializer))


@keras.saving.register_keras_serializable(package="keras_cbm")
class DeepCBM(layers.Layer):
    """A deep stack of `ConvCBM2D` (or `ConvLSTM2D`) layers over video.

    Layer `i` (counted from 1) is a recurrent convolution with `filters[i]`
    filters, `kernel_size[i]`, `strides[i]` and `"same"` padding, optionally
    followed by a batch normalisation of its output. Residual shortcuts span
    `jump_stride` layers: the last layer of each block adds the block's input
    to its output. Blocks are counted from the top, so the first
    `depth % jump_stride` layers form a stem without shortcut (a 17-layer
    stack with `jump_stride=2` is the ResNet-18 layout: one stem layer, then
    eight two-layer blocks). A shortcut is the identity, or a 1x1
    convolution (strided by the block's downsampling) where channels or
    resolution change; `shortcut="conv"` always uses the convolution, with a
    ReLU, as the reference backbone-supported model does. Layers listed in
    `pool_after` are followed, after their shortcut, by a 2x2 max-pool of
    stride 2 and `"same"` padding (7x7 -> 4x4 -> 2x2 -> 1x1).
    `keras_cbm.layers.deep_cbm_layout.plan_layout` plans this layout.

    Every recurrent layer returns all steps; pooling, shortcuts and batch
    normalisation run on all `batch * time` frames at once. The time mask
    reaches every recurrent layer and excludes masked frames from the
    batch statistics.

    The reference initialises the CBM convolutions with Xavier-normal of
    gain 3.0 and zero biases: `REFERENCE_INITIALIZER`, i.e.
    `keras.initializers.VarianceScaling(9.0, "fan_avg",
    "untruncated_normal")`, for `kernel_initializer` and
    `recurrent_initializer`. Every layer gets its own copy of an
    initializer, so equal-shaped layers start different. Keras takes the
    fans of the whole CBM kernel, whose outputs are `[W_R, W_T]`
    (`2 * filters`; `3 * filters` with `temporal_gate`), so `W_R` gets 2/3
    of the reference's variance when input and output channels are equal
    (1/2 with the gate). The reference clips gradient values to +-5:
    compile with an optimizer made with `clipvalue=5.0`.

    Args:
        depth: Positive integer, the number of recurrent layers.
        filters: Positive integer, or a list of `depth` of them.
        kernel_size: Positive integer (square kernels), or a list of `depth`.
        strides: Positive integer, or a list of `depth`: the strides of each
            layer's input convolutions.
        jump_stride: Positive integer, the layers spanned by a shortcut, or
            `None` for no shortcuts.
        shortcut: `"auto"` (identity unless the shape changes, then a 1x1
            convolution) or `"conv"` (always 1x1 convolution and ReLU).
        pool_after: Layer indices in `[1, depth]` followed by max-pooling.
        temporal_dropout: Temporal Dropout rate in `[0, 1]`, or a list of
            `depth` rates (CBM layers only; `ConvLSTM2D` has none).
        merge: The CBM merge, `"add"` (default), `"multiply"` (the
            paper's) or `"concat"` (CBM only; the multiply merge passes no
            gradient to earlier frames at depth 15 at initialisation,
            `studies/memory_tasks.md`).
        activation: Activation of R in CBM layers (of the cell input and
            output in `ConvLSTM2D`).
        recurrent_activation: Activation of T's candidate (of the LSTM
            gates). `"auto"`: `"tanh"` for CBM layers, `"sigmoid"` for
            `ConvLSTM2D` layers, as each layer's own default.
        temporal_gate: The CBM layers' gate of T (see `ConvCBM2D`):
            `"recurrent"`, `"input"` or `None` (the paper's T, which
            forgets within a few frames). `"auto"`: `"recurrent"` for CBM
            layers, `None` with `layer_type="convlstm"` (which takes only
            `None`).
            `**keras_cbm.layers.PAPER_CELL` gives the paper's cell.
        batch_norm: Whether to batch-normalise each layer's convolutions
            (and each shortcut convolution). CBM layers normalise R's and
            T's input convolutions before their activations
            (`ConvCBM2D(batch_norm=True)`; `"representation"` or
            `"temporal"`: R's or T's only), with statistics over all
            unmasked `batch * time` frames; the reference normalises each
            time step on its own and includes T's recurrent term.
            `keras.layers.ConvLSTM2D` has no such option, so the ConvLSTM
            baseline normalises each layer's output instead.
        layer_type: `"cbm"` for `ConvCBM2D` layers, `"convlstm"` for
            `keras.layers.ConvLSTM2D` layers of the same layout (their
            state is `[h, c]`; their forget-gate bias starts at 1).
        kernel_initializer: Initializer of the input kernels.
        recurrent_initializer: Initializer of the recurrent kernels.
        bias_initializer: Initializer of the recurrent layers' biases.
        seed: Integer seed for Temporal Dropout; layer `i` gets `seed + i`.
        return_state: Whether to also return every layer's final state.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        sequences: A 5D tensor `(batch, time, rows, cols, channels)`.
        initial_state: Optional list with one entry per layer, each the list
            that layer's `initial_state` takes: `[c]` for a CBM layer,
            `[h, c]` for a `ConvLSTM2D` layer.
        mask: Optional boolean tensor `(batch, time)`, `False` for steps to
            skip.
        training: Python boolean, whether Temporal Dropout and batch
            normalisation run in training mode.
        return_state: Optional boolean overriding the layer's
            `return_state` for this call, so that a stack built without
            it (inside a model) can hand its states over.

    Input shape:
        `(batch, time, rows, cols, channels)`, with static rows, cols and
        channels.

    Output shape:
        `(batch, time, new_rows, new_cols, output_channels)`. With
        `return_state`, the states follow in `initial_state`'s structure.

    Returns:
        The per-frame outputs, or `(outputs, states)` with `return_state`.
        Running a video in consecutive pieces, each started from the states
        the previous one returned, equals running it in one call.

    Example:

    >>> frames = np.random.rand(2, 3, 7, 7, 8).astype("float32")
    >>> stack = DeepCBM(depth=15, filters=8, jump_stride=5,
    ...                 pool_after=(5, 10, 15), return_state=True)
    >>> outputs, states = stack(frames)
    >>> tuple(outputs.shape), len(states), tuple(states[0][0].shape)
    ((2, 3, 1, 1, 8), 15, (2, 7, 7, 8))

    The paper's cell, and the ConvLSTM baseline of the same layout:

    >>> from keras_cbm.layers import PAPER_CELL
    >>> paper = DeepCBM(depth=2, filters=8, **PAPER_CELL)
    >>> tuple(paper(frames).shape), paper.temporal_gate
    ((2, 3, 7, 7, 8), None)
    >>> DeepCBM(depth=2, filters=8, layer_type="convlstm").temporal_gate is None
    True
    """

    def __init__(
        self,
        depth,
        filters,
        kernel_size=3,
        strides=1,
        jump_stride=None,
        shortcut="auto",
        pool_after=(),
        temporal_dropout=0.0,
        merge="add",
        activation="tanh",
        recurrent_activation="auto",
        temporal_gate="auto",
        batch_norm=False,
        layer_type="cbm",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        seed=None,
        return_state=False,
        **kwargs,
    ):
        if "cell" in kwargs:
            # The argument's name up to keras_cbm 0.1 (and in configs saved
            # then); it goes in the release after the next.
            layer_type = kwargs.pop("cell")
            warnings.warn(
                "Argument `cell` is deprecated. Use `layer_type` instead.",
                stacklevel=2,
            )
        super().__init__(**kwargs)
        self._layout = plan_layout(
            depth=depth,
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            jump_stride=jump_stride,
            shortcut=shortcut,
            pool_after=pool_after,
            temporal_dropout=temporal_dropout,
        )
        if layer_type not in LAYER_TYPES:
            raise ValueError(
                f"`layer_type` must be one of {LAYER_TYPES}. "
                f"Received: layer_type={layer_type!r}"
            )
        # "auto": each cell's own default (ConvLSTM2D's gates are sigmoid).
        if temporal_gate == "auto":
            temporal_gate = None if layer_type == "convlstm" else "recurrent"
        if isinstance(recurrent_activation, str) and (
            recurrent_activation == "auto"
        ):
            recurrent_activation = (
                "sigmoid" if layer_type == "convlstm" else "tanh"
            )
        check_choice("temporal_gate", temporal_gate, TEMPORAL_GATES)
        if temporal_gate is not None and layer_type == "convlstm":
            raise ValueError(
                "`temporal_gate` must be None with "
                '`layer_type="convlstm"` (ConvLSTM2D has gates of its '
                "own). Received: "
                f"temporal_gate={temporal_gate!r}, layer_type='convlstm'"
            )
        self.depth = depth
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.jump_stride = jump_stride
        self.shortcut = shortcut
        self.pool_after = tuple(pool_after)
        self.temporal_dropout = temporal_dropout
        self.merge = merge
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.temporal_gate = temporal_gate
        self.batch_norm = batch_norm
        self.layer_type = layer_type
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.seed = seed
        self.return_state = return_state
        self.supports_masking = True

        self.recurrent_layers = [
            self._recurrent_layer(index, plan)
            for index, plan in enumerate(self._layout.layers)
        ]
        # Output normalisation stands in for the convolutions' in ConvLSTM.
        self.norms = [
            layers.BatchNormalization(
                name=f"batch_norm_{i + 1}", dtype=self.dtype_policy
            )
            if batch_norm and layer_type == "convlstm"
            else None
            for i in range(depth)
        ]
        self.pools = [
            layers.MaxPooling2D(
                2,
                2,
                padding="same",
                name=f"pool_{i + 1}",
                dtype=self.dtype_policy,
            )
            if plan.pool
            else None
            for i, plan in enumerate(self._layout.layers)
        ]

    def _recurrent_layer(self, index, plan):
        common = dict(
            filters=plan.filters,
            kernel_size=plan.kernel_size,
            strides=plan.strides,
            padding="same",
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            kernel_initializer=_fresh(self.kernel_initializer),
            recurrent_initializer=_fresh(self.recurrent_initializer),
            bias_initializer=_fresh(self.bias_initializer),
            seed=None if self.seed is None else self.seed + index,
            return_sequences=True,
            return_state=True,
            dtype=self.dtype_policy,
        )
        if self.layer_type == "convlstm":
            return layers.ConvLSTM2D(name=f"conv_lstm_{index + 1}", **common)
        return ConvCBM2D(
            merge=self.merge,
            temporal_dropout=plan.temporal_dropout,
            temporal_gate=self.temporal_gate,
            batch_norm=self.batch_norm,
            name=f"cbm_{index + 1}",
            **common,
        )

    def _walk_shapes(self, sequences_shape):
        """Per layer: (input, recurrent output, output) shapes, and states."""
        shape = tuple(sequences_shape)
        walk = []
        for index, layer in enumerate(self.recurrent_layers):
            output_shape, *state_shapes = layer.compute_output_shape(shape)
            merged_shape = tuple(output_shape)
            if self.pools[index] is not None:
                frame_shape = self.pools[index].compute_output_shape(
                    (None,) + merged_shape[2:]
                )
                output_shape = merged_shape[:2] + tuple(frame_shape[1:])
            walk.append(
                (shape, merged_shape, tuple(output_shape), state_shapes)
            )
            shape = tuple(output_shape)
        return walk

    def build(self, sequences_shape, initial_state_shape=None):
        if len(sequences_shape) != 5:
            raise ValueError(
                f"`sequences` of layer '{self.name}' must have rank 5, "
                "(batch, time, rows, cols, channels). Received: "
                f"sequences.shape={tuple(sequences_shape)}"
            )
        walk = self._walk_shapes(sequences_shape)
        # Shortcuts depend on the input's channels, known only here.
        shortcut_convs = [None] * self.depth
        shortcut_norms = [None] * self.depth
        for index, (shape, merged_shape, _, _) in enumerate(walk):
            self.recurrent_layers[index].build(shape)
            if self.norms[index] is not None:
                self.norms[index].build((None,) + merged_shape[2:])
            plan = self._layout.layers[index]
            if plan.block_start is None:
                continue
            block_shape = walk[plan.block_start][0]
            if not self._layout.projects_shortcut(
                block_shape[2:], merged_shape[2:]
            ):
                continue
            conv = layers.Conv2D(
                merged_shape[-1],
                1,
                strides=plan.shortcut_strides,
                padding="same",
                use_bias=not self.batch_norm,
                name=f"shortcut_{index + 1}",
                dtype=self.dtype_policy,
            )
            conv.build((None,) + block_shape[2:])
            shortcut_convs[index] = conv
            if self.batch_norm:
                norm = layers.BatchNormalization(
                    name=f"shortcut_batch_norm_{index + 1}",
                    dtype=self.dtype_policy,
                )
                norm.build((None,) + merged_shape[2:])
                shortcut_norms[index] = norm
        # Assigned whole: Keras tracks the layers in a list when it is set.
        self.shortcut_convs = shortcut_convs
        self.shortcut_norms = shortcut_norms
        self.built = True

    def _normalize(self, norm, sequences, frame_mask, training):
        def normalize(frames):
            mask = None
            if frame_mask is not None:
                mask = ops.broadcast_to(
                    ops.reshape(frame_mask, (-1, 1, 1)), ops.shape(frames)[:3]
                )
            return norm(frames, training=training, mask=mask)

        return apply_per_frame(normalize, sequences)

    def _project_shortcut(self, index, sequences, frame_mask, training):
        outputs = apply_per_frame(self.shortcut_convs[index], sequences)
        if self.shortcut_norms[index] is not None:
            outputs = self._normalize(
                self.shortcut_norms[index], outputs, frame_mask, training
            )
        if self.shortcut == "conv":
            outputs = activations.relu(outputs)
        return outputs

    def call(
        self,
        sequences,
        initial_state=None,
        mask=None,
        training=None,
        return_state=None,
    ):
        if initial_state is not None and len(initial_state) != self.depth:
            raise ValueError(
                f"`initial_state` of layer '{self.name}' must hold one list of "
                f"states per layer ({self.depth}). Received: "
                f"{len(initial_state)} entries"
            )
        frame_mask = None if mask is None else ops.reshape(mask, (-1,))
        block_inputs = []
        final_states = []
        outputs = sequences
        for index, layer in enumerate(self.recurrent_layers):
            block_inputs.append(outputs)
            outputs, *states = layer(
                outputs,
                initial_state=None
                if initial_state is None
                else initial_state[index],
                mask=mask,
                training=training,
            )
            final_states.append(states)
            if self.norms[index] is not None:
                outputs = self._normalize(
                    self.norms[index], outputs, frame_mask, training
                )
            start = self._layout.layers[index].block_start
            if start is not None:
                residual = block_inputs[start]
                if self.shortcut_convs[index] is not None:
                    residual = self._project_shortcut(
                        index, residual, frame_mask, training
                    )
                outputs = outputs + residual
            if self.pools[index] is not None:
                outputs = apply_per_frame(self.pools[index], outputs)
        if self.return_state if return_state is None else return_state:
            return outputs, final_states
        return outputs

    def _output_shape(self, sequences_shape, return_state):
        walk = self._walk_shapes(sequences_shape)
        outputs_shape = walk[-1][2]
        if return_state:
            return outputs_shape, [list(states) for *_, states in walk]
        return outputs_shape

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        return self._output_shape(sequences_shape, self.return_state)

    def compute_output_spec(
        self,
        sequences,
        initial_state=None,
        mask=None,
        training=None,
        return_state=None,
    ):
        # Keras passes only tensor shapes to `compute_output_shape`; the
        # call's `return_state` changes the output structure.
        shapes = self._output_shape(
            sequences.shape,
            self.return_state if return_state is None else return_state,
        )
        return keras.tree.map_shape_structure(
            lambda shape: keras.KerasTensor(shape, dtype=self.compute_dtype),
            shapes,
        )

    def compute_mask(self, sequences, mask=None):
        if self.return_state:
            return mask, None
        return mask

    @property
    def shortcut_count(self):
        """The number of residual shortcuts: `depth // jump_stride`."""
        return len(self._layout.blocks)

    def get_config(self):
        return {
            **super().get_config(),
            "depth": self.depth,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "jump_stride": self.jump_stride,
            "shortcut": self.shortcut,
            "pool_after": self.pool_after,
            "temporal_dropout": self.temporal_dropout,
            "merge": self.merge,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(
                self.recurrent_activation
            ),
            "temporal_gate": self.temporal_gate,
            "batch_norm": self.batch_norm,
            "layer_type": self.layer_type,
            "kernel_initializer": initializers.serialize(
                self.kernel_initializer
            ),
            "recurrent_initializer": initializers.serialize(
                self.recurrent_initializer
            ),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "seed": self.seed,
            "return_state": self.return_state,
        }
