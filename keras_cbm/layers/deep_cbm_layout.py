"""The layout of a `DeepCBM` stack, as plain Python: no layers, no tensors.

`plan_layout` checks the stack's layout arguments and expands them into one
record per recurrent layer: its filters, kernel size, strides and Temporal
Dropout rate, whether a max-pool follows it, the block its shortcut closes
and how much the resolution shrinks on the way. `DeepCBM` builds and runs
the plan; the shapes that need its layers' `compute_output_shape` stay
there.
"""

import dataclasses

from keras_cbm.layers.temporal_dropout import check_rate

SHORTCUTS = ("auto", "conv")


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    """One recurrent layer of a `DeepCBM` stack and what follows it.

    Attributes:
        filters: Positive integer, the layer's filters.
        kernel_size: Positive integer, the side of its square kernels.
        strides: Positive integer, the strides of its input convolutions.
        temporal_dropout: Float in `[0, 1]`, its Temporal Dropout rate.
        pool: Whether a 2x2 max-pool of stride 2 follows the layer (after
            its shortcut).
        downsampling: How many times smaller the layer's input rows and
            cols are than the stack's, rounded up: with `"same"` padding
            every reduction is a ceiling division, and those compose.
        block_start: The index (from 0) of the first layer of the block
            whose shortcut this layer closes, or `None`.
        shortcut_strides: With `block_start`, the downsampling from the
            block's input to this layer's output (before its pool): the
            strides of a 1x1 convolution shortcut. Otherwise `None`.
    """

    filters: int
    kernel_size: int
    strides: int
    temporal_dropout: float
    pool: bool
    downsampling: int
    block_start: int | None = None
    shortcut_strides: int | None = None


@dataclasses.dataclass(frozen=True)
class DeepCBMLayout:
    """The layout of a `DeepCBM` stack, made by `plan_layout`.

    Attributes:
        layers: One `LayerPlan` per recurrent layer, from the input up.
        shortcut: `"auto"` (identity unless the shape changes) or `"conv"`
            (always a 1x1 convolution).
    """

    layers: tuple[LayerPlan, ...]
    shortcut: str

    @property
    def depth(self):
        """The number of recurrent layers."""
        return len(self.layers)

    @property
    def blocks(self):
        """`(first, last)` layer indices (from 0) of each residual block."""
        return tuple(
            (layer.block_start, index)
            for index, layer in enumerate(self.layers)
            if layer.block_start is not None
        )

    @property
    def output_downsampling(self):
        """How many times smaller the stack's output rows and cols are."""
        last = self.layers[-1]
        return last.downsampling * last.strides * (2 if last.pool else 1)

    def projects_shortcut(self, block_input_shape, output_shape):
        """Whether a block's shortcut is a convolution.

        Args:
            block_input_shape: `(rows, cols, channels)` of the block's
                input frames.
            output_shape: `(rows, cols, channels)` of the layer's output
                frames, before its pool: the output of the layer that
                closes the block.

        Returns:
            `True` with `shortcut="conv"` or where the shape changes, so
            that the identity cannot be added.
        """
        return self.shortcut == "conv" or tuple(block_input_shape) != tuple(
            output_shape
        )


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer or a list of them. "
            f"Received: {name} holding {value!r}"
        )


def _per_layer(name, value, depth, check):
    """`value` for every layer: a list of `depth` checked items, or one."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1:
        values = values * depth
    if len(values) != depth:
        raise ValueError(
            f"`{name}` must be one value or a list of `depth={depth}` "
            f"values. Received: {name}={value!r} ({len(values)} values)"
        )
    for item in values:
        check(name, item)
    return values


def plan_layout(
    depth,
    filters,
    kernel_size=3,
    strides=1,
    jump_stride=None,
    shortcut="auto",
    pool_after=(),
    temporal_dropout=0.0,
):
    """Checks `DeepCBM`'s layout arguments and plans its layers.

    Residual shortcuts span `jump_stride` layers, counted from the top, so
    the first `depth % jump_stride` layers form a stem without shortcut.

    Args:
        depth: Positive integer, the number of recurrent layers.
        filters: Positive integer, or a list of `depth` of them.
        kernel_size: Positive integer, or a list of `depth` of them.
        strides: Positive integer, or a list of `depth` of them.
        jump_stride: Positive integer, the layers spanned by a shortcut, or
            `None` for no shortcuts.
        shortcut: `"auto"` or `"conv"`, see `DeepCBMLayout`.
        pool_after: Layer indices in `[1, depth]` followed by max-pooling.
        temporal_dropout: Rate in `[0, 1]`, or a list of `depth` rates.

    Returns:
        A `DeepCBMLayout`.

    Raises:
        ValueError: naming the argument, what it must be and what it got.

    Example:

    >>> layout = plan_layout(depth=5, filters=8, jump_stride=2,
    ...                      strides=[2, 1, 1, 2, 1])
    >>> layout.blocks
    ((1, 2), (3, 4))
    >>> [layer.shortcut_strides for layer in layout.layers]
    [None, None, 1, None, 2]
    """
    _check_positive_int("depth", depth)
    if jump_stride is not None:
        _check_positive_int("jump_stride", jump_stride)
    if shortcut not in SHORTCUTS:
        raise ValueError(
            f"`shortcut` must be one of {SHORTCUTS}. "
            f"Received: shortcut={shortcut!r}"
        )
    pools = tuple(pool_after)
    if not all(
        isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= depth
        for i in pools
    ):
        raise ValueError(
            f"`pool_after` must hold layer indices in [1, depth={depth}]. "
            f"Received: pool_after={pool_after!r}"
        )
    layer_filters = _per_layer("filters", filters, depth, _check_positive_int)
    kernel_sizes = _per_layer(
        "kernel_size", kernel_size, depth, _check_positive_int
    )
    layer_strides = _per_layer("strides", strides, depth, _check_positive_int)
    rates = _per_layer("temporal_dropout", temporal_dropout, depth, check_rate)

    # `downsampling[i]` is layer i's input's; the last entry, the output's.
    downsampling = [1]
    for index, stride in enumerate(layer_strides):
        pool = 2 if index + 1 in pools else 1
        downsampling.append(downsampling[-1] * stride * pool)
    stem = depth if jump_stride is None else depth % jump_stride
    layers = []
    for index, (f, k, s, rate) in enumerate(
        zip(layer_filters, kernel_sizes, layer_strides, rates, strict=True)
    ):
        start = shortcut_strides = None
        if index >= stem and (index + 1 - stem) % jump_stride == 0:
            start = index + 1 - jump_stride
            shortcut_strides = downsampling[index] * s // downsampling[start]
        layers.append(
            LayerPlan(
                filters=f,
                kernel_size=k,
                strides=s,
                temporal_dropout=rate,
                pool=index + 1 in pools,
                downsampling=downsampling[index],
                block_start=start,
                shortcut_strides=shortcut_strides,
            )
        )
    return DeepCBMLayout(layers=tuple(layers), shortcut=shortcut)
