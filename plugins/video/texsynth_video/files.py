"""Clip files of the video plugin: reading and writing clips ``(3, T, H, W)``.

A *clip* is a float32 tensor ``(3, T, H, W)``: RGB, ``T`` frames of ``H``×``W`` pixels,
values in [0, 1], played at a frame rate in frames per second. Three kinds of file hold
one:

* **video files** (:data:`VIDEO_SUFFIXES`: MP4, WebM, MKV, MOV), read and written with
  PyAV (FFmpeg): the first video stream, decoded to 8-bit RGB; written as H.264
  (``libx264``) or, in WebM, VP9 (``libvpx-vp9``), tagged as BT.601 (the matrix FFmpeg's
  RGB conversion uses, so a reader that honours the tag gets the colours back);
* **animated images** (:data:`ANIMATED_SUFFIXES`: GIF, WebP, APNG / PNG), read and
  written with Pillow; every frame is composited as Pillow does when it seeks;
* **frame folders**: a directory of image files (:data:`FRAME_SUFFIXES`) whose names end
  in a number (``frame_000001.png``, ``00012.jpg``), in the order of that number, with
  the frame rate and metadata in ``<folder>/texsynth.json``.

Every reader starts with :func:`texsynth.validation.check_readable_file` (missing files,
directories, devices and FIFOs are refused before anything opens them) under a size cap,
and checks the caps on frames and pixels (:data:`MAX_FRAMES`, :data:`MAX_FRAME_PIXELS`)
from the headers before it decodes and again while it decodes. Every problem with a file
is one :class:`~texsynth.errors.InputError` naming it.

Writing goes through :class:`ClipWriter`, which encodes frames as they come and moves the
finished file into place atomically (:func:`texsynth.atomic.atomic_path`, under the run's
write policy); an aborted or failed write leaves neither the file nor a temporary one.
GIF, WebP and APNG need all frames when they are saved, so for them the writer buffers
the frames as 8-bit pictures (a quarter of the float clip's memory).

**Metadata** (a JSON-serialisable dict of settings) is stored in the file, as a JSON
record ``{"format": "texsynth-clip", "fps": ..., "frames": ..., "metadata": ...}``: in the
``comment`` tag of a video container, the comment of a GIF, the EXIF ``ImageDescription``
of a WebP, a ``tEXt`` chunk keyed ``"texsynth-clip"`` in a PNG, and ``texsynth.json`` in a
frame folder. GIF, WebP and APNG writers (Pillow) merge identical consecutive frames into
one frame shown longer; the record's frame rate lets :func:`read_clip` split them again,
so clips written here come back with all their frames. GIF delays are whole hundredths
of a second: a GIF's delays alternate (40 and 50 ms at 24 fps) so that it keeps the rate
on average. Files written elsewhere are read with the metadata the image plugin stores
(a PNG ``texsynth`` chunk, or a ``<file>.json`` sidecar), if any.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import shutil
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import av.container
import av.video.stream
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from texsynth.atomic import atomic_path, check_writable, write_error
from texsynth.domain import sidecar_path
from texsynth.errors import InputError, UsageError
from texsynth.memory import check_signal_fits
from texsynth.validation import check_output_name, check_readable_file

__all__ = [
    "ANIMATED_SUFFIXES",
    "DEFAULT_ANIMATED_FPS",
    "DEFAULT_FPS",
    "FOLDER_SETTINGS",
    "FRAME_SUFFIXES",
    "MAX_FRAMES",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_PIXELS",
    "MAX_METADATA_BYTES",
    "MAX_VIDEO_BYTES",
    "METADATA_KEY",
    "VIDEO_SUFFIXES",
    "ClipInfo",
    "ClipWriter",
    "check_output_path",
    "is_animated_image",
    "is_frame_folder",
    "probe",
    "read_clip",
    "supported_output",
    "write_clip",
]

#: Video files, read and written with PyAV.
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".webm", ".mkv", ".mov")
#: Animated images, read and written with Pillow (``.png``: APNG, or one frame).
ANIMATED_SUFFIXES: tuple[str, ...] = (".gif", ".webp", ".apng", ".png")
#: Image files that count as frames inside a frame folder.
FRAME_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Largest video or animated image file read (bytes).
MAX_VIDEO_BYTES = 4 * 1024**3
#: Largest single frame file of a frame folder read (bytes).
MAX_FRAME_BYTES = 1024**3
#: Most frames read from one clip (a bit over an hour at 24 fps).
MAX_FRAMES = 100_000
#: Most pixels in one frame (``H * W``): 8192×8192.
MAX_FRAME_PIXELS = 2**26
#: Largest ``texsynth.json`` or sidecar read (bytes).
MAX_METADATA_BYTES = 16 * 1024**2

#: Frame rate of video files and frame folders that do not state one (frames/s).
DEFAULT_FPS = 24.0
#: Frame rate of animated images without frame durations (frames/s; browsers' default).
DEFAULT_ANIMATED_FPS = 10.0
#: Key of the PNG ``tEXt`` chunk holding the clip record.
METADATA_KEY = "texsynth-clip"
#: Name of the settings file of a frame folder.
FOLDER_SETTINGS = "texsynth.json"

#: ``"format"`` of the JSON record stored with a clip.
_RECORD_FORMAT = "texsynth-clip"
#: Suffix -> PyAV (FFmpeg) muxer name.
_CONTAINERS: dict[str, str] = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska",
                               ".webm": "webm"}
#: Suffix -> Pillow format name.
_PILLOW_FORMATS: dict[str, str] = {".gif": "GIF", ".webp": "WEBP", ".apng": "PNG",
                                   ".png": "PNG"}
#: EXIF tag ``ImageDescription``, holding the record in WebP files.
_EXIF_DESCRIPTION = 0x010E
#: H.264 constant rate factor (0 lossless .. 51; 17 is visually lossless).
_X264_CRF = "17"
#: VP9 constant quality (0 .. 63) with the bit rate left free.
_VP9_CRF = "30"
#: FFmpeg colour tags written with video streams: BT.601 matrix (smpte170m, FFmpeg's RGB
#: conversion default), BT.709 (sRGB) primaries, sRGB transfer, limited range.
_COLOR_TAGS = {"colorspace": 6, "color_primaries": 1, "color_trc": 13, "color_range": 1}
#: Exceptions Pillow raises for damaged data while decoding.
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
               IndexError, TypeError, KeyError)
_NUMBERED = re.compile(r"(\d+)$")


@dataclass
class ClipInfo:
    """What :func:`probe` learns from a clip's headers.

    Attributes:
        frames: number of frames ``T`` (WebM and MKV do not store it: estimated from the
            duration).
        height: frame height ``H`` (pixels).
        width: frame width ``W`` (pixels).
        fps: frame rate (frames per second).
    """

    frames: int
    height: int
    width: int
    fps: float


# -- small helpers ------------------------------------------------------------------------

def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _av_reason(exc: BaseException) -> str:
    """FFmpeg's message without the file name PyAV appends (it may be a temporary name)."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return _one_line(reason).rstrip(".").lower()


def _note(path: Path, text: str) -> None:
    """A one-line warning about ``path`` (the CLI shows ``warning: ...``)."""
    warnings.warn(f"{path}: {text}", UserWarning, stacklevel=3)


def _check_max_frames(max_frames: int | None) -> None:
    if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 1):
        raise UsageError(f"max_frames must be a positive number of frames, got {max_frames!r}",
                         parameter="max_frames")


def _check_pixels(path: Path, height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise InputError(path, f"has frames of {width}x{height} pixels")
    if height * width > MAX_FRAME_PIXELS:
        raise InputError(path, f"frames of {width}x{height} ({height * width:,} pixels) are "
                               f"larger than the limit of {MAX_FRAME_PIXELS:,} pixels")


def _too_many(path: Path, frames: int) -> InputError:
    return InputError(path, f"has more than {MAX_FRAMES:,} frames ({frames:,}); read fewer "
                            "with max_frames", parameter="max_frames")


def _check_planned(path: Path, frames: int, height: int, width: int,
                   max_frames: int | None) -> None:
    """Refuse from the headers a clip of too many frames or pixels, or one that will not fit
    in memory (``frames`` 0: unknown)."""
    _check_pixels(path, height, width)
    if frames > MAX_FRAMES and (max_frames is None or max_frames > MAX_FRAMES):
        raise _too_many(path, frames)
    planned = frames if max_frames is None else min(frames, max_frames)
    if planned > 0:
        check_signal_fits((3, planned, height, width), torch.device("cpu"),
                          what=f"reading {path.name}", copies=2)


def _enough(count: int, path: Path, max_frames: int | None) -> bool:
    """Whether reading stops after ``count`` frames; raise when past :data:`MAX_FRAMES`."""
    if max_frames is not None and count >= max_frames:
        return True
    if count > MAX_FRAMES:
        raise _too_many(path, count)
    return False


def _to_clip(frames: list[np.ndarray], order: list[int] | None = None) -> torch.Tensor:
    """Frames ``(H, W, 3)`` uint8 as a clip ``(3, T, H, W)`` float32 in [0, 1]; ``order``
    lists the frame index of each time step (repeats allowed)."""
    steps = order if order is not None else list(range(len(frames)))
    height, width = frames[0].shape[:2]
    clip = torch.empty((3, len(steps), height, width), dtype=torch.float32)
    for t, index in enumerate(steps):
        clip[:, t] = torch.from_numpy(frames[index]).permute(2, 0, 1)
    return clip.div_(255.0)


# -- the JSON record ----------------------------------------------------------------------

def _record_text(fps: float, frames: int | None, metadata: Mapping[str, Any] | None) -> str:
    """The record stored with a clip, as ASCII JSON."""
    record = {"format": _RECORD_FORMAT, "fps": fps, "frames": frames,
              "metadata": dict(metadata) if metadata is not None else None}
    try:
        return json.dumps(record, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"clip metadata cannot be stored as JSON ({exc})",
                         parameter="metadata") from None


def _parse_record(text: str | bytes | None) -> dict[str, Any] | None:
    """The record in ``text`` if it is one written here, else ``None``."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != _RECORD_FORMAT:
        return None
    return data


def _record_fps(record: Mapping[str, Any] | None) -> float | None:
    value = record.get("fps") if record is not None else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            math.isfinite(value) and value > 0:
        return float(value)
    return None


def _record_metadata(path: Path, record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    value = record.get("metadata") if record is not None else None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError(path, "stored texsynth metadata is not a JSON object")
    return value


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"stored texsynth metadata is not valid JSON ({exc})"
                         ) from None


def _read_json(path: Path) -> Any:
    """The JSON in ``path`` (a settings file or sidecar)."""
    check_readable_file(path, kind="metadata file", allow_empty=True,
                        max_bytes=MAX_METADATA_BYTES)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read ({_one_line(exc)})") from None
    return _parse_json(path, text)


def _sidecar_metadata(path: Path) -> dict[str, Any] | None:
    """Settings from ``<file>.json`` (as the image plugin writes them), if there is one."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():  # a FIFO or device is never opened
        return None
    data = _read_json(sidecar)
    if not isinstance(data, dict):
        raise InputError(sidecar, "stored texsynth metadata is not a JSON object")
    return data


# -- video files (PyAV) -------------------------------------------------------------------

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
            return _parse_record(value)
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
                _check_pixels(path, frame.height, frame.width)
            frames.append(frame.to_ndarray(format="rgb24"))
            if _enough(len(frames), path, max_frames):
                break
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputError(path, f"is truncated or corrupt after {len(frames)} frame(s): "
                               f"{_av_reason(exc)}") from None
    return frames


def _read_video(path: Path, max_frames: int | None
                ) -> tuple[torch.Tensor, float, dict[str, Any] | None]:
    target = check_readable_file(path, kind="video file", max_bytes=MAX_VIDEO_BYTES)
    with _open_video(target) as (container, stream):
        _check_index(target, stream)
        fps = _stream_fps(stream)
        context = stream.codec_context
        listed = _header_frames(container, stream, fps)
        if context.width and context.height:
            _check_planned(target, listed, context.height, context.width, max_frames)
        metadata = _record_metadata(target, _video_record(container))
        frames = _decode_video(target, container, stream, max_frames)
    if not frames:
        raise InputError(target, "has no video frames")
    wanted = listed if max_frames is None else min(listed, max_frames)
    if len(frames) < wanted - (0 if stream.frames > 0 else 1):  # an estimate may be 1 off
        _note(target, f"the header lists {wanted} frames but only {len(frames)} could be "
                      "decoded; the file may be truncated")
    return _to_clip(frames), fps, metadata


def _probe_video(path: Path) -> ClipInfo:
    target = check_readable_file(path, kind="video file", max_bytes=MAX_VIDEO_BYTES)
    with _open_video(target) as (container, stream):
        _check_index(target, stream)
        fps = _stream_fps(stream)
        frames = _header_frames(container, stream, fps)
        height, width = stream.codec_context.height, stream.codec_context.width
    _check_pixels(target, height, width)
    return ClipInfo(frames=frames, height=height, width=width, fps=fps)


# -- animated images (Pillow) -------------------------------------------------------------

@contextlib.contextmanager
def _open_image(path: Path) -> Iterator[Image.Image]:
    """``path`` opened with Pillow; errors (a decompression bomb included) as
    :class:`InputError`."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except UnidentifiedImageError:
            raise InputError(path, "is not an image file Pillow can read (unknown format)"
                             ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InputError(path, "frames are too large (decompression-bomb guard)"
                             ) from None
        except _PIL_ERRORS as exc:
            raise InputError(path, f"is corrupt or not a supported image ({_one_line(exc)})"
                             ) from None
        with img:
            width, height = img.size
            _check_pixels(path, height, width)
            yield img


def _frame_count(img: Image.Image) -> int:
    return max(1, int(getattr(img, "n_frames", 1) or 1))


def _image_record(img: Image.Image) -> dict[str, Any] | None:
    """The record stored in a GIF comment, WebP EXIF description or PNG text chunk."""
    if img.format == "GIF":
        return _parse_record(img.info.get("comment"))
    if img.format == "WEBP":
        return _parse_record(img.getexif().get(_EXIF_DESCRIPTION))
    if img.format == "PNG":
        text = img.info.get(METADATA_KEY)
        return _parse_record(text if isinstance(text, (str, bytes)) else None)
    return None


def _rgb_array(img: Image.Image, path: Path) -> np.ndarray:
    """One decoded frame of any mode as ``(H, W, 3)`` uint8 RGB (alpha dropped)."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        values = np.asarray(img).astype(np.float32)
        if not np.isfinite(values).all():
            raise InputError(path, "contains NaN or infinite pixel values")
        scale = 65535.0 if img.mode.startswith("I;16") or values.max(initial=0) > 255 else 255
        grey = np.clip(np.rint(values * (255.0 / scale)), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    try:
        return np.array(img.convert("RGB"), dtype=np.uint8)
    except ValueError as exc:
        raise InputError(path, f"image mode {img.mode!r} cannot be converted to RGB "
                               f"({_one_line(exc)})") from None


def _decode_animated(path: Path, img: Image.Image, max_frames: int | None
                     ) -> tuple[list[np.ndarray], list[float]]:
    """Frames ``(H, W, 3)`` uint8 and their durations (ms; 0 where none is given)."""
    frames: list[np.ndarray] = []
    durations: list[float] = []
    try:
        for index in range(_frame_count(img)):
            img.seek(index)
            img.load()
            frames.append(_rgb_array(img, path))
            duration = img.info.get("duration")
            durations.append(float(duration) if isinstance(duration, (int, float))
                             and duration > 0 else 0.0)
            if _enough(len(frames), path, max_frames):
                break
    except _PIL_ERRORS as exc:
        raise InputError(path, f"is truncated or corrupt after {len(frames)} frame(s) "
                               f"({_one_line(exc)})") from None
    return frames, durations


def _timing(durations: list[float], record: Mapping[str, Any] | None, complete: bool
            ) -> tuple[float, list[int]]:
    """The frame rate, and how many time steps each decoded frame lasts.

    With the rate stored by :class:`ClipWriter`, a frame shown ``k`` frame periods (one
    that Pillow merged from ``k`` identical frames) lasts ``k`` steps; frame starts are
    rounded to the nearest period, so rounded delays do not add up, and when every frame
    was decoded (``complete``) the last one is held up to the stored number of frames (a
    still PNG or WebP is what Pillow makes of a clip of identical frames). Without it
    each frame is one step at the rate of the first frame's delay.
    """
    stored_fps = _record_fps(record)
    if stored_fps is None:
        first = durations[0] if durations else 0.0
        return (1000.0 / first if first > 0 else DEFAULT_ANIMATED_FPS), [1] * len(durations)
    period = 1000.0 / stored_fps
    starts, elapsed = [], 0.0
    for duration in durations:
        starts.append(round(elapsed / period))
        elapsed += duration if duration > 0 else period
    ends = [*starts[1:], max(starts[-1] + 1, round(elapsed / period))]
    repeats = [max(1, end - start) for start, end in zip(starts, ends, strict=True)]
    stored = record.get("frames") if record is not None else None
    if complete and isinstance(stored, int) and not isinstance(stored, bool) and \
            sum(repeats) < stored <= MAX_FRAMES:
        repeats[-1] += stored - sum(repeats)
    return stored_fps, repeats


def _read_animated(path: Path, max_frames: int | None
                   ) -> tuple[torch.Tensor, float, dict[str, Any] | None]:
    target = check_readable_file(path, kind="animated image", max_bytes=MAX_VIDEO_BYTES)
    with _open_image(target) as img:
        width, height = img.size
        _check_planned(target, _frame_count(img), height, width, max_frames)
        record = _image_record(img)
        frames, durations = _decode_animated(target, img, max_frames)
        complete = len(frames) == _frame_count(img)
        image_text = img.info.get("texsynth") if img.format == "PNG" else None
    fps, repeats = _timing(durations, record, complete)
    steps = sum(repeats) if max_frames is None else min(sum(repeats), max_frames)
    if steps > MAX_FRAMES:
        raise _too_many(target, sum(repeats))
    check_signal_fits((3, steps, height, width), torch.device("cpu"),
                      what=f"reading {target.name}", copies=2)
    order = list(itertools.islice(
        (index for index, count in enumerate(repeats) for _ in range(count)), steps))
    if record is not None:
        metadata = _record_metadata(target, record)
    elif isinstance(image_text, str):  # a picture of the image plugin: its PNG chunk
        metadata = _record_metadata(target, {"metadata": _parse_json(target, image_text)})
    else:
        metadata = _sidecar_metadata(target)
    return _to_clip(frames, order), fps, metadata


def _probe_animated(path: Path) -> ClipInfo:
    target = check_readable_file(path, kind="animated image", max_bytes=MAX_VIDEO_BYTES)
    with _open_image(target) as img:
        width, height = img.size
        record = _image_record(img)
        frames = _frame_count(img)
        if img.format == "WEBP":  # WebP delays are known once a frame is decoded
            with contextlib.suppress(*_PIL_ERRORS):
                img.load()
        duration = img.info.get("duration")
    fps = _record_fps(record)
    stored = record.get("frames") if record is not None else None
    if fps is not None and isinstance(stored, int) and stored > 0:
        return ClipInfo(frames=stored, height=height, width=width, fps=fps)
    if fps is None:
        fps = (1000.0 / duration if isinstance(duration, (int, float)) and duration > 0
               else DEFAULT_ANIMATED_FPS)
    return ClipInfo(frames=frames, height=height, width=width, fps=fps)


# -- frame folders ------------------------------------------------------------------------

def _frame_number(name: str) -> int | None:
    """The number ending the stem of a frame file name, else ``None``."""
    if name.startswith("."):
        return None
    stem, suffix = os.path.splitext(name)
    if suffix.lower() not in FRAME_SUFFIXES:
        return None
    match = _NUMBERED.search(stem)
    if match is None or len(match.group(1)) > 18:
        return None
    return int(match.group(1))


def _list_frames(folder: Path) -> list[Path]:
    """The frame files of ``folder`` in the order of their numbers."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise InputError(folder, f"cannot be read: {_one_line(exc.strerror or exc).lower()}"
                         ) from None
    numbered: dict[int, str] = {}
    for name in names:
        number = _frame_number(name)
        if number is None:
            continue
        if number in numbered:
            raise InputError(folder, f"holds two frames numbered {number}: "
                                     f"{numbered[number]} and {name}")
        numbered[number] = name
    if not numbered:
        raise InputError(folder, "is a folder without numbered frames (e.g. frame_0001.png)")
    return [folder / numbered[number] for number in sorted(numbered)]


def _folder_record(folder: Path) -> dict[str, Any] | None:
    settings = folder / FOLDER_SETTINGS
    if not settings.is_file():
        return None
    data = _read_json(settings)
    if not isinstance(data, dict):
        raise InputError(settings, "is not a JSON object")
    return data


def _read_frame(path: Path, size: tuple[int, int] | None, folder: Path) -> np.ndarray:
    """One frame file as ``(H, W, 3)`` uint8; ``size`` ``(W, H)`` it must have."""
    target = check_readable_file(path, kind="frame image", max_bytes=MAX_FRAME_BYTES)
    with _open_image(target) as img:
        if size is not None and img.size != size:
            raise InputError(folder, f"frames of different sizes: {target.name} is "
                                     f"{img.width}x{img.height}, the first {size[0]}x{size[1]}")
        try:
            img.seek(0)
            img.load()
        except _PIL_ERRORS as exc:
            raise InputError(target, f"image data is truncated or corrupt ({_one_line(exc)})"
                             ) from None
        return _rgb_array(img, target)


def _read_folder(folder: Path, max_frames: int | None
                 ) -> tuple[torch.Tensor, float, dict[str, Any] | None]:
    paths = _list_frames(folder)
    if len(paths) > MAX_FRAMES and (max_frames is None or max_frames > MAX_FRAMES):
        raise _too_many(folder, len(paths))
    paths = paths[:max_frames] if max_frames is not None else paths
    record = _folder_record(folder)
    first = _read_frame(paths[0], None, folder)
    height, width = first.shape[:2]
    _check_planned(folder, len(paths), height, width, max_frames)
    frames = [first] + [_read_frame(p, (width, height), folder) for p in paths[1:]]
    fps = _record_fps(record) or DEFAULT_FPS
    return _to_clip(frames), fps, _record_metadata(folder / FOLDER_SETTINGS, record)


def _probe_folder(folder: Path) -> ClipInfo:
    paths = _list_frames(folder)
    target = check_readable_file(paths[0], kind="frame image", max_bytes=MAX_FRAME_BYTES)
    with _open_image(target) as img:
        width, height = img.size
    fps = _record_fps(_folder_record(folder)) or DEFAULT_FPS
    return ClipInfo(frames=len(paths), height=height, width=width, fps=fps)


# -- reading: the public functions --------------------------------------------------------

def _kind(path: Path) -> str:
    """``"folder"``, ``"video"`` or ``"animated"`` for a path to read (by suffix; an
    unknown suffix by content: what Pillow opens is an animated image)."""
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in ANIMATED_SUFFIXES:
        return "animated"
    check_readable_file(path, kind="clip file", max_bytes=MAX_VIDEO_BYTES)
    try:
        with Image.open(path):
            return "animated"
    except Exception:  # not an image: let PyAV (FFmpeg) try
        return "video"


def probe(path: str | os.PathLike[str]) -> ClipInfo:
    """Frames, picture size and frame rate of a clip, from its headers (nothing decoded
    but, for a frame folder, the first frame's header).

    Raises:
        InputError: the file or folder is missing, unreadable, not a clip, or its frames
            are larger than :data:`MAX_FRAME_PIXELS`.
    """
    target = Path(path)
    kind = _kind(target)
    if kind == "folder":
        return _probe_folder(target)
    if kind == "video":
        return _probe_video(target)
    return _probe_animated(target)


def read_clip(path: str | os.PathLike[str], *, max_frames: int | None = None
              ) -> tuple[torch.Tensor, float, dict[str, Any] | None]:
    """Read a clip: a video file, an animated image or a frame folder.

    Args:
        path: the file or folder (the kind follows the suffix; a directory is a frame
            folder).
        max_frames: read at most this many frames (the first ones); ``None``: all, up to
            :data:`MAX_FRAMES`.

    Returns:
        ``(clip, fps, metadata)``: the clip ``(3, T, H, W)`` float32 in [0, 1] (``T >=
        1``), its frame rate (frames per second; video: the stream's average rate, else
        24; animated images: the rate stored by :class:`ClipWriter`, else the first
        frame's delay, else 10; folders: ``texsynth.json``, else 24), and the metadata
        stored with it (``None`` if there is none).

    Raises:
        UsageError: ``max_frames`` is not a positive integer.
        InputError: one line naming the file: missing, unreadable, larger than
            :data:`MAX_VIDEO_BYTES`, not decodable, no video stream, no frames, more than
            :data:`MAX_FRAMES` frames or :data:`MAX_FRAME_PIXELS` pixels a frame, frames
            of different sizes, truncated or corrupt data, invalid stored metadata.
        ResourceError: the decoded clip would not fit in memory.
    """
    _check_max_frames(max_frames)
    target = Path(path)
    kind = _kind(target)
    if kind == "folder":
        return _read_folder(target, max_frames)
    if kind == "video":
        return _read_video(target, max_frames)
    return _read_animated(target, max_frames)


def is_animated_image(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an existing GIF, WebP or PNG (APNG) file of more than one frame.
    Never raises: anything unreadable is ``False``."""
    try:
        target = Path(path)
        if not target.is_file() or target.stat().st_size > MAX_VIDEO_BYTES:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(target) as img:
                return img.format in ("GIF", "WEBP", "PNG") and _frame_count(img) > 1
    except Exception:
        return False


def is_frame_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an existing directory holding at least one image file whose
    stem ends in a number (``frame_0001.png``, ``00012.jpg``). Never raises."""
    try:
        with os.scandir(path) as entries:
            return any(_frame_number(entry.name) is not None and entry.is_file()
                       for entry in entries)
    except (OSError, TypeError, ValueError):
        return False


# -- writing ------------------------------------------------------------------------------

def supported_output(path: str | os.PathLike[str]) -> bool:
    """Whether :class:`ClipWriter` can write ``path``: a suffix of :data:`VIDEO_SUFFIXES`
    or :data:`ANIMATED_SUFFIXES`, or none (a frame folder)."""
    suffix = Path(path).suffix.lower()
    return not suffix or suffix in _CONTAINERS or suffix in _PILLOW_FORMATS


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output :class:`ClipWriter` cannot write.

    Raises:
        UsageError: an unknown suffix (the message lists the known ones) or a name the
            file system cannot hold.
        InputError: a frame folder's target exists and is a file or a non-empty folder;
            or, under a write policy, the file exists and may not be replaced.
    """
    target = Path(path)
    if not supported_output(target):
        raise UsageError(f"{target}: cannot write {target.suffix!r} clips; use one of "
                         f"{', '.join((*VIDEO_SUFFIXES, *ANIMATED_SUFFIXES))}, or a name "
                         "without a suffix for a folder of frames")
    check_output_name(target)
    if not target.suffix:
        _check_folder_target(target)
    check_writable(target)


def _check_folder_target(target: Path) -> None:
    if target.is_dir():
        with contextlib.suppress(OSError):
            if any(os.scandir(target)):
                raise InputError(target, "is a folder that is not empty; write the frames "
                                         "to a new folder")
    elif os.path.lexists(target):
        raise InputError(target, "exists and is not a folder; a name without a suffix is "
                                 "written as a folder of frames")


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


class _VideoSink:
    """Encodes frames with PyAV into a temporary file of :func:`atomic_path`."""

    def __init__(self, target: Path, height: int, width: int, fps: float, record: str
                 ) -> None:
        self.target = target
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(target))
        suffix = target.suffix.lower()
        codec, pixels, options = _encoder(suffix, height, width)
        muxer = {"movflags": "+faststart"} if suffix in (".mp4", ".mov") else {}
        try:
            self._container = av.open(str(tmp), mode="w", format=_CONTAINERS[suffix],
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
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            raise self._error(exc) from None
        self._stack.close()  # fsync and rename into place

    def abort(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        self._stack.__exit__(_Aborted, _Aborted(), None)


class _PillowSink:
    """Buffers frames as 8-bit pictures and saves them all with Pillow on :meth:`finish`
    (GIF, WebP and APNG are written in one go)."""

    def __init__(self, target: Path, fps: float, metadata: Mapping[str, Any] | None
                 ) -> None:
        self.target = target
        self.fps = fps
        self.metadata = metadata
        self._frames: list[Image.Image] = []

    def write(self, frames: np.ndarray) -> None:
        self._frames.extend(Image.fromarray(array) for array in frames)

    def _options(self) -> dict[str, Any]:
        fmt = _PILLOW_FORMATS[self.target.suffix.lower()]
        record = _record_text(self.fps, len(self._frames), self.metadata)
        options: dict[str, Any] = {"format": fmt, "save_all": True, "loop": 0,
                                   "duration": 1000.0 / self.fps}
        if fmt == "GIF":  # whole 1/100 s delays whose running sum keeps to the rate
            ticks = [round(i * 100 / self.fps) for i in range(len(self._frames) + 1)]
            options["duration"] = [max(1, b - a) * 10 for a, b in itertools.pairwise(ticks)]
            options["comment"] = record
        elif fmt == "WEBP":
            exif = Image.Exif()
            exif[_EXIF_DESCRIPTION] = record
            options.update(lossless=True, quality=80, method=4, exif=exif.tobytes())
        else:
            info = PngInfo()
            info.add_text(METADATA_KEY, record)
            options["pnginfo"] = info
        return options

    def finish(self) -> None:
        options = self._options()
        frames = self._frames
        if options["format"] == "GIF":  # one 256-colour palette per frame, no dithering
            frames = [f.quantize(256, method=Image.Quantize.MEDIANCUT,
                                 dither=Image.Dither.NONE) for f in frames]
        try:
            with atomic_path(self.target) as tmp:
                frames[0].save(tmp, append_images=frames[1:], **options)
        except (ValueError, TypeError, struct.error, zlib.error) as exc:
            raise InputError(self.target, f"cannot write the animated image "
                                          f"({_one_line(exc)})") from None
        finally:
            self._frames = []

    def abort(self) -> None:
        self._frames = []


class _FolderSink:
    """Writes numbered PNG frames into a temporary folder beside the target, renamed into
    place (with ``texsynth.json``) on :meth:`finish`."""

    def __init__(self, target: Path, fps: float, metadata: Mapping[str, Any] | None
                 ) -> None:
        self.target = target
        self.fps = fps
        self.metadata = metadata
        _check_folder_target(target)
        check_writable(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._tmp: Path | None = Path(tempfile.mkdtemp(
                prefix=f".{target.name[:200]}.", suffix=".tmp", dir=target.parent))
        except OSError as exc:
            raise write_error(target, exc) from None
        self._count = 0

    def write(self, frames: np.ndarray) -> None:
        assert self._tmp is not None
        for array in frames:
            self._count += 1
            file = self._tmp / f"frame_{self._count:06d}.png"
            try:
                with open(file, "wb") as handle:
                    Image.fromarray(array).save(handle, format="PNG")
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise write_error(self.target, exc) from None

    def finish(self) -> None:
        assert self._tmp is not None
        record = _record_text(self.fps, self._count, self.metadata)
        data = json.loads(record)
        try:
            with open(self._tmp / FOLDER_SETTINGS, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            _fsync_dir(self._tmp)
            _check_folder_target(self.target)
            check_writable(self.target)
            os.rename(self._tmp, self.target)  # replaces at most an empty folder
        except OSError as exc:
            raise write_error(self.target, exc) from None
        self._tmp = None
        _fsync_dir(self.target.parent)

    def abort(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_fps(fps: float) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) \
            or not 0 < fps <= 1000:
        raise UsageError(f"fps must be a frame rate in (0, 1000] frames per second, got "
                         f"{fps!r}", parameter="fps")
    return float(fps)


def _check_extent(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive number of pixels, got {value!r}",
                         parameter=name)
    return value


def _to_uint8(frames: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Frames ``(3, n, H, W)`` in [0, 1] as ``(n, H, W, 3)`` uint8 (clamped, rounded; NaN
    becomes 0)."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[0] != 3 \
            or tuple(frames.shape[2:]) != (height, width):
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames)
        raise UsageError(f"frames must be a tensor (3, n, {height}, {width}), got {shape}")
    data = torch.nan_to_num(frames.detach().to("cpu", torch.float32), nan=0.0)
    data = data.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return data.permute(1, 2, 3, 0).contiguous().numpy()


class ClipWriter:
    """Writes a clip frame block by frame block and moves it into place atomically.

    The format follows the suffix of ``path``:

    * ``.mp4``, ``.mkv``, ``.mov``: H.264 (``libx264``, CRF 17, preset medium), ``yuv420p``
      when ``height`` and ``width`` are even, else ``yuv444p``; MP4 and MOV with the index
      at the front (``+faststart``);
    * ``.webm``: VP9 (``libvpx-vp9``, constant quality CRF 30 with no bit-rate cap,
      ``yuv420p``);
    * ``.gif``: one 256-colour palette per frame (median cut, no dithering);
      ``.webp``: lossless; ``.apng``, ``.png``: APNG (lossless); all looping forever.
      These need every frame at save time: frames are buffered as 8-bit pictures;
    * no suffix: a folder of ``frame_000001.png`` ... with ``texsynth.json`` (frame rate
      and metadata), written into a temporary folder beside it and renamed into place;
      an existing non-empty folder is refused.

    Video frames are encoded as they come, so memory stays bounded however long the
    clip. ``metadata`` is stored as the module docstring says. Used as a context manager,
    leaving the block normally closes the writer and leaving it by an exception aborts
    it.

    Args:
        path: the file or folder to write.
        height: frame height ``H`` (pixels).
        width: frame width ``W`` (pixels).
        fps: frame rate (frames per second, at most 1000); video streams get
            ``Fraction(fps).limit_denominator(1001)``, or ``N * 1000/1001`` for the
            NTSC-style rates (29.97 -> 30000/1001).
        metadata: JSON-serialisable settings stored with the clip.

    Attributes:
        path: the final file or folder.
        frames_written: frames passed to :meth:`write` so far.

    Raises:
        UsageError: unknown suffix, bad size or frame rate, metadata that is not JSON.
        InputError: the output cannot be written (an existing file under a write policy
            without ``overwrite``, a non-empty target folder, no space, ...).
    """

    def __init__(self, path: str | os.PathLike[str], *, height: int, width: int,
                 fps: float, metadata: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.height = _check_extent(height, "height")
        self.width = _check_extent(width, "width")
        if height * width > MAX_FRAME_PIXELS:
            raise UsageError(f"frames of {width}x{height} pixels are larger than the limit "
                             f"of {MAX_FRAME_PIXELS:,} pixels")
        self.fps = _check_fps(fps)
        self.metadata = dict(metadata) if metadata is not None else None
        self.frames_written = 0
        check_output_path(self.path)
        record = _record_text(self.fps, None, self.metadata)  # refuses non-JSON early
        suffix = self.path.suffix.lower()
        self._sink: _VideoSink | _PillowSink | _FolderSink
        if suffix in _CONTAINERS:
            self._sink = _VideoSink(self.path, self.height, self.width, self.fps, record)
        elif suffix:
            self._sink = _PillowSink(self.path, self.fps, self.metadata)
        else:
            self._sink = _FolderSink(self.path, self.fps, self.metadata)
        self._state = "open"

    def write(self, frames: torch.Tensor) -> None:
        """Encode frames ``(3, n, H, W)`` (float, values clamped to [0, 1] and rounded to
        8 bits); ``n`` may be 0. A failed encode aborts the writer.

        Raises:
            UsageError: the writer is closed, the frames have another shape, or the clip
                would pass :data:`MAX_FRAMES`.
            InputError: the output cannot be written.
        """
        if self._state != "open":
            raise UsageError(f"{self.path}: the clip writer is {self._state}")
        array = _to_uint8(frames, self.height, self.width)
        if self.frames_written + len(array) > MAX_FRAMES:
            raise UsageError(f"{self.path}: a clip holds at most {MAX_FRAMES:,} frames")
        if not len(array):
            return
        try:
            self._sink.write(array)
        except BaseException:
            self.abort()
            raise
        self.frames_written += len(array)

    def close(self) -> Path:
        """Finish the clip and move it into place; returns :attr:`path`. Safe to call
        twice.

        Raises:
            UsageError: no frames were written (nothing is left on disk), or the writer
                was aborted.
            InputError: the output cannot be written (then nothing is left either).
        """
        if self._state == "closed":
            return self.path
        if self._state == "aborted":
            raise UsageError(f"{self.path}: the clip writer was aborted; nothing saved")
        if self.frames_written == 0:
            self.abort()
            raise UsageError(f"{self.path}: no frames were written; nothing saved")
        try:
            self._sink.finish()
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        return self.path

    def abort(self) -> None:
        """Drop the clip: nothing (no temporary file either) is left. Safe to call twice;
        does nothing after :meth:`close`."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._sink.abort()

    def __del__(self) -> None:
        # a writer dropped without close() or abort() leaves no temporary file behind
        with contextlib.suppress(Exception):
            if getattr(self, "_state", None) == "open":
                self.abort()

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def write_clip(path: str | os.PathLike[str], clip: torch.Tensor, fps: float,
               metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a whole clip ``(3, T, H, W)`` in [0, 1] through a :class:`ClipWriter`;
    returns ``path``.

    Raises:
        UsageError: ``clip`` is not ``(3, T, H, W)`` with ``T >= 1``, or see
            :class:`ClipWriter`.
        InputError: the output cannot be written.
    """
    if not isinstance(clip, torch.Tensor) or clip.dim() != 4 or clip.shape[0] != 3:
        shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip)
        raise UsageError(f"a clip must be a tensor (3, T, H, W), got {shape}")
    with ClipWriter(path, height=int(clip.shape[2]), width=int(clip.shape[3]), fps=fps,
                    metadata=metadata) as writer:
        writer.write(clip)
    return Path(path)
