"""State handover between the clips of a video: a clip that starts inside an
earlier clip begins from that clip's recurrent states at the frame before
its start."""

import keras
from keras import ops

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


def handed_over_outputs(run, clips, alignment, training=None):
    """Runs the clips of each video in order of their start, handing states
    over.

    Clip `k` starts from the states, at the frame just before its start, of
    the earliest-starting earlier clip that holds that frame (zero states
    where none does), with the gradient cut. Those states come from an
    inference run of the earlier clip (no dropout, no batch-normalisation
    updates) from its own initial states, with its frames from clip `k`'s
    start on masked: exact for models whose training and inference runs
    agree. Each clip costs two runs of the model (its own and its donor's)
    and a constant number of other operations, so the traced graph grows
    linearly with the clips per video.

    Args:
        run: A `keras_cbm.models.RecurrentStates` of the per-frame model.
        clips: Tensor `(batch, clips, steps, *frame_shape)`; the number of
            clips must be static.
        alignment: Integer tensor `(batch, clips, steps)`, the absolute frame
            index of every step, -1 on padding.
        training: Python boolean, the mode of the clips' own runs.

    Returns:
        The model's outputs `(batch, clips, steps, ...)`, in the clips'
        given order.
    """
    count = clips.shape[1]
    if count is None:
        raise ValueError(
            "State handover needs a static number of clips per video (the "
            "`clips_per_video` of `overlapping_clips`). Received: clips of "
            f"shape {tuple(clips.shape)}"
        )
    order = ops.argsort(clip_starts(alignment), axis=1)
    clips, alignment = take_clips(clips, order), take_clips(alignment, order)
    starts = clip_starts(alignment)
    ends = ops.max(alignment, axis=-1)
    valid = alignment >= 0
    outputs = []
    # Every clip's initial states, stacked along a clip axis as they come.
    initial_states = None
    for k in range(count):
        handed = None
        if k > 0:
            handed = _handed_states(
                run,
                (clips[:, :k], alignment[:, :k], starts[:, :k], ends[:, :k]),
                initial_states,
                starts[:, k],
            )
        clip_outputs, final_states = run(
            clips[:, k],
            initial_states=handed,
            mask=valid[:, k],
            training=training,
        )
        outputs.append(clip_outputs)
        if handed is None:
            handed = keras.tree.map_structure(ops.zeros_like, final_states)
        initial_states = _stack_next(initial_states, handed)
    return take_clips(ops.stack(outputs, axis=1), ops.argsort(order, axis=1))


def _stack_next(stacked, states):
    states = keras.tree.map_structure(lambda s: s[:, None], states)
    if stacked is None:
        return states
    return keras.tree.map_structure(
        lambda a, b: ops.concatenate([a, b], axis=1), stacked, states
    )


def _handed_states(run, earlier, initial_states, start):
    """The states at frame `start - 1` of the earliest earlier clip that
    holds frame `start` (zeros where none does), gradient cut."""
    clips, alignment, starts, ends = earlier
    holds = ops.logical_and(starts < start[:, None], ends >= start[:, None])
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
        return ops.stop_gradient(ops.where(where, state, 0.0))

    return keras.tree.map_structure(cut, states)
