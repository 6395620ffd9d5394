"""Video files (MP4, WebM, MKV, MOV) through PyAV (FFmpeg): reading, probing, encoding.

Reading takes the first video stream, decoded to 8-bit RGB, with the record in the
container's ``comment`` tag. :class:`VideoSink` encodes H.264 (``libx264``) or, in WebM,
VP9 (``libvpx-vp9``), tagged as BT.601 (the matrix FFmpeg's RGB conversion uses, so a
reader that honours the tag gets the colours back), into a temporary file of
:func:`texsynth.atomic.atomic_path` moved into place when it finishes.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
import av.video.stream
import numpy as np
import torch

from texsynth.atomic import atomic_path, write_error
from texsynth.errors import InputError
from texsynth.validation import check_readable_file

from . import common
from .common import (
    DEFAULT_FPS,
    ClipInfo,
    check_pixels,
    check_planned,
    enough_frames,
    one_line,
    parse_record,
    record_metadata,
    to_clip,
)

__all__ = ["CONTAINERS", "VideoSink", "probe_video", "read_video"]


#: Suffix -> PyAV (FFmpeg) muxer name.
CONTAINERS: dict[str, str] = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska",
                              ".webm": "webm"}
#: H.264 constant rate factor (0 lossless .. 51; 17 is visually lossless).
_X264_CRF = "17"
#: VP9 constant quality (0 .. 63) with the bit rate left free.
_VP9_CRF = "30"
#: FFmpeg colour tags written with video streams: BT.601 matrix (smpte170m, FFmpeg's RGB
#: conversion default), BT.709 (sRGB) primaries, sRGB transfer, limited range.
_COLOR_TAGS = {"colorspace": 6, "color_primaries": 1, "color_trc": 13, "color_range": 1}


def _av_reason(exc: BaseException) -> str:
    """FFmpeg's message without the file name PyAV appends (it may be a temporary name)."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return one_line(reason).rstrip(".").lower()


def _note(path: Path, text: str) -> None:
    """A one-line warning about ``path`` (the CLI shows ``warning: ...``)."""
    warnings.warn(f"{path}: {text}", UserWarning, stacklevel=3)


# -- reading ------------------------------------------------------------------------------

@contextlib.contextmanager
def _open_video(path: Path) -> Iterator[tuple[av.container.InputContainer,
                                               av.video.stream.VideoStream]]:
    """``path`` opened with PyAV, with its first video stream; errors as :class:`InputError`."""
    try:
        container = av.open(str(path), mode="r", metadata_errors="replace")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"is not a video PyAV can read: {_av_reason(exc)}") from None
    with container:
        if not container.streams.video:
            raise InputError(path, "has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise InputError(path, "has a video stream in a codec FFmpeg cannot decode")
        stream.thread_type = "AUTO"
        yield container, stream


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    """The stream's average frame rate, else its base or guessed rate, else 24."""
    for rate in (stream.average_rate, stream.base_rate, stream.guessed_rate):
        if rate is not None and rate > 0 and math.isfinite(float(rate)):
            return float(rate)
    return DEFAULT_FPS


def _header_frames(container: av.container.InputContainer,
                   stream: av.video.stream.VideoStream, fps: float) -> int:
    """Frames the headers list, or estimate from the duration; 0 if unknown."""
    if stream.frames > 0:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None:
        return max(0, round(float(stream.duration * stream.time_base) * fps))
    if container.duration is not None and container.duration > 0:
        return max(0, round(container.duration / av.time_base * fps))
    return 0


def _check_index(path: Path, stream: av.video.stream.VideoStream) -> None:
    """Refuse a file whose index (MP4, MOV) points past its end: it was cut short."""
    try:
        end = max((entry.pos + entry.size for entry in stream.index_entries), default=0)
        size = path.stat().st_size
    except (OSError, av.FFmpegError, AttributeError):
        return
    if end > size:
        raise InputError(path, f"is truncated: its index points {end - size:,} bytes past "
                               "the end of the file")


def _video_record(container: av.container.InputContainer) -> dict[str, Any] | None:
    """The record in the container's ``comment`` tag (any case: Matroska writes
    ``COMMENT``)."""
    for key, value in container.metadata.items():
        if key.lower() == "comment":
            return parse_record(value)
    return None


def _decode_video(path: Path, container: av.container.InputContainer,
                  stream: av.video.stream.VideoStream,
                  max_frames: int | None) -> list[np.ndarray]:
    """Decode frames ``(H, W, 3)`` uint8 until the stream ends or ``max_frames``."""
    frames: list[np.ndarray] = []
    if max_frames is not None and max_frames < 1:
        return frames
    try:
        for frame in container.decode(stream):
            if frames and (frame.height, frame.width) != frames[0].shape[:2]:
                first = frames[0].shape
                raise InputError(path, f"frames of different sizes: frame {len(frames) + 1} "
                                       f"is {frame.width}x{frame.height}, the first "
                                       f"{first[1]}x{first[0]}")
            if not frames:
                check_pixels(path, frame.height, frame.width)
            frames.append(frame.to_ndarray(format="rgb24"))
            if enough_frames(len(frames), path, max_frames):
                break
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputError(path, f"is truncated or corrupt after {len(frames)} frame(s): "
                               f"{_av_reason(exc)}") from None
    return frames


def read_video(path: Path, max_frames: int | None
               ) -> tuple[torch.Tensor, float, dict[str, Any] | None]:
    """A video file as ``(clip, fps, metadata)``: the clip ``(3, T, H, W)`` float32 in
    [0, 1], the stream's rate (frames/s; 24 if it states none) and the stored metadata;
    a header listing more frames than decode gives a warning."""
    target = check_readable_file(path, kind="video file", max_bytes=common.MAX_VIDEO_BYTES)
    with _open_video(target) as (container, stream):
        _check_index(target, stream)
        fps = _stream_fps(stream)
        context = stream.codec_context
        listed = _header_frames(container, stream, fps)
        if context.width and context.height:
            check_planned(target, listed, context.height, context.width, max_frames)
        metadata = record_metadata(target, _video_record(container))
        frames = _decode_video(target, container, stream, max_frames)
    if not frames:
        raise InputError(target, "has no video frames")
    wanted = listed if max_frames is None else min(listed, max_frames)
    if len(frames) < wanted - (0 if stream.frames > 0 else 1):  # an estimate may be 1 off
        _note(target, f"the header lists {wanted} frames but only {len(frames)} could be "
                      "decoded; the file may be truncated")
    return to_clip(frames), fps, metadata


def probe_video(path: Path) -> ClipInfo:
    """Frames, picture size and rate of a video file, from its headers."""
    target = check_readable_file(path, kind="video file", max_bytes=common.MAX_VIDEO_BYTES)
    with _open_video(target) as (container, stream):
        _check_index(target, stream)
        fps = _stream_fps(stream)
        frames = _header_frames(container, stream, fps)
        height, width = stream.codec_context.height, stream.codec_context.width
    check_pixels(target, height, width)
    return ClipInfo(frames=frames, height=height, width=width, fps=fps)


# -- writing ------------------------------------------------------------------------------

class _Aborted(Exception):
    """Thrown into :func:`atomic_path` to drop its temporary file."""


def _encoder(suffix: str, height: int, width: int) -> tuple[str, str, dict[str, str]]:
    """Codec, pixel format and codec options for a video suffix."""
    if suffix == ".webm":
        return "libvpx-vp9", "yuv420p", {"crf": _VP9_CRF, "b": "0", "row-mt": "1",
                                         "deadline": "good", "cpu-used": "2"}
    pixels = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
    return "libx264", pixels, {"crf": _X264_CRF, "preset": "medium"}


def _rate(fps: float) -> Fraction:
    """The stream rate for ``fps``: ``N * 1000/1001`` for the NTSC-style rates (23.976,
    29.97, 59.94 ...), else ``Fraction(fps).limit_denominator(1001)``."""
    whole = round(fps * 1.001)
    if fps != int(fps) and whole > 0 and abs(fps * 1.001 - whole) < 1e-3:
        return Fraction(whole * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


class VideoSink:
    """Encodes frames with PyAV into a temporary file of :func:`atomic_path`.

    Args:
        target: the video file to write (its suffix, one of :data:`CONTAINERS`, picks the
            container and codec).
        height: frame height ``H`` (pixels).
        width: frame width ``W`` (pixels).
        fps: frame rate (frames per second).
        record: the JSON record for the container's ``comment`` tag.
    """

    def __init__(self, target: Path, height: int, width: int, fps: float, record: str
                 ) -> None:
        self.target = target
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(target))
        suffix = target.suffix.lower()
        codec, pixels, options = _encoder(suffix, height, width)
        muxer = {"movflags": "+faststart"} if suffix in (".mp4", ".mov") else {}
        try:
            self._container = av.open(str(tmp), mode="w", format=CONTAINERS[suffix],
                                      options=muxer)
            self._container.metadata["comment"] = record
            stream = self._container.add_stream(codec, rate=_rate(fps), options=options)
            if not isinstance(stream, av.video.stream.VideoStream):
                raise av.FFmpegError(0, f"{codec} is not a video encoder")
            self._stream = stream
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = pixels
            for name, value in _COLOR_TAGS.items():
                setattr(self._stream.codec_context, name, value)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, (av.FFmpegError, OSError)):
                raise self._error(exc) from None
            raise
        self._next = 0

    def _error(self, exc: BaseException) -> InputError:
        if isinstance(exc, OSError) and exc.errno and not isinstance(exc, av.FFmpegError):
            return write_error(self.target, exc)
        return InputError(self.target, f"cannot write the video ({_av_reason(exc)})")

    def write(self, frames: np.ndarray) -> None:
        """Encode frames ``(n, H, W, 3)`` uint8."""
        try:
            for array in frames:
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                frame.pts = self._next
                self._next += 1
                self._container.mux(self._stream.encode(frame))
        except (av.FFmpegError, OSError) as exc:
            raise self._error(exc) from None

    def finish(self) -> None:
        """Flush the encoder, close the container and move the file into place."""
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            raise self._error(exc) from None
        self._stack.close()  # fsync and rename into place

    def abort(self) -> None:
        """Close the container and drop the temporary file."""
        container = getattr(self, "_container", None)
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        self._stack.__exit__(_Aborted, _Aborted(), None)
