"""The plan of a stream of chunks, in plain Python on the videos' lengths
(no frame is read): which video and frame each row of each batch holds,
how many batches a pass has, and where a pass starts after a restart."""

import dataclasses


class StreamPosition:
    """Where a pass over a streaming dataset starts: which epoch it is (for
    the order of the files) and how many batches of it to skip (trained
    before a restart). `StreamingBPTT.fit` sets both at every epoch's
    start and clears them when it ends; outside `fit`, passes count
    epochs from 0 and skip nothing.

    Args:
        count_batches: A function that returns the batches of a whole
            pass (called once, when first needed).

    Attributes:
        epoch: The epoch of the passes begun from now, or `None` (count
            passes).
        skip_batches: Batches those passes skip, without reading their
            frames.
    """

    def __init__(self, count_batches):
        self.epoch = None
        self.skip_batches = 0
        self.passes = 0
        self._count_batches = count_batches
        self._batches = None

    def begin_pass(self):
        """`(epoch, batches to skip)` of a pass beginning now."""
        epoch = self.passes if self.epoch is None else self.epoch
        self.passes = epoch + 1
        return epoch, self.skip_batches

    @property
    def batches(self):
        """The batches of a whole pass (of the first, when the order of
        the videos changes between passes)."""
        if self._batches is None:
            self._batches = int(self._count_batches())
        return self._batches


@dataclasses.dataclass
class Video:
    """A video a lane plays: its frames (an array) or its file."""

    length: int
    label: object
    video_id: int
    frames: object = None
    path: str = ""


def lane_schedule(videos, batch_size, chunk_length, drop_remainder=True):
    """Plans the batches of a stream: each of `batch_size` lanes plays the
    videos it takes from `videos` (in order, a lane taking the next one as
    soon as its video ends), a chunk of `chunk_length` frames per batch.

    Plain Python on the videos' lengths: no frame is read here.

    Args:
        videos: An iterable of objects with a `length` (frames).
        batch_size: The lanes (rows of a batch).
        chunk_length: Frames per chunk.
        drop_remainder: Whether the stream ends at the first batch in
            which a lane has no video left (else such lanes are idle,
            `None`, until every lane's videos end).

    Yields:
        Per batch, a list of `batch_size` rows: `(video, start frame)`,
        or `None` for an idle lane.

    Example:

    >>> from types import SimpleNamespace as Video
    >>> plan = lane_schedule(
    ...     [Video(length=n) for n in (4, 2, 2)], 2, 2, drop_remainder=False)
    >>> [[row and (row[0].length, row[1]) for row in rows] for rows in plan]
    [[(4, 0), (2, 0)], [(4, 2), (2, 0)]]
    """
    videos = iter(videos)
    lanes = [None] * batch_size  # Per lane: [video, next start], or None.
    while True:
        for lane, playing in enumerate(lanes):
            if playing is None or playing[1] >= playing[0].length:
                video = next(videos, None)
                lanes[lane] = None if video is None else [video, 0]
        idle = [playing is None for playing in lanes]
        if all(idle) or (drop_remainder and any(idle)):
            return
        yield [None if playing is None else tuple(playing) for playing in lanes]
        for playing in lanes:
            if playing is not None:
                playing[1] += chunk_length


def count_batches(lengths, batch_size, chunk_length, drop_remainder=True):
    """The batches of a stream of videos of `lengths` frames (see
    `lane_schedule`).

    Example:

    >>> count_batches([4, 2, 2], 2, 2, drop_remainder=False)
    2
    """
    videos = (Video(length, None, None) for length in lengths)
    plan = lane_schedule(videos, batch_size, chunk_length, drop_remainder)
    return sum(1 for _ in plan)
