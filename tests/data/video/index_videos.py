"""Small video files whose frames show their own index, for the tests of
the video file datasets."""

import os

import av
import numpy as np

# (extension, encoder, encoder options): one container and codec each.
CODECS = {
    "mp4": ("libx264", {}),
    "avi": ("mpeg4", {}),
    "webm": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}),
}
# A 4x4 grid of blocks, each black or white: 16 bits of the index, which
# survive lossy compression and resizing.
GRID = 4
SIZE = 32


def index_frame(index, size=SIZE):
    """A uint8 RGB frame `(size, size, 3)` that shows `index`."""
    bits = (index >> np.arange(GRID * GRID)) & 1
    blocks = bits.reshape(GRID, GRID).astype("uint8") * 255
    frame = np.kron(blocks, np.ones((size // GRID, size // GRID), "uint8"))
    return np.repeat(frame[:, :, None], 3, axis=2)


def frame_indices(frames):
    """The index each frame of `(..., height, width, channels)` shows."""
    frames = np.asarray(frames, "float32").mean(axis=-1)
    height, width = frames.shape[-2:]
    blocks = frames.reshape(
        frames.shape[:-2] + (GRID, height // GRID, GRID, width // GRID)
    ).mean(axis=(-3, -1))
    bits = blocks.reshape(frames.shape[:-2] + (GRID * GRID,)) > 127
    return (bits << np.arange(GRID * GRID)).sum(axis=-1)


def write_video(path, num_frames, gop_size=5, fps=25):
    """Writes `num_frames` index frames in the container and codec of the
    path's extension, with a keyframe every `gop_size` frames (B-frames
    where the codec makes them)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    codec, options = CODECS[path.rsplit(".", 1)[1]]
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop_size
        if codec == "mpeg4":
            stream.codec_context.max_b_frames = 2
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(index_frame(index), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
