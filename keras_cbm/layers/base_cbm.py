"""What the dense and the convolutional CBM share: the cell equations, Temporal
Dropout, the weight layout, and the layer's time-batched input path."""

import collections
import functools
import operator

import numpy as np
from keras import activations
from keras import constraints
from keras import initializers
from keras import layers
from keras import ops
from keras import random
from keras import regularizers

from keras_cbm.keras_internals import DropoutRNNCell
from keras_cbm.keras_internals import recurrent_loop
from keras_cbm.layers.temporal_dropout import check_rate
from keras_cbm.layers.temporal_dropout import sample_gradient_gate
from keras_cbm.layers.temporal_dropout import temporal_dropout

MERGES = ("multiply", "add", "concat")
# `None`: the paper's T; "input": T leaks at a rate read from the frame;
# "recurrent": from the frame and `c_{t-1}`, as a GRU's update gate.
TEMPORAL_GATES = (None, "input", "recurrent")
# What `batch_norm` normalises: nothing, R's and T's input terms, R's only
# or T's only.
BATCH_NORMS = (False, True, "representation", "temporal")


class CellArgument(collections.namedtuple("CellArgument", "name kind default")):
    """An argument of every CBM cell, passed through by the layers.

    `kind` says how the argument is read and written in a config: one of
    `"activation"`, `"initializer"`, `"regularizer"`, `"constraint"` (through
    `keras.activations.get` / `serialize`, etc.) or `"plain"` (as given).
    """

    def get(self, value):
        """The attribute the cell keeps for `value`."""
        return value if self.kind == "plain" else _KINDS[self.kind].get(value)

    def serialize(self, value):
        """The config entry of the attribute `value`."""
        if self.kind == "plain":
            return value
        return _KINDS[self.kind].serialize(value)


_KINDS = {
    "activation": activations,
    "initializer": initializers,
    "regularizer": regularizers,
    "constraint": constraints,
}
# The one list of these arguments: the cells' constructors and configs, the
# layers' pass-through, configs and properties are all made from it.
CELL_ARGUMENTS = (
    CellArgument("activation", "activation", "tanh"),
    CellArgument("recurrent_activation", "activation", "tanh"),
    CellArgument("use_bias", "plain", True),
    CellArgument("kernel_initializer", "initializer", "glorot_uniform"),
    CellArgument("recurrent_initializer", "initializer", "orthogonal"),
    CellArgument("bias_initializer", "initializer", "zeros"),
    CellArgument("kernel_regularizer", "regularizer", None),
    CellArgument("recurrent_regularizer", "regularizer", None),
    CellArgument("bias_regularizer", "regularizer", None),
    CellArgument("kernel_constraint", "constraint", None),
    CellArgument("recurrent_constraint", "constraint", None),
    CellArgument("bias_constraint", "constraint", None),
    CellArgument("dropout", "plain", 0.0),
    CellArgument("recurrent_dropout", "plain", 0.0),
    CellArgument("temporal_dropout", "plain", 0.0),
    CellArgument("merge", "plain", "add"),
    CellArgument("batch_norm", "plain", False),
    CellArgument("temporal_gate", "plain", "recurrent"),
    CellArgument("seed", "plain", None),
)
PAPER_CELL = {
    "temporal_gate": None,
    "recurrent_activation": "sigmoid",
    "merge": "multiply",
}
"""The paper's cell, as keyword arguments of every CBM layer, cell,
`DeepCBM` and model builder: `ConvCBM2D(16, 3, **PAPER_CELL)`. The defaults
differ from it where the paper's T cannot remember (README, "Design
decisions")."""
# With `temporal_gate`, T's channels start leaking at these rates per frame,
# spread geometrically: time scales from about 1 to 50 frames.
GATE_RATES = (0.02, 0.9)


def gate_rate_logits(units):
    """`b_a`'s initial value: `log(a / (1 - a))` for `units` rates `a`
    spread geometrically over `GATE_RATES`, as a float64 NumPy array."""
    rates = np.geomspace(*GATE_RATES, units)
    return np.log(rates / (1.0 - rates))


def check_units(name, value):
    """Returns `value` as a Python int, or raises `ValueError` unless it is
    a positive integer (Python or NumPy, or a 0-d integer array)."""
    try:
        units = operator.index(value)
    except TypeError:
        units = None
    if isinstance(value, bool) or units is None or units <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return units


def check_choice(name, value, choices):
    """Returns `value`, or raises `ValueError` unless it is one of `choices`
    (`None` or strings; `True`, `1` and the like are not `None`)."""
    if not (
        (value is None and None in choices)
        or (isinstance(value, str) and value in choices)
    ):
        raise ValueError(
            f"`{name}` must be one of {choices}. Received: {name}={value!r}"
        )
    return value


class BaseCBMCell(layers.Layer, DropoutRNNCell):
    """Context Bridge Module step, independent of how inputs are projected.

    The paper's step (`temporal_gate=None`) is

        r_t = activation(W_R * x_t + b_R)
        c_t = recurrent_activation(W_T * td(x_t) + U_T * c_{t-1} + b_T)
        h_t = merge(r_t, c_t)

    where `*` is `_project_input` / `_project_state` (a matrix product or a
    convolution, defined by subclasses) and `td` is Temporal Dropout. The
    state is `c`. Weights: `kernel` (input channels, 2 * units) holding
    `[W_R, W_T]` along its last axis, `recurrent_kernel` (units, units) =
    `U_T`, `bias` (2 * units,) = `[b_R, b_T]`; convolutional cells prefix
    the kernel shapes with `kernel_size`.

    This T forgets within a few frames: every step multiplies the gradient
    that reaches back through `c` by `sigmoid'(.) U_T`, at most about 1/4
    at the default initialisation (`sigmoid' <= 1/4`), so a frame 5 steps
    back gets ~1e-5 of the last frame's gradient
    (`studies/memory_tasks.md`). `temporal_gate` (`"recurrent"` by
    default) makes T leak at a gated rate `a_t`:

        c_t = c_{t-1} + a_t (recurrent_activation(W_T * td(x_t)
                             + U_T * c_{t-1} + b_T) - c_{t-1})
        a_t = sigmoid(W_a * td(x_t) + b_a)                  # "input"
        a_t = sigmoid(W_a * td(x_t) + U_a * c_{t-1} + b_a)  # "recurrent"

    (products with `a_t` element-wise), so a closed gate keeps `c` and its
    gradient. `kernel` gets a third block `W_a` (`3 * units` outputs:
    `[W_R, W_T, W_a]`) and `bias` a third part `b_a`, which starts at the
    logits of rates spread geometrically over `GATE_RATES` (0.02 to 0.9)
    across channels, i.e. time scales of about 1 to 50 frames, whatever
    `bias_initializer` (which initialises `[b_R, b_T]`); without `use_bias`
    the gate has no bias. `W_a * td(x_t)` joins T's input term in the
    time-batched projection. With `"recurrent"`, `recurrent_kernel` is
    `(units, 2 * units)` = `[U_T, U_a]`, as Keras' LSTM keeps its gates in
    one kernel: the loop still runs one product of `c_{t-1}` per step
    (recurrent dropout thins its input, as in Keras' GRU), and the state
    is still `c`. The defaults, `temporal_gate="recurrent"`,
    `recurrent_activation="tanh"`, `merge="add"`, are the setting measured
    best (`studies/memory_tasks.md`); `PAPER_CELL` holds the paper's.

    Temporal Dropout draws one gate per layer call: `keras.layers.RNN`
    primes it (with the dropout masks) before its loop, and it is cached
    until the layer resets the masks after the loop. A cell called by hand
    keeps its gate until `reset_dropout_mask()`, like its dropout masks.

    Args:
        units: Positive integer, the number of output channels of R and T.
        units_name: The argument name `units` has in the subclass
            (`"units"` or `"filters"`), used in error messages.
        merge: One of `"add"` (`h = r + c`), `"multiply"` (`h = r * c`) or
            `"concat"` (`h = [r, c]` on the channel axis, 2 * units).
        temporal_dropout: Float in [0, 1], the probability that a training
            call blocks back-propagation from T into the cell input (the
            gate's path included: the gate is part of T).
        temporal_gate: `"recurrent"`, `"input"` (T leaks at the rate `a_t`
            above) or `None` (the paper's rewrite of `c` at every step).
        Other arguments: as in `keras.layers.LSTMCell`, plus `batch_norm`;
            `CELL_ARGUMENTS` lists them with their defaults.
    """

    def __init__(self, units, units_name, **kwargs):
        arguments = {
            argument.name: kwargs.pop(argument.name, argument.default)
            for argument in CELL_ARGUMENTS
        }
        super().__init__(**kwargs)
        self.units = check_units(units_name, units)
        check_choice("merge", arguments["merge"], MERGES)
        check_choice(
            "temporal_gate", arguments["temporal_gate"], TEMPORAL_GATES
        )
        if isinstance(arguments["batch_norm"], str):
            check_choice("batch_norm", arguments["batch_norm"], BATCH_NORMS)
        else:
            arguments["batch_norm"] = bool(arguments["batch_norm"])
        for name in ("dropout", "recurrent_dropout", "temporal_dropout"):
            check_rate(name, arguments[name])
        for argument in CELL_ARGUMENTS:
            setattr(self, argument.name, argument.get(arguments[argument.name]))
        self.seed_generator = random.SeedGenerator(seed=self.seed)
        self._gradient_gate = None

    # Subclasses define the geometry; axes count from the end.
    channel_axis = -1

    def _project_input(self, inputs, kernel):
        raise NotImplementedError

    def _project_state(self, state, kernel):
        raise NotImplementedError

    def _build_weights(self, kernel_prefix, input_dim, projection_shape):
        self.input_dim = input_dim
        gated = self.temporal_gate is not None
        projected_units = (3 if gated else 2) * self.units
        # "recurrent": `[U_T, U_a]`, one projection of `c_{t-1}` per step.
        recurrent_blocks = 2 if self.temporal_gate == "recurrent" else 1
        self.kernel = self.add_weight(
            shape=kernel_prefix + (input_dim, projected_units),
            initializer=self.kernel_initializer,
            name="kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=kernel_prefix + (self.units, recurrent_blocks * self.units),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            bias_initializer = self.bias_initializer
            if gated:
                # As LSTMCell's `unit_forget_bias`: a build-time closure,
                # not part of the config, which keeps `bias_initializer`.
                def bias_initializer(_, *args, **kwargs):
                    flows = self.bias_initializer(
                        (2 * self.units,), *args, **kwargs
                    )
                    gate = ops.cast(gate_rate_logits(self.units), flows.dtype)
                    return ops.concatenate([flows, gate])

            self.bias = self.add_weight(
                shape=(projected_units,),
                initializer=bias_initializer,
                name="bias",
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        # Made here: the channel axis is known once subclasses set it.
        self.representation_norm, self.temporal_norm = (
            self._batch_norm(name, projection_shape)
            if self.batch_norm and self.batch_norm != skipped_by
            else None
            for name, skipped_by in (
                ("representation_batch_norm", "temporal"),
                ("temporal_batch_norm", "representation"),
            )
        )

    def _batch_norm(self, name, projection_shape):
        """A built `BatchNormalization` of the channels."""
        norm = layers.BatchNormalization(
            axis=self.channel_axis, name=name, dtype=self.dtype_policy
        )
        norm.build(projection_shape)
        return norm

    @property
    def output_units(self):
        """Channels of `h`: `2 * units` for `merge="concat"`, else `units`."""
        return 2 * self.units if self.merge == "concat" else self.units

    def get_dropout_mask(self, step_input):
        # `keras.layers.RNN` calls this once before its loop, outside any
        # (stateless) loop body: the place to make this call's TD draw too.
        self.get_gradient_gate()
        return super().get_dropout_mask(step_input)

    def reset_dropout_mask(self):
        super().reset_dropout_mask()
        self._gradient_gate = None

    def get_gradient_gate(self):
        """This call's Temporal Dropout gate (1: T's gradient passes, 0: not).

        Returns:
            A float32 scalar tensor, or `None` when `temporal_dropout == 0`.
        """
        if self._gradient_gate is None and self.temporal_dropout > 0:
            self._gradient_gate = sample_gradient_gate(
                self.temporal_dropout, self.seed_generator
            )
        return self._gradient_gate

    def input_dropout_mask(self, step_input, training):
        """The cached input dropout mask when it applies, else `None`."""
        if training and 0.0 < self.dropout < 1.0:
            return self.get_dropout_mask(step_input)
        return None

    def project_inputs(self, inputs, training=False, frame_mask=None):
        """Computes R's output and T's input term; no recurrence involved.

        Args:
            inputs: One step of input, or many steps folded into the batch.
            training: Whether Temporal Dropout applies and batch
                normalisation uses (and updates) batch statistics.
            frame_mask: Optional boolean `(frames,)`: the frames that count
                in the batch statistics.

        Returns:
            `(representation, temporal_input)`: `r = act(W_R * x + b_R)` and
            `W_T * td(x) + b_T`, each batch-normalised with `batch_norm`;
            with `temporal_gate`, `temporal_input` is followed on the
            channel axis by the gate's pre-activation `W_a * td(x) + b_a`
            (never normalised).
        """
        # Split the small kernel, not the large activations; T's blocks
        # (`[W_T, W_a]` with the gate) stay one projection of `td(x)`.
        kernel_r, kernel_t = ops.split(self.kernel, [self.units], axis=-1)
        representation = self._project_input(inputs, kernel_r)
        temporal_inputs = inputs
        if training and self.temporal_dropout > 0:
            temporal_inputs = temporal_dropout(inputs, self.get_gradient_gate())
        temporal_input = self._project_input(temporal_inputs, kernel_t)
        if self.use_bias:
            bias_r, bias_t = ops.split(self.bias, [self.units])
            representation = self._add_bias(representation, bias_r)
            temporal_input = self._add_bias(temporal_input, bias_t)
        if self.batch_norm and frame_mask is not None:
            frame_mask = self._broadcast_frame_mask(frame_mask, representation)
        if self.representation_norm is not None:
            representation = self.representation_norm(
                representation, training=training, mask=frame_mask
            )
        if self.temporal_norm is not None:
            temporal_input, gate = self._split_gate(temporal_input)
            temporal_input = self.temporal_norm(
                temporal_input, training=training, mask=frame_mask
            )
            if gate is not None:
                temporal_input = ops.concatenate(
                    [temporal_input, gate], axis=self.channel_axis
                )
        return self.activation(representation), temporal_input

    def _split_gate(self, temporal_input):
        """`(T's input term, the gate's pre-activation or None)`."""
        if self.temporal_gate is None:
            return temporal_input, None
        return tuple(ops.split(temporal_input, 2, axis=self.channel_axis))

    def _broadcast_frame_mask(self, frame_mask, projection):
        # BatchNormalization wants a mask of every axis but the channels.
        shape = list(ops.shape(projection))
        del shape[self.channel_axis]
        spatial_rank = len(shape) - 1
        frame_mask = ops.reshape(frame_mask, (-1,) + (1,) * spatial_rank)
        return ops.broadcast_to(frame_mask, shape)

    def temporal_step(self, temporal_input, state, training):
        """Advances T by one step: `c_t` from T's input term (with the
        gate's pre-activation, with `temporal_gate`) and `c_{t-1}`."""
        temporal_input, gate = self._split_gate(temporal_input)
        # Dropout thins what U_T (and U_a) read, as in Keras' GRU; the leak
        # keeps the whole c_{t-1}.
        dropped_state = state
        if training and 0.0 < self.recurrent_dropout < 1.0:
            dropped_state = state * self.get_recurrent_dropout_mask(state)
        recurrent_term = self._project_state(
            dropped_state, self.recurrent_kernel
        )
        if self.temporal_gate == "recurrent":
            recurrent_term, gate_term = ops.split(
                recurrent_term, 2, axis=self.channel_axis
            )
            gate = gate + gate_term
        candidate = self.recurrent_activation(temporal_input + recurrent_term)
        if gate is None:
            return candidate
        return state + ops.sigmoid(gate) * (candidate - state)

    def recurrent_step(self, representation, temporal_input, state, training):
        """Advances T by one step and merges it with R.

        Returns:
            `(h_t, [c_t])`.
        """
        new_state = self.temporal_step(temporal_input, state, training)
        return self.merge_flows(representation, new_state), [new_state]

    def call(self, inputs, states, training=False):
        if self.batch_norm:
            raise ValueError(
                "A CBM cell with `batch_norm=True` normalises over all the "
                "frames of a sequence, so it runs only inside its own layer "
                "(e.g. `ConvCBM2D(..., batch_norm=True)`), not step by step "
                "in `keras.layers.RNN`. Received: "
                f"batch_norm={self.batch_norm!r}"
            )
        dropout_mask = self.input_dropout_mask(inputs, training)
        if dropout_mask is not None:
            inputs = inputs * dropout_mask
        representation, temporal_input = self.project_inputs(inputs, training)
        state = states[0] if isinstance(states, (list, tuple)) else states
        return self.recurrent_step(
            representation, temporal_input, state, training
        )

    def _add_bias(self, outputs, bias):
        if self.channel_axis != -1:
            spatial_rank = len(outputs.shape) - 2
            bias = ops.reshape(bias, (-1,) + (1,) * spatial_rank)
        return outputs + bias

    def merge_flows(self, representation, state):
        """The merge unit: `h = merge(r, c)`."""
        if self.merge == "multiply":
            return representation * state
        if self.merge == "add":
            return representation + state
        return ops.concatenate([representation, state], axis=self.channel_axis)

    def cbm_config(self):
        """The constructor arguments shared by every CBM cell and layer."""
        return {
            argument.name: argument.serialize(getattr(self, argument.name))
            for argument in CELL_ARGUMENTS
        }

    def get_config(self):
        return {**super().get_config(), **self.cbm_config()}


def step_mask(mask):
    """The `(batch, time)` mask of the steps that count, or `None`.

    A mask of higher rank (`keras.layers.Masking` before a convolutional
    layer gives `(batch, time, *spatial)`) counts a step where any of its
    positions counts: a padded frame is skipped whole, as the unpadded
    sequence would be.
    """
    if isinstance(mask, (list, tuple)):
        mask = mask[0]
    if mask is None or len(mask.shape) == 2:
        return mask
    return ops.any(
        ops.cast(mask, "bool"), axis=tuple(range(2, len(mask.shape)))
    )


def cell_property(name):
    return property(
        lambda self: getattr(self.cell, name),
        doc=f"The cell's `{name}`.",
    )


class BaseCBM(layers.RNN):
    """A CBM recurrent layer whose input projections are batched over time.

    `keras.layers.RNN` would run the whole cell at every step. Here R and the
    input term of T depend on no earlier step, so they run first as one
    projection over all `batch * time` frames; only `U_T * c` runs inside
    the sequential loop (with the merge, when a mask must hold a masked
    step's output; else the merge runs after the loop). Masking, `go_backwards`,
    `stateful`, `unroll`, `return_state` and `initial_state` behave as in
    `keras.layers.RNN`, with the same outputs and gradients as the cell run
    step by step.

    Args:
        cell_class: A `BaseCBMCell` subclass.
        cell_arguments: Its arguments that are not in `CELL_ARGUMENTS`.
        **kwargs: The arguments of `keras.layers.RNN` and `CELL_ARGUMENTS`
            (each also readable as a layer property).
    """

    def __init__(
        self,
        cell_class,
        cell_arguments,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        shared = {
            argument.name: kwargs.pop(argument.name)
            for argument in CELL_ARGUMENTS
            if argument.name in kwargs
        }
        cell = cell_class(**cell_arguments, **shared, dtype=kwargs.get("dtype"))
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            **kwargs,
        )
        # Keras 3.15's RNN passes its output mask (`compute_mask`) on; the
        # 3.16 nightlies' do not. A CBM layer passes it on in both, as the
        # docs promise masks reach the layers after it.
        self.supports_masking = True

    def build(self, sequences_shape, initial_state_shape=None):
        self._check_sequences_shape(sequences_shape)
        super().build(sequences_shape, initial_state_shape)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        self._check_sequences_shape(sequences.shape)
        if initial_state is not None:
            self._check_initial_state(sequences.shape, initial_state)
        return super().call(
            sequences,
            initial_state=initial_state,
            mask=step_mask(mask),
            training=training,
        )

    def compute_mask(self, sequences, mask):
        return super().compute_mask(sequences, step_mask(mask))

    def _check_initial_state(self, sequences_shape, initial_state):
        step_shape = (sequences_shape[0],) + tuple(sequences_shape[2:])
        expected = tuple(self.cell.state_shape(step_shape))
        if not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        received = [
            tuple(getattr(state, "shape", None) or ops.shape(state))
            for state in initial_state
        ]
        if (
            len(received) == 1
            and len(received[0]) == len(expected)
            and all(
                size in (None, received_size) or received_size is None
                for size, received_size in zip(
                    expected, received[0], strict=True
                )
            )
        ):
            return
        raise ValueError(
            f"`initial_state` of layer '{self.name}' must be a list of one "
            f"state tensor `c` of shape {expected} (None: any size) for "
            f"`sequences` of shape {tuple(sequences_shape)}. Received: "
            f"initial_state with shapes {received}"
        )

    def _check_sequences_shape(self, shape):
        step_ndim = self.cell.step_ndim
        if len(shape) != step_ndim + 1:
            raise ValueError(
                f"`sequences` of layer '{self.name}' must have rank "
                f"{step_ndim + 1}, {self.cell.step_layout}. Received: "
                f"sequences.shape={tuple(shape)}"
            )
        channels = shape[self.cell.channel_axis]
        if channels is None:
            raise ValueError(
                f"The channel axis of `sequences` of layer '{self.name}' "
                f"must be defined. Received: sequences.shape={tuple(shape)}"
            )
        if self.cell.built and channels != self.cell.input_dim:
            raise ValueError(
                f"`sequences` of layer '{self.name}' must have "
                f"{self.cell.input_dim} channels, as when the layer was built. "
                f"Received: sequences.shape={tuple(shape)} with {channels}"
            )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        dropout_mask = cell.input_dropout_mask(sequences[:, 0], training)
        if dropout_mask is not None:
            sequences = sequences * ops.expand_dims(dropout_mask, 1)

        # Time-major from here on: one transpose of the input rather than
        # the loop's transposes of both projections.
        batch_size, steps = ops.shape(sequences)[:2]
        frames = ops.reshape(
            ops.swapaxes(sequences, 0, 1), (-1,) + tuple(sequences.shape[2:])
        )
        frame_mask = None
        if mask is not None:
            frame_mask = ops.reshape(ops.swapaxes(mask, 0, 1), (-1,))
        representation, temporal_input = [
            # The batch size, not -1: a static batch must stay static for
            # the loop, whose initial state has it (TensorFlow's while loop
            # refuses a state whose shape loosens after one step).
            ops.reshape(p, (steps, batch_size) + tuple(p.shape[1:]))
            for p in cell.project_inputs(frames, training, frame_mask)
        ]
        if mask is None:
            loop = self._unmasked_loop
        else:
            loop = functools.partial(self._masked_loop, mask=mask)
        last_output, outputs, states = loop(
            representation, temporal_input, list(initial_state), training
        )
        return last_output, ops.swapaxes(outputs, 0, 1), states

    def _unmasked_loop(self, representation, temporal_input, states, training):
        cell = self.cell

        def step(inputs, states):
            state = cell.temporal_step(inputs[0], states[0], training)
            return state, [state]

        last_state, all_states, states = recurrent_loop(
            step,
            (temporal_input,),
            states,
            go_backwards=self.go_backwards,
            unroll=self.unroll,
            return_all_outputs=self.return_sequences,
        )
        # R joins T after the loop, for all frames at once. The loop ran
        # (and returns its outputs) in reverse order with `go_backwards`.
        last_output = cell.merge_flows(
            representation[0 if self.go_backwards else -1], last_state
        )
        if not self.return_sequences:
            return last_output, ops.expand_dims(last_output, 0), states
        if self.go_backwards:
            representation = ops.flip(representation, axis=0)
        return last_output, cell.merge_flows(representation, all_states), states

    def _masked_loop(
        self, representation, temporal_input, states, training, mask
    ):
        # Masking is done here rather than by the backend loop, whose JAX
        # version takes the first state (`c`) for the last output. A masked
        # step keeps `c` and repeats the last output, as in Keras' RNNs.
        cell = self.cell
        keep_steps = ops.expand_dims(
            ops.swapaxes(ops.cast(mask, "bool"), 0, 1), -1
        )
        first_output = cell.merge_flows(representation[0], states[0])
        states = states + [ops.zeros_like(first_output)]

        def step(inputs, states):
            representation, temporal_input, keep = inputs
            output, (new_state,) = cell.recurrent_step(
                representation, temporal_input, states[0], training
            )
            keep = ops.reshape(keep, (-1,) + (1,) * (len(output.shape) - 1))
            previous_output = states[1]
            if self.zero_output_for_mask:
                previous_output = ops.zeros_like(output)
            output = ops.where(keep, output, previous_output)
            return output, [ops.where(keep, new_state, states[0]), output]

        last_output, outputs, states = recurrent_loop(
            step,
            (representation, temporal_input, keep_steps),
            states,
            go_backwards=self.go_backwards,
            unroll=self.unroll,
            return_all_outputs=self.return_sequences,
        )
        return last_output, outputs, states[:1]

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        return {**config, **self.cell.cbm_config()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


for _argument in CELL_ARGUMENTS:
    setattr(BaseCBM, _argument.name, cell_property(_argument.name))
