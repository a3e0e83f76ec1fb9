"""Random clips of random length that overlap, for overlap coherence
training."""

import tensorflow as tf

from keras_cbm.data.arguments import check_features
from keras_cbm.data.arguments import check_integer
from keras_cbm.data.clip_inputs import clip_inputs
from keras_cbm.data.clip_inputs import video_id
from keras_cbm.frame_targets import check_targets
from keras_cbm.frame_targets import first_target_frame


def overlapping_clips(
    dataset,
    clips_per_video,
    min_length,
    max_length,
    min_overlap=1,
    frame_stride=1,
    seed=None,
    video_key="video",
    label_key="label",
    id_key="video_id",
    num_parallel_calls=tf.data.AUTOTUNE,
    targets=None,
    past_length=None,
    placement="uniform",
):
    """Samples overlapping clips of random length and start from each video.

    Every video of `N` frames (`N` may differ between videos) gives
    `clips_per_video` clips. With `frame_stride` `f`, a video is read at
    one random phase `p` in `[0, f)`: frames `p, p + f, p + 2f, ...`, its
    `M = ceil((N - p) / f)` steps; clip lengths, starts and overlaps count
    these steps, and all clips of a video share the phase so that their
    overlaps are real shared frames.

    Sampling algorithm, per video:

    1. Lengths: `L_k` uniform in `[min_length, min(max_length, M)]`.
    2. Clip 0 starts uniformly in `[0, M - L_0]`.
    3. Clip `k >= 1` picks a parent `j` uniformly among the clips
       `0 .. k-1` and starts uniformly in
       `[max(0, s_j - L_k + m), min(M - L_k, s_j + L_j - m)]`, where
       `m = min_overlap`: every start in that range shares at least `m`
       steps with clip `j`, and the range is never empty because
       `m < min_length <= L_j, L_k <= M`.

    So the clips of a video form a random tree in which every clip
    overlaps its parent by at least `min_overlap` frames: they are
    connected by overlaps, and clip 0 makes every start reachable.

    With `placement="weighted"`, steps 2 and 3 draw each start from the
    same range with probability proportional to the target weight (see
    `targets`) of the frame the clip would end at, so clips end where the
    label is knowable; a range whose ends all weigh 0 is drawn uniformly.
    Equal weights give the uniform placement's clips.

    Short videos: a video with fewer than `min_length` steps (`M <
    min_length`) gives `clips_per_video` copies of the whole video read at
    the phase, padded to `max_length` with `mask` False, and these overlap
    by all their `M` frames. A video with no frames fails when read, with
    an error naming its id.

    Randomness: the clips of a video are a function of `seed`, the
    iteration (epoch) of the returned dataset and the video's position in
    it, drawn with stateless ops. The same seed gives the same clips in
    every run and for every `num_parallel_calls`; each new iteration of
    the returned dataset (each epoch of `model.fit`, each pass of a
    `.repeat()` after it) gives new clips. `seed=None` gives different
    clips in every run. As for every seeded TensorFlow op, a global seed
    set with `tf.random.set_seed` takes part too.

    Args:
        dataset: A `tf.data.Dataset` of dicts, one per video, holding
            `video_key` (`(N, *frame_shape)`, any dtype), `label_key` and
            optionally `id_key`.
        clips_per_video: Integer >= 1, the clips `K` per video.
        min_length: Integer >= 1, the shortest clip, in steps.
        max_length: Integer >= `min_length`, the longest clip and the
            padded length of every clip.
        min_overlap: Integer in `[0, min_length - 1]`, the steps that every
            clip shares with another clip of its video.
        frame_stride: Integer >= 1, the distance in frames between two
            steps of a clip.
        seed: Integer or `None`.
        video_key: The feature holding the frames.
        label_key: The feature holding the label.
        id_key: The feature holding the video's id; when the dataset has no
            such feature the id is the video's position in `dataset`.
        num_parallel_calls: Passed to `Dataset.map`.
        targets: Optional frame targets (see
            `keras_cbm.training.frame_weights`: `"all"`, a
            `keras_cbm.training.FrameTargets` or its short forms
            `("last", k)` and `("from", j)`, or `"given"`: the video's
            own `"frame_weights"` feature, `(N,)` floats, e.g. 1 from the
            frame where its label becomes knowable): adds
            `"frame_weights"`, which `CoherenceModel` applies to its task
            loss.
        past_length: Optional integer >= 1: adds the video's frames before
            its last clip start, at the clips' phase and stride, padded to
            `past_length` steps: what
            `CoherenceModel(..., state_handover="whole_past")` runs over. A
            video with more steps before its last clip start fails when
            read, with an error naming it.
        placement: `"uniform"` (the clips' starts uniform, as above) or
            `"weighted"` (their ends drawn by the target weights; needs
            `targets`).

    Returns:
        A `tf.data.Dataset` of pairs `(inputs, label)`, one per video, ready
        for `.batch`, `.prefetch` and `model.fit`. `inputs` is a dict:
        `"clips"` `(K, max_length, *frame_shape)` in the video's dtype (zero
        on padding), `"mask"` `(K, max_length)` bool, `"alignment"` `(K,
        max_length)` int32 (the absolute frame index of every step, -1 on
        padding), `"video_id"` (int64 scalar, or the `id_key` feature);
        with `targets`, `"frame_weights"` `(K, max_length)` float32, 1 on
        the frames to train toward the label, 0 elsewhere and on padding;
        with `past_length`, `"past"` `(past_length, *frame_shape)` (zero on
        padding) and `"past_alignment"` `(past_length,)` int32 (the
        absolute frame index of every step, -1 on padding).

    Example:

    >>> import tensorflow as tf
    >>> videos = tf.data.Dataset.from_tensors(
    ...     {"video": tf.zeros((40, 8, 8, 3), "uint8"), "label": 3}
    ... )
    >>> clips = overlapping_clips(videos, 4, 8, 16, seed=0).batch(2)
    >>> inputs, label = next(iter(clips))
    >>> inputs["clips"].shape, inputs["clips"].dtype.name
    (TensorShape([1, 4, 16, 8, 8, 3]), 'uint8')
    """
    clips_per_video, min_length, max_length, min_overlap, frame_stride = (
        check_overlapping_arguments(
            clips_per_video, min_length, max_length, min_overlap, frame_stride
        )
    )
    check_features(dataset, video_key=video_key, label_key=label_key)
    past_length = check_targets_and_past(dataset, targets, past_length)
    weights = placement_weights(placement, targets, video_key)

    def cut(index, element, alignment):
        identity = video_id(element, index, id_key)
        inputs = clip_inputs(element[video_key], alignment, identity)
        inputs.update(
            target_and_past_inputs(
                element, alignment, identity, video_key, targets,
                past_length, frame_stride,
            )
        )
        return inputs, element[label_key]

    return map_overlapping_alignment(
        dataset,
        cut,
        lambda element: tf.shape(element[video_key])[0],
        clips_per_video,
        min_length,
        max_length,
        min_overlap,
        frame_stride,
        seed,
        num_parallel_calls,
        weights,
    )


PLACEMENTS = ("uniform", "weighted")


def check_targets_and_past(dataset, targets, past_length):
    """Checks the `targets` and `past_length` of a clip pipeline over
    `dataset`; returns `past_length` as a Python int (or `None`)."""
    if targets is not None:
        check_targets(targets, allow_given=True)
    if targets == "given" and "frame_weights" not in dataset.element_spec:
        raise ValueError(
            "`targets='given'` reads each video's `'frame_weights'` feature "
            "(N,), which `dataset` lacks; its features are "
            f"{sorted(dataset.element_spec)}."
        )
    if past_length is None:
        return None
    return check_integer("past_length", past_length, 1)


def target_and_past_inputs(
    element, alignment, identity, video_key, targets, past_length,
    frame_stride,
):
    """The inputs a clip pipeline adds for `targets` (`"frame_weights"`,
    0 on padding) and `past_length` (`"past"`, `"past_alignment"`, see
    `past_inputs`) to the clips of `alignment` of a video `element`."""
    inputs = {}
    video = element[video_key]
    if past_length is not None:
        inputs.update(
            past_inputs(video, alignment, past_length, frame_stride, identity)
        )
    if targets is not None:
        inputs["frame_weights"] = clip_frame_weights(
            targets, element, tf.shape(video)[0], alignment
        )
    return inputs


def clip_frame_weights(targets, element, num_frames, alignment):
    """The target weight of every step of the clips of `alignment`, 0 on
    padding, for a video `element` of `num_frames` frames."""
    weights = target_weights(targets, element, num_frames)
    return tf.where(
        alignment >= 0, tf.gather(weights, tf.maximum(alignment, 0)), 0.0
    )


def target_weights(targets, element, num_frames):
    """The target weight of every frame of a video, `(num_frames,)`
    float32: the element's `"frame_weights"` for `targets="given"`, else
    those of `keras_cbm.training.frame_weights`."""
    if targets == "given":
        return tf.cast(element["frame_weights"], "float32")
    first = first_target_frame(num_frames, targets)
    return tf.cast(tf.range(num_frames) >= tf.maximum(first, 0), "float32")


def placement_weights(placement, targets, video_key="video"):
    """Checks `placement`; returns `None` for the uniform placement, or a
    function of `(element, num_frames)` to the frames' weights that the
    weighted placement draws clip ends by."""
    if not isinstance(placement, str) or placement not in PLACEMENTS:
        raise ValueError(
            f"`placement` must be one of {PLACEMENTS}. Received: "
            f"placement={placement!r}"
        )
    if placement == "uniform":
        return None
    if targets is None:
        raise ValueError(
            "`placement='weighted'` draws clip ends by the target weights, "
            "so `targets` must be given (e.g. a `FrameTargets` or "
            "'given'). Received: targets=None"
        )
    return lambda element, num_frames: target_weights(
        targets, element, num_frames
    )


def past_inputs(video, alignment, past_length, frame_stride, video_id):
    """The frames of a video before its last clip start, at the clips'
    phase and stride.

    Args:
        video: Tensor `(num_frames, *frame_shape)`.
        alignment: int32 tensor `(num_clips, clip_steps)`, the video's clips
            (as `sample_overlapping_clips` draws them; no clip is empty).
        past_length: Integer, the padded number of steps.
        frame_stride: Integer, the clips' frame stride.
        video_id: Scalar tensor identifying the video.

    Returns:
        A dict: `"past"` `(past_length, *frame_shape)`, zero on padding, and
        `"past_alignment"` `(past_length,)` int32, the absolute frame index
        of every step, -1 on padding.

    Example:

    >>> import tensorflow as tf
    >>> video = tf.reshape(tf.range(12), (12, 1))
    >>> past = past_inputs(video, tf.constant([[1, 3], [7, 9]]), 5, 2, 0)
    >>> past["past_alignment"].numpy().tolist()
    [1, 3, 5, -1, -1]
    """
    starts = tf.reduce_min(
        tf.where(alignment >= 0, alignment, tf.int32.max), axis=1
    )
    last_start = tf.reduce_max(starts)
    # Every clip frame is `phase + step * frame_stride`.
    phase = last_start % frame_stride
    steps = (last_start - phase) // frame_stride
    check = tf.debugging.Assert(
        steps <= past_length,
        [
            "Video",
            video_id,
            "has",
            steps,
            "steps before its last clip start: more than past_length =",
            past_length,
        ],
    )
    with tf.control_dependencies([check]):
        step = tf.range(past_length)
    past_alignment = tf.where(step < steps, phase + step * frame_stride, -1)
    past = clip_inputs(video, past_alignment[None], video_id)["clips"][0]
    return {"past": past, "past_alignment": past_alignment}


def check_overlapping_arguments(
    clips_per_video, min_length, max_length, min_overlap, frame_stride
):
    """Checks the clip arguments of `overlapping_clips`; returns them as
    Python ints."""
    clips_per_video = check_integer("clips_per_video", clips_per_video, 1)
    min_length = check_integer("min_length", min_length, 1)
    max_length = check_integer(
        "max_length", max_length, min_length, bound_name="min_length"
    )
    min_overlap = check_integer(
        "min_overlap",
        min_overlap,
        0,
        min_length - 1,
        bound_name="min_length - 1",
    )
    frame_stride = check_integer("frame_stride", frame_stride, 1)
    return clips_per_video, min_length, max_length, min_overlap, frame_stride


def map_overlapping_alignment(
    dataset,
    function,
    num_frames,
    clips_per_video,
    min_length,
    max_length,
    min_overlap,
    frame_stride,
    seed,
    num_parallel_calls,
    frame_weights=None,
):
    """Maps `function(index, element, alignment)` over `dataset`, where
    `alignment` holds the overlapping clips drawn for the element's
    `num_frames(element)` frames and `index` is its position.

    The sampling and its randomness are those of `overlapping_clips` (the
    arguments are assumed valid), whatever holds the frames: a decoded
    video, or a file that `function` reads only the clips' frames of.
    `frame_weights`, a function of `(element, num_frames)` to the frames'
    weights (see `placement_weights`), gives the weighted placement.
    """

    def sample(indexed, random):
        index, element = indexed
        frames = num_frames(element)
        alignment = sample_overlapping_clips(
            frames,
            clips_per_video,
            min_length,
            max_length,
            min_overlap,
            frame_stride,
            seed=tf.stack([random, index]),
            frame_weights=(
                None
                if frame_weights is None
                else frame_weights(element, frames)
            ),
        )
        return function(index, element, alignment)

    # One random number per element and per iteration, drawn in order
    # before the parallel map, makes the clips independent of
    # num_parallel_calls and new in every epoch.
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(dataset.enumerate(), randoms).map(
        sample, num_parallel_calls=num_parallel_calls
    )


def sample_overlapping_clips(
    num_frames,
    clips_per_video,
    min_length,
    max_length,
    min_overlap,
    frame_stride,
    seed,
    frame_weights=None,
):
    """Draws the alignment indices of overlapping clips of one video.

    The algorithm and the short-video policy are those of
    `overlapping_clips`; arguments are assumed valid.

    Args:
        num_frames: Scalar int32 tensor, the video's frames `N`.
        clips_per_video, min_length, max_length, min_overlap, frame_stride:
            As in `overlapping_clips`.
        seed: Shape `(2,)` integer tensor, a stateless random seed.
        frame_weights: Optional float tensor `(N,)`: draw each start with
            probability proportional to the weight of the frame the clip
            ends at (`overlapping_clips`' `placement="weighted"`); `None`
            draws starts uniformly.

    Returns:
        int32 tensor `(clips_per_video, max_length)`, the absolute frame
        index of every clip step, -1 on padding.

    Example:

    >>> alignment = sample_overlapping_clips(
    ...     100, 3, 5, 10, 1, 1, seed=[0, 0]
    ... )
    >>> alignment.shape
    TensorShape([3, 10])
    """
    num_frames = tf.cast(num_frames, "int32")
    uniforms = tf.random.stateless_uniform([4, clips_per_video], seed)
    phases = tf.maximum(tf.minimum(frame_stride, num_frames), 1)
    phase = uniform_integer(uniforms[3, 0], 0, phases - 1)
    steps = (num_frames - phase + frame_stride - 1) // frame_stride
    lengths = uniform_integer(
        uniforms[0],
        tf.minimum(min_length, steps),
        tf.minimum(max_length, steps),
    )
    parents = uniform_integer(
        uniforms[1], 0, tf.maximum(tf.range(clips_per_video) - 1, 0)
    )
    if frame_weights is not None:
        # The weight of every step, read at the phase and stride.
        step_weights = tf.gather(
            tf.cast(frame_weights, "float32"),
            tf.minimum(phase + tf.range(steps) * frame_stride, num_frames - 1),
        )

    def start_in(uniform, low, high, length):
        if frame_weights is None:
            return uniform_integer(uniform, low, high)
        # A start's weight: that of the step the clip ends at.
        return weighted_integer(uniform, low, high, step_weights[length - 1 :])

    # A loop over the clips (static and few), not over frames: each start
    # depends on the start of an earlier clip.
    starts = [start_in(uniforms[2, 0], 0, steps - lengths[0], lengths[0])]
    for k in range(1, clips_per_video):
        parent_start = tf.gather(tf.stack(starts), parents[k])
        parent_length = lengths[parents[k]]
        last = steps - lengths[k]
        low = tf.maximum(0, parent_start - lengths[k] + min_overlap)
        high = tf.minimum(last, parent_start + parent_length - min_overlap)
        # Only a short video (all clips whole) can leave the range empty.
        start = start_in(
            uniforms[2, k], low, tf.maximum(low, high), lengths[k]
        )
        starts.append(tf.clip_by_value(start, 0, last))
    step = tf.stack(starts)[:, None] + tf.range(max_length)[None, :]
    in_clip = tf.range(max_length)[None, :] < lengths[:, None]
    return tf.where(in_clip, phase + step * frame_stride, -1)


def weighted_integer(uniform, low, high, weights):
    """Maps a uniform in `[0, 1)` to an integer `i` in `[low, high]` drawn
    with probability proportional to `weights[i]` (uniform where they are
    all 0 in the range); equal weights give `uniform_integer`'s."""
    candidates = tf.range(low, high + 1)
    chosen = tf.gather(
        weights, tf.clip_by_value(candidates, 0, tf.size(weights) - 1)
    )
    total = tf.reduce_sum(chosen)
    chosen = tf.where(total > 0, chosen, tf.ones_like(chosen))
    below = tf.cumsum(chosen) <= uniform * tf.reduce_sum(chosen)
    offset = tf.reduce_sum(tf.cast(below, "int32"))
    return low + tf.minimum(offset, high - low)


def uniform_integer(uniform, low, high):
    """Maps uniforms in `[0, 1)` to integers uniform in `[low, high]`."""
    span = tf.cast(high - low + 1, uniform.dtype)
    offset = tf.cast(tf.floor(uniform * span), "int32")
    # float32 rounding can reach `span` itself.
    return low + tf.minimum(offset, high - low)
