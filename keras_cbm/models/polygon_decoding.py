"""Greedy decoding of `polygon_rnn` models in one traced step loop, from
the decoder's recurrent states, continuing from fixed vertices."""

import keras
import numpy as np
from keras import ops

from keras_cbm.models.polygon_rnn import end_token
from keras_cbm.models.recurrent_states import RecurrentStates


def polygon_parts(model):
    """`(encoder, first_vertex, decoder, grid_size)` of a `polygon_rnn`
    model; `ValueError` for another model."""
    try:
        parts = [model.get_layer(name) for name in PARTS]
    except ValueError:
        raise ValueError(
            "`model` must be a `keras_cbm.models.polygon_rnn` model, with "
            f"the sub-models {PARTS}. Received: model='{model.name}'"
        ) from None
    grid_size = parts[0].outputs[0].shape[1]
    return (*parts, grid_size)


PARTS = ("encoder", "first_vertex", "decoder")


def check_decode_inputs(model, image, fixed_vertices, max_vertices=None):
    """Raises `ValueError` naming `image` or `fixed_vertices` where they do
    not fit `model` (values are checked when they are concrete)."""
    encoder, _, _, grid_size = polygon_parts(model)
    expected = tuple(encoder.inputs[0].shape[1:])
    if len(image.shape) != 4 or tuple(image.shape[1:]) != expected:
        raise ValueError(
            f"`image` must have shape (batch, {', '.join(map(str, expected))})"
            f". Received: image.shape={tuple(image.shape)}"
        )
    if fixed_vertices is None:
        return
    shape = tuple(fixed_vertices.shape)
    if len(shape) != 3 or shape[2] != 2:
        raise ValueError(
            "`fixed_vertices` must have shape (batch, k, 2), (row, col) grid "
            f"cells. Received: fixed_vertices.shape={shape}"
        )
    if max_vertices is not None and shape[1] is not None:
        if shape[1] > max_vertices:
            raise ValueError(
                f"`fixed_vertices` must hold at most max_vertices="
                f"{max_vertices} vertices a row. Received: "
                f"fixed_vertices.shape={shape}"
            )
    if isinstance(fixed_vertices, np.ndarray):
        off = ~np.all(fixed_vertices == -1, axis=-1) & np.any(
            (fixed_vertices < 0) | (fixed_vertices >= grid_size), axis=-1
        )
        if np.any(off):
            where = tuple(int(i) for i in np.argwhere(off)[0])
            raise ValueError(
                f"`fixed_vertices` must be cells in [0, {grid_size}) (or "
                f"(-1, -1) after a row's last fixed vertex). Received: "
                f"fixed_vertices{list(where)}="
                f"{fixed_vertices[where].tolist()}"
            )


def decode_polygons(model, image, fixed_vertices=None, max_vertices=20):
    """Traces polygons greedily, continuing from fixed vertices.

    Step 0 takes the first-vertex head's best cell, every later step the
    decoder's best token given the two tokens before it and the first,
    until every polygon has ended or `max_vertices` vertices are drawn. A
    row's first `k` steps take its fixed vertices instead (a person's
    corrections); the decoder continues from them. The decoder runs one
    step at a time from its recurrent states (`RecurrentStates`) inside
    one `keras.ops.while_loop`, so a traced decode's graph does not depend
    on the polygon's length. Fed a polygon's true vertices, the logits are
    those of the teacher-forced model.

    Args:
        model: A `keras_cbm.models.polygon_rnn` model.
        image: Float images `(batch, rows, cols, 3)` in [0, 1], the model's
            image size.
        fixed_vertices: Optional integer `(batch, k, 2)` `(row, col)` cells,
            each row's fixed vertices first, then `(-1, -1)` rows.
        max_vertices: The most vertices of a polygon (a Python integer).

    Returns:
        A dict: `"vertices"` `(batch, max_vertices, 2)` int32, `-1` after a
        polygon's last vertex; `"num_vertices"` `(batch,)`; `"tokens"`
        `(batch, max_vertices + 1)` (the end token after the last vertex);
        `"logits"` `(batch, max_vertices + 1, grid ** 2 + 1)`, zeros after
        the loop stopped.

    Raises:
        ValueError: For an `image` of the wrong size or a fixed vertex off
            the grid (when the values are concrete), naming them.
    """
    if not isinstance(image, np.ndarray) and not hasattr(image, "shape"):
        image = np.asarray(image, "float32")
    if fixed_vertices is not None and not hasattr(fixed_vertices, "shape"):
        fixed_vertices = np.asarray(fixed_vertices, "int32")
    check_decode_inputs(model, image, fixed_vertices, max_vertices)
    encoder, first_vertex, decoder, grid = polygon_parts(model)
    end = end_token(grid)
    steps = max_vertices + 1
    image = ops.convert_to_tensor(image, encoder.inputs[0].dtype)
    batch = ops.shape(image)[0]
    if fixed_vertices is None:
        fixed_vertices = ops.zeros((batch, 0, 2), "int32")
    fixed_vertices = ops.cast(fixed_vertices, "int32")
    fixed_tokens = fixed_vertices[..., 0] * grid + fixed_vertices[..., 1]
    fixed_count = ops.sum(
        ops.cumprod(ops.cast(fixed_vertices[..., 0] >= 0, "int32"), axis=1),
        axis=1,
    )
    # Fixed tokens padded to every step, so that step `s` reads its own.
    fixed_tokens = ops.concatenate(
        [fixed_tokens, ops.full((batch, steps), end, "int32")], axis=1
    )[:, :steps]
    positions = ops.arange(steps, dtype="int32")

    def choose(step, logits, done):
        """The token of `step`: fixed, else the best (a cell at step 0,
        the end token at the last step and after a polygon's end)."""
        if isinstance(step, int) and step == 0:
            best = ops.argmax(logits[:, :end], axis=-1)
        else:
            best = ops.argmax(logits, axis=-1)
        best = ops.where(done, end, ops.cast(best, "int32"))
        best = ops.where(step >= max_vertices, end, best)
        fixed = ops.take(fixed_tokens, step, axis=1)
        return ops.where(step < fixed_count, fixed, best)

    def write(buffer, step, values):
        at = ops.reshape(
            positions == step, (1, steps) + (1,) * (len(buffer.shape) - 2)
        )
        return ops.where(at, ops.expand_dims(values, 1), buffer)

    features = encoder(image, training=False)
    first_logits = first_vertex(features, training=False)[:, 0]
    not_done = ops.zeros((batch,), "bool")
    first = choose(0, first_logits, not_done)
    tokens = write(ops.full((batch, steps), end, "int32"), 0, first)
    all_logits = write(
        ops.zeros((batch, steps, end + 1), first_logits.dtype), 0, first_logits
    )
    run = RecurrentStates(decoder)

    def decode_step(previous, before, states):
        vertex_inputs = ops.stack([previous, before, first], axis=-1)
        # The CBM layers draw a Temporal Dropout gate at every call, even
        # in inference: its seed generator's update must not leave a JAX
        # loop body (nothing of it is used outside training).
        with keras.StatelessScope():
            logits, states = run(
                [features, vertex_inputs[:, None]],
                initial_states=states,
                training=False,
            )
        return logits[:, 0], states

    # Step 1 outside the loop: it makes the states the loop carries.
    logits, states = decode_step(first, ops.full_like(first, end), None)
    token = choose(1, logits, not_done)
    tokens = write(tokens, 1, token)
    all_logits = write(all_logits, 1, logits)

    def condition(step, tokens, all_logits, previous, before, states):
        return (step < steps) & ops.logical_not(ops.all(previous == end))

    def body(step, tokens, all_logits, previous, before, states):
        logits, states = decode_step(previous, before, states)
        token = choose(step, logits, previous == end)
        return (
            step + 1,
            write(tokens, step, token),
            write(all_logits, step, logits),
            token,
            previous,
            states,
        )

    _, tokens, all_logits, *_ = ops.while_loop(
        condition,
        body,
        (
            ops.convert_to_tensor(2, "int32"),
            tokens,
            all_logits,
            token,
            first,
            states,
        ),
    )
    is_vertex = tokens[:, :max_vertices] != end
    vertices = ops.stack(
        [tokens[:, :max_vertices] // grid, tokens[:, :max_vertices] % grid],
        axis=-1,
    )
    return {
        "vertices": ops.where(is_vertex[..., None], vertices, -1),
        "num_vertices": ops.sum(ops.cast(is_vertex, "int32"), axis=1),
        "tokens": tokens,
        "logits": all_logits,
    }
