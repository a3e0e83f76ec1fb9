"""State handover between the clips of a video: a clip starts from the
recurrent states the model reaches at the frame before its start, from an
earlier clip of the video (`donor_states`, the paper's donor handover) or
from a run over the video's whole past (`whole_past_states`).

Both are inference runs of the model, gradient cut, in a symbolic loop
whose body is traced once (`keras.ops.fori_loop`), so the traced graph does
not grow with the clips per video or the frames of the past; the clips'
own runs then run side by side from the states, as without handover."""

import math

import keras
from keras import ops

from keras_cbm.training.variable_values import current_values
from keras_cbm.training.variable_values import fori_loop_with_values
from keras_cbm.training.variable_values import run_with_values

# Sorts after every frame index: an empty clip starts nowhere.
_NO_START = 2**30


def clip_starts(alignment):
    """The first frame of every clip, `(batch, clips)`; empty clips sort
    last.

    Args:
        alignment: Integer tensor `(batch, clips, steps)`, absolute frame
            indices, -1 on padding.
    """
    return ops.min(ops.where(alignment >= 0, alignment, _NO_START), axis=-1)


def take_clips(values, indices):
    """`values[b, indices[b, k]]` for `values` `(batch, clips, ...)` and
    integer `indices` `(batch, k)`."""
    indices = ops.reshape(
        indices, tuple(ops.shape(indices)) + (1,) * (len(values.shape) - 2)
    )
    return ops.take_along_axis(values, indices, axis=1)


def _probe_states(run, sequences):
    """The model's states after one frame of one sequence of `sequences`
    `(batch, time, ...)`, in inference: their shapes and dtypes, which a
    loop's carry needs before the loop (the ops go unused and are pruned
    from the compiled graph). Stateless, so that the probe neither updates
    a variable nor adds a loss to the training's."""
    (_, states), _ = run_with_values(
        run.model,
        current_values(run.model),
        lambda: run(sequences[:1, :1], training=False),
    )
    return states


def _zeros_per_clip(states, batch, count):
    """Zeros `(batch, count, ...)` for every tensor of `states` `(1, ...)`."""
    return keras.tree.map_structure(
        lambda state: ops.zeros(
            (batch, count) + tuple(state.shape[1:]), state.dtype
        ),
        states,
    )


def _write(stacked, value, here):
    """`stacked` `(batch, clips, ...)` with `value` `(batch, ...)` written
    at the clips where `here` (`(batch, clips)` or `(1, clips)`) holds."""
    here = ops.reshape(
        here,
        tuple(ops.shape(here)) + (1,) * (len(stacked.shape) - len(here.shape)),
    )
    return ops.where(here, ops.expand_dims(value, 1), stacked)


def donor_states(run, clips, alignment):
    """The states every clip starts from under the paper's donor handover.

    Taking the clips of each video in order of their start, clip `k` starts
    from the states, at the frame just before its start, of the
    earliest-starting earlier clip that holds that frame (zero states where
    none does), with the gradient cut. Those states come from an inference
    run of the earlier clip (no dropout, no batch-normalisation updates)
    from its own handed-over states, with its frames from clip `k`'s start
    on masked: exact for models whose training and inference runs agree.

    The donor runs are inference only, so they run in a symbolic loop
    whose body (one donor run) is traced once, whatever the number of
    clips, and no gradient or variable update passes through it; the clips'
    own runs then run side by side from these states, as without handover.

    Args:
        run: A `keras_cbm.models.RecurrentStates` of the per-frame model.
        clips: Tensor `(batch, clips, steps, *frame_shape)`; the number of
            clips may vary from batch to batch (`padded_window_batch`).
        alignment: Integer tensor `(batch, clips, steps)`, the absolute frame
            index of every step, -1 on padding.

    Returns:
        The states of every recurrent layer (the structure of
        `RecurrentStates`), each `(batch, clips, ...)`, in the clips' given
        order.
    """
    count = ops.shape(alignment)[1]
    order = ops.argsort(clip_starts(alignment), axis=1)
    clips, alignment = take_clips(clips, order), take_clips(alignment, order)
    starts = clip_starts(alignment)
    ends = ops.max(alignment, axis=-1)
    probe_states = _probe_states(run, clips[:, 0])
    positions = ops.arange(count, dtype="int32")

    def body(k, initial_states):
        handed = _handed_states(
            run,
            (clips, alignment, starts, ends),
            ops.less(positions, k),
            initial_states,
            ops.take(starts, k, axis=1),
        )
        here = ops.equal(positions, k)[None]
        return keras.tree.map_structure(
            lambda stacked, state: _write(stacked, state, here),
            initial_states,
            handed,
        )

    states = fori_loop_with_values(
        run.model,
        count,
        body,
        _zeros_per_clip(probe_states, ops.shape(clips)[0], count),
    )
    given_order = ops.argsort(order, axis=1)
    return keras.tree.map_structure(
        lambda state: take_clips(state, given_order), states
    )


def _handed_states(run, sorted_clips, earlier, initial_states, start):
    """The states at frame `start - 1` of the earliest clip among the
    `earlier` ones (`(clips,)` boolean) that holds frame `start` (zeros
    where none does), gradient cut."""
    clips, alignment, starts, ends = sorted_clips
    holds = ops.logical_and(
        ops.logical_and(earlier[None], starts < start[:, None]),
        ends >= start[:, None],
    )
    # Sorted by start: the first clip that holds the frame is the earliest.
    donor = ops.argmax(ops.cast(holds, "int32"), axis=1)[:, None]
    has_donor = ops.any(holds, axis=1)
    donor_alignment = take_clips(alignment, donor)[:, 0]
    # A masked step keeps every state, so the final states with the frames
    # from `start` on masked are the states at `start - 1`.
    before_start = ops.logical_and(
        donor_alignment >= 0, donor_alignment < start[:, None]
    )
    _, states = run(
        take_clips(clips, donor)[:, 0],
        initial_states=keras.tree.map_structure(
            lambda s: take_clips(s, donor)[:, 0], initial_states
        ),
        mask=before_start,
        training=False,
    )

    def cut(state):
        where = ops.reshape(has_donor, (-1,) + (1,) * (len(state.shape) - 1))
        return ops.stop_gradient(ops.where(where, state, ops.zeros_like(state)))

    return keras.tree.map_structure(cut, states)


def whole_past_states(run, past, past_alignment, starts, window):
    """The states every clip starts from when it sees its video's whole
    past: those an inference run of the model over the video's frames
    before the clip's start reaches (zero states for a clip that starts at
    the video's first frame), with the gradient cut.

    One inference pass (no dropout, no batch-normalisation updates) over
    the past serves all the clips: a symbolic loop, traced once, runs the
    model from the states it reached over the next `window` frames of the
    past, with the frames from the next clip start on masked, and records
    the states each clip starts from as the pass reaches its start. Its
    memory is one window's activations (no gradient is kept) and the
    states; its compute is at most `ceil(past_steps / window) + clips`
    runs over a window.

    Args:
        run: A `keras_cbm.models.RecurrentStates` of the per-frame model.
        past: Tensor `(batch, past_steps, *frame_shape)`, each video's
            frames from its first up to at least the frame before its last
            clip start, at the clips' frame stride, zero on padding; the
            number of steps must be static.
        past_alignment: Integer tensor `(batch, past_steps)`, the absolute
            frame index of every step of `past`, -1 on padding.
        starts: Integer tensor `(batch, clips)`, the first frame of every
            clip (see `clip_starts`); the number of clips may vary from
            batch to batch.
        window: Integer >= 1, the frames a run of the pass covers.

    Returns:
        The states of every recurrent layer (the structure of
        `RecurrentStates`), each `(batch, clips, ...)`, in the clips' order.
    """
    length = past.shape[1]
    if length is None or length < 1:
        raise ValueError(
            "The whole-past handover needs the past frames with a static "
            "number of steps >= 1 (the `past_length` of `overlapping_clips`)."
            f" Received: past of shape {tuple(past.shape)}"
        )
    # Static where known; the windows of `padded_window_batch` vary.
    count = ops.shape(starts)[1]
    window = max(1, min(int(window), length))
    # Each run either covers a whole window or reaches a clip's start.
    iterations = math.ceil(length / window) + count
    # Padded so that a window from any step of the past lies inside it.
    past = ops.pad(
        past, [(0, 0), (0, window)] + [(0, 0)] * (len(past.shape) - 2)
    )
    past_alignment = ops.pad(
        past_alignment, [(0, 0), (0, window)], constant_values=-1
    )
    probe_states = _probe_states(run, past)
    batch = ops.shape(past)[0]
    offsets = ops.arange(window, dtype="int32")[None]

    def collect(position, done, states, collected):
        # The states of the pass at `position` are those at the frame
        # before the past's frame there (after the whole past, past its
        # end): a clip starting at or before that frame starts from them.
        frame = take_clips(past_alignment, position[:, None])[:, 0]
        reached = ops.where(frame >= 0, frame, _NO_START)
        now = ops.logical_and(ops.logical_not(done), starts <= reached[:, None])
        collected = keras.tree.map_structure(
            lambda stacked, state: _write(stacked, state, now),
            collected,
            states,
        )
        return ops.logical_or(done, now), collected

    def body(_, carry):
        position, done, states, collected = carry
        done, collected = collect(position, done, states, collected)
        target = ops.min(ops.where(done, _NO_START, starts), axis=1)
        steps = position[:, None] + offsets
        frames = take_clips(past_alignment, steps)
        # The frames before the next clip start, a prefix of the window.
        mask = ops.logical_and(frames >= 0, frames < target[:, None])
        _, states = run(
            take_clips(past, steps),
            initial_states=states,
            mask=mask,
            training=False,
        )
        position = position + ops.sum(ops.cast(mask, "int32"), axis=1)
        return position, done, states, collected

    position, done, states, collected = fori_loop_with_values(
        run.model,
        iterations,
        body,
        (
            ops.zeros((batch,), "int32"),
            ops.zeros(ops.shape(starts), "bool"),
            keras.tree.map_structure(
                lambda s: ops.zeros((batch,) + tuple(s.shape[1:]), s.dtype),
                probe_states,
            ),
            _zeros_per_clip(probe_states, batch, count),
        ),
    )
    _, collected = collect(position, done, states, collected)
    return keras.tree.map_structure(ops.stop_gradient, collected)
