"""A zoo of small video files as people have them: codecs x containers,
rotated (phones), with faulty timestamps (repeated, restarting, variable),
a mid-file resolution change, truncated, mislabelled and not videos.

Every file is generated with PyAV in a fraction of a second (32x32 frames
that show their own index, 12 frames). `ZOO` maps a file name to how it is
made and what a reader must make of it: the frames of a sequential decode
(oriented and scaled as `expected_frames` says), or a refusal at creation.
"""

import dataclasses
import fractions
import os

import av
import numpy as np

from tests.data.video.index_videos import index_frame

NUM_FRAMES = 12
SIZE = 32
QUIET = {
    "libx265": {"x265-params": "log-level=none"},
    "libsvtav1": {"preset": "12", "svtav1-params": "lp=1"},
    "libvpx": {"deadline": "realtime", "cpu-used": "8"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}


@dataclasses.dataclass(frozen=True)
class Video:
    """How a zoo file is made.

    Args:
        codec: The encoder.
        pix_fmt: The encoded pixel format.
        rotation: Degrees counter-clockwise a player turns the frames
            (`set_display_rotation`), or `None` for no display matrix.
        hflip: Whether the display matrix mirrors the frames too.
        timestamps: `None` (the encoder's), or per frame its timestamp in
            units of 1/25 s, written in place of the encoder's (an encoder
            without B-frames, so that decode order is presentation order).
        restart: Whether the file is two recordings concatenated byte by
            byte, the second's timestamps starting again from zero.
        sizes: Frame sizes: the first `NUM_FRAMES // 2` frames have the
            first, the rest the last.
        options: The container's muxer options.
        refused: Why a reader must refuse the file (`None`: it must read
            it frame-exactly).
    """

    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    rotation: int | None = None
    hflip: bool = False
    timestamps: tuple | None = None
    restart: bool = False
    sizes: tuple = ((SIZE, SIZE),)
    options: dict | None = None
    refused: str | None = None


REPEATED = (0, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9)
VARIABLE = (0, 1, 3, 4, 8, 9, 10, 15, 16, 17, 30, 31)

ZOO = {
    # Codecs x containers.
    "h264.mp4": Video(),
    "h264.mkv": Video(),
    "h264.mov": Video(),
    "h264.avi": Video(),
    "h264.ts": Video(),
    "h264_10bit.mp4": Video(pix_fmt="yuv420p10le"),
    "h264_444.mkv": Video(pix_fmt="yuv444p"),
    "h264_10bit_444.mov": Video(pix_fmt="yuv444p10le"),
    "h264_faststart.mp4": Video(options={"movflags": "faststart"}),
    "hevc.mp4": Video("libx265"),
    "hevc.mkv": Video("libx265"),
    "hevc_10bit.mov": Video("libx265", "yuv420p10le"),
    "av1.mp4": Video("libsvtav1"),
    "av1.webm": Video("libsvtav1"),
    "av1.mkv": Video("libsvtav1"),
    "vp8.webm": Video("libvpx"),
    "vp8.mkv": Video("libvpx"),
    "vp9.webm": Video("libvpx-vp9"),
    "vp9.mp4": Video("libvpx-vp9"),
    "mpeg4.avi": Video("mpeg4"),
    "mpeg4.mp4": Video("mpeg4"),
    "mjpeg.avi": Video("mjpeg", "yuvj420p"),
    "mjpeg.mov": Video("mjpeg", "yuvj420p"),
    "mpeg2.mpg": Video("mpeg2video"),
    "mpeg1.mpeg": Video("mpeg1video"),
    # Rotation and flips from the display matrix, as phones write them.
    "rotated_90.mp4": Video(rotation=90),
    "rotated_180.mov": Video(rotation=180),
    "rotated_270.mp4": Video("libx265", rotation=-90),
    "mirrored.mp4": Video(rotation=0, hflip=True),
    "rotated_90_mirrored.mov": Video("mpeg4", rotation=90, hflip=True),
    "portrait.mp4": Video(rotation=-90, sizes=((16, SIZE),)),
    # Timestamps that do not say the decode order.
    "repeated_timestamps.mkv": Video("mpeg4", timestamps=REPEATED),
    "repeated_timestamps.webm": Video("libvpx", timestamps=REPEATED),
    "variable_rate.mkv": Video("mpeg4", timestamps=VARIABLE),
    "restarting.mpg": Video("mpeg2video", restart=True),
    "restarting.ts": Video(restart=True),
    # A resolution change in the middle of the file.
    "resized.webm": Video("libvpx", sizes=((SIZE, SIZE), (48, 40))),
    "resized.ts": Video(sizes=((SIZE, SIZE), (24, 40))),
    # Broken copies and files that are not videos.
    "truncated.webm": Video("libvpx-vp9", refused="truncated"),
    "truncated_index.mp4": Video(
        options={"movflags": "faststart"}, refused="truncated"
    ),
    "cut_before_index.mp4": Video(refused="truncated"),
    "photo.mp4": Video("mjpeg", refused="image"),
    "empty.mkv": Video(refused="empty"),
    "noise.avi": Video(refused="noise"),
    "audio_only.webm": Video(refused="audio"),
}


def build_zoo(directory):
    """Writes every file of `ZOO` into `directory`; returns the paths by
    name."""
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name, video in ZOO.items():
        paths[name] = path = os.path.join(directory, name)
        if video.refused is None:
            write(path, video)
        else:
            write_refused(path, video)
    return paths


def write(path, video, first_index=0, num_frames=NUM_FRAMES):
    """Writes index frames `first_index...` of `video` to `path`."""
    extension = path.rsplit(".", 1)[1]
    if video.restart:
        half, whole = num_frames // 2, dataclasses.replace(video, restart=False)
        parts = [
            write(f"{path}.1.{extension}", whole, 0, half),
            write(f"{path}.2.{extension}", whole, half, num_frames - half),
        ]
        with open(path, "wb") as file:
            for part in parts:
                with open(part, "rb") as piece:
                    file.write(piece.read())
                os.remove(part)
        return path
    container_format = {"ts": "mpegts", "mpg": "vob", "mpeg": "mpeg"}.get(
        extension
    )
    with av.open(
        path, "w", format=container_format, options=video.options or {}
    ) as container:
        stream = container.add_stream(
            video.codec, rate=25, options=QUIET.get(video.codec, {})
        )
        stream.height, stream.width = video.sizes[0]
        stream.pix_fmt = video.pix_fmt
        if video.codec != "libsvtav1":
            # AV1 keeps SVT's single keyframe: seeks that decode from it
            # pass over non-reference frames, as in AV1 from video sites.
            stream.codec_context.gop_size = 4
        if video.timestamps is not None:
            stream.codec_context.max_b_frames = 0
        elif video.codec in ("mpeg4", "mpeg2video", "mpeg1video"):
            stream.codec_context.max_b_frames = 2
        if video.rotation is not None:
            stream.set_display_rotation(video.rotation, hflip=video.hflip)
        encoder = stream.codec_context
        packets = []
        for index in range(num_frames):
            size = video.sizes[0 if index < num_frames // 2 else -1]
            if (encoder.height, encoder.width) != size:
                packets += encoder.encode(None)
                encoder = av.CodecContext.create(video.codec, "w")
                encoder.height, encoder.width = size
                encoder.pix_fmt = video.pix_fmt
                encoder.time_base = fractions.Fraction(1, 25)
                encoder.framerate = 25
                encoder.gop_size = 4
                encoder.options = QUIET.get(video.codec, {})
            image = index_frame(first_index + index, max(size))
            frame = av.VideoFrame.from_ndarray(
                image[: size[0], : size[1]], "rgb24"
            )
            frame.pts = index
            packets += encoder.encode(frame)
        packets += encoder.encode(None)
        for number, packet in enumerate(packets):
            packet.time_base = fractions.Fraction(1, 25)
            if video.timestamps is not None:
                packet.pts = packet.dts = video.timestamps[number]
            packet.stream = stream
            container.mux(packet)
    return path


def write_refused(path, video):
    """Writes a file a reader must refuse."""
    if video.refused == "empty":
        open(path, "wb").close()
    elif video.refused == "noise":
        with open(path, "wb") as file:
            file.write(np.random.RandomState(0).bytes(3000))
    elif video.refused == "image":
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width = encoder.height = SIZE
        encoder.pix_fmt = "yuvj420p"
        encoder.time_base = fractions.Fraction(1, 25)
        frame = av.VideoFrame.from_ndarray(index_frame(0), "rgb24")
        with open(path, "wb") as file:
            for packet in encoder.encode(frame) + encoder.encode(None):
                file.write(bytes(packet))
    elif video.refused == "audio":
        with av.open(path, "w") as container:
            stream = container.add_stream("libopus", rate=48000)
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 960), "float32"), format="flt", layout="mono"
            )
            frame.sample_rate = 48000
            container.mux(stream.encode(frame))
            container.mux(stream.encode())
    elif video.refused == "truncated":
        write(path, dataclasses.replace(video, refused=None))
        with open(path, "rb") as file:
            data = file.read()
        with open(path, "wb") as file:
            file.write(data[: len(data) * 6 // 10])


def expected_frames(path, video):
    """The RGB frames a reader must give for a zoo file: the frames of a
    sequential decode, turned as its display matrix says and scaled to the
    first frame's size."""
    frames = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            if frames:
                # Scaled in its own pixel format, then converted.
                height, width = frames[0].shape[:2]
                frame = frame.reformat(width, height)
            frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack([orient(frame, video) for frame in frames])


def orient(image, video):
    """`image` as a player shows it: turned `rotation` degrees
    counter-clockwise, then mirrored (`set_display_rotation`'s order)."""
    image = np.rot90(image, (video.rotation or 0) // 90)
    return image[:, ::-1] if video.hflip else image
