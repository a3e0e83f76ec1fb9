"""The overlap coherence loss: clips of a video must agree on the frames
they share."""

import keras
from keras import ops


def overlap_terms(probabilities, alignment, mask, symmetric=False):
    """Per video: the summed squared differences of the overlap terms, and
    how many (pair, frame) terms there are.

    Args:
        probabilities: Float tensor `(batch, clips, steps, classes)`.
        alignment: Integer tensor `(batch, clips, steps)`, the absolute frame
            index of every step.
        mask: Boolean tensor `(batch, clips, steps)`, `False` on padding.
        symmetric: Whether to add the direction from the later clip to the
            earlier one.

    Returns:
        `(squares, terms)`, two float tensors `(batch,)`: the squared
        differences summed over terms and classes, and the number of terms
        (counted once even when `symmetric`).
    """
    probabilities = ops.convert_to_tensor(probabilities)
    dtype = probabilities.dtype
    alignment = ops.cast(alignment, "int32")
    mask = ops.cast(mask, "bool")
    clips = ops.shape(alignment)[1]
    # A clip's start is its first real frame; an empty clip matches nothing,
    # so its start only has to be comparable.
    starts = ops.min(ops.where(mask, alignment, 2**30), axis=-1)
    index = ops.arange(clips)
    earlier = ops.logical_or(
        starts[:, :, None] < starts[:, None, :],
        ops.logical_and(
            starts[:, :, None] == starts[:, None, :],
            (index[:, None] < index[None, :])[None],
        ),
    )
    # match[b, a, i, c, j]: step i of clip a and step j of clip c show the
    # same real frame (at most one i per (a, c, j): a clip's frames differ).
    match = ops.logical_and(
        ops.equal(
            alignment[:, :, :, None, None], alignment[:, None, None, :, :]
        ),
        ops.logical_and(mask[:, :, :, None, None], mask[:, None, None, :, :]),
    )
    match = ops.cast(match, dtype)
    # pairs[b, a, c, j]: a term for the earlier clip a and later clip c at
    # step j of c.
    pairs = ops.sum(match, axis=2) * ops.cast(earlier, dtype)[..., None]

    def squares(later, earlier_side):
        earlier_at_later = ops.einsum("baicj,baik->bacjk", match, earlier_side)
        difference = later[:, None] - earlier_at_later
        return ops.sum(
            pairs[..., None] * ops.square(difference), axis=(1, 2, 3, 4)
        )

    stopped = ops.stop_gradient(probabilities)
    total = squares(probabilities, stopped)
    if symmetric:
        total = total + squares(stopped, probabilities)
    return total, ops.sum(pairs, axis=(1, 2, 3))


def overlap_coherence(probabilities, alignment, mask, symmetric=False):
    """The overlap coherence loss of clips of the same videos.

    For every pair of distinct clips `(a, b)` of a video where `a` starts
    earlier (equal starts: the lower clip index first), and every frame
    that both hold unmasked (equal alignment index), the term is the
    squared difference `(p_b - stop_gradient(p_a)) ** 2` of their
    per-frame class probabilities. The loss is the mean of the terms over
    all (pair, frame) terms of the batch and over classes -- the
    reference's `MSELoss` on softmax probabilities -- and 0 when nothing
    overlaps. Gradients reach only the later clip of each pair.

    Args:
        probabilities: Float tensor `(batch, clips, steps, classes)`, e.g.
            the softmax of per-frame logits.
        alignment: Integer tensor `(batch, clips, steps)`, the absolute
            frame index of every step (as `keras_cbm.data.overlapping_clips`
            gives it).
        mask: Boolean tensor `(batch, clips, steps)`, `False` on padding.
        symmetric: Whether to add the other direction,
            `(p_a - stop_gradient(p_b)) ** 2`, so that both clips of a pair
            learn from each other (the value doubles).

    Returns:
        A scalar tensor.

    Example:

    >>> p = np.array([[[[1.0, 0.0], [0.5, 0.5]],
    ...                [[0.0, 1.0], [1.0, 0.0]]]], "float32")
    >>> alignment = np.array([[[3, 4], [4, 5]]])
    >>> mask = np.ones((1, 2, 2), bool)
    >>> float(overlap_coherence(p, alignment, mask))  # frame 4: 0.5 vs 0.0
    0.25
    """
    total, terms = overlap_terms(probabilities, alignment, mask, symmetric)
    classes = ops.shape(probabilities)[-1]
    return ops.divide_no_nan(
        ops.sum(total), ops.sum(terms) * ops.cast(classes, total.dtype)
    )


@keras.saving.register_keras_serializable(package="keras_cbm")
class OverlapCoherence(keras.losses.Loss):
    """The overlap coherence loss as a `keras.losses.Loss`.

    Each video's value is `overlap_coherence` of its clips alone (the mean
    over its own overlap terms, 0 without overlaps); the `reduction`
    averages videos. So every video counts equally, and under a
    `tf.distribute` strategy the global batch reduces exactly as on one
    device, as for every Keras loss. For a batch of one video it equals
    `overlap_coherence`.

    Args:
        symmetric: As in `overlap_coherence`.
        reduction: A Keras loss reduction over videos.
        name: The loss's name.
        dtype: The loss's computation dtype.

    Call arguments:
        y_true: Alignment indices `(batch, clips, steps)`, -1 on padding
            (the mask is `y_true >= 0`).
        y_pred: Probabilities `(batch, clips, steps, classes)`.
        sample_weight: Optional per-video weights `(batch,)`.

    Returns:
        The reduced loss; `(batch,)` with `reduction=None`.

    Example:

    >>> p = np.array([[[[1.0, 0.0], [0.5, 0.5]],
    ...                [[0.0, 1.0], [1.0, 0.0]]]], "float32")
    >>> alignment = np.array([[[3, 4], [4, -1]]])
    >>> float(OverlapCoherence()(alignment, p))
    0.25
    """

    def __init__(
        self,
        symmetric=False,
        reduction="sum_over_batch_size",
        name="overlap_coherence",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.symmetric = symmetric

    def call(self, y_true, y_pred):
        alignment = ops.cast(y_true, "int32")
        total, terms = overlap_terms(
            y_pred, alignment, alignment >= 0, self.symmetric
        )
        classes = ops.cast(ops.shape(y_pred)[-1], total.dtype)
        return ops.divide_no_nan(total, terms * classes)

    def get_config(self):
        return {**super().get_config(), "symmetric": self.symmetric}
