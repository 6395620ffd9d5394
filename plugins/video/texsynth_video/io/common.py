"""What the clip back-ends share: suffixes, caps, the stored record, frame checks, Pillow.

* the suffix lists and default frame rates of the public API;
* the caps on what is read (:data:`MAX_VIDEO_BYTES`, :data:`MAX_FRAME_BYTES`,
  :data:`MAX_FRAMES`, :data:`MAX_FRAME_PIXELS`, :data:`MAX_METADATA_BYTES`). The other
  modules of :mod:`texsynth_video.io` read them as ``common.MAX_...`` when they run, so
  lowering one here (a test's ``monkeypatch``) reaches every back-end;
* :class:`ClipInfo`, what a probe learns from the headers;
* the checks every reader makes on frames and pixels (from the headers, then while it
  decodes) and the assembly of decoded frames ``(H, W, 3)`` uint8 into a clip
  ``(3, T, H, W)`` float32 in [0, 1];
* the JSON record ``{"format": "texsynth-clip", "fps", "frames", "metadata"}`` stored with
  a clip, and the reading of JSON settings files;
* Pillow decoding shared by animated images and frame folders: opening under the
  decompression-bomb guard and converting a frame of any mode to ``(H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
import warnings
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from texsynth.errors import InputError, UsageError
from texsynth.memory import check_signal_fits
from texsynth.validation import check_readable_file

__all__ = [
    "ANIMATED_SUFFIXES",
    "DEFAULT_ANIMATED_FPS",
    "DEFAULT_FPS",
    "FRAME_SUFFIXES",
    "MAX_FRAMES",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_PIXELS",
    "MAX_METADATA_BYTES",
    "MAX_VIDEO_BYTES",
    "PIL_ERRORS",
    "VIDEO_SUFFIXES",
    "ClipInfo",
    "check_pixels",
    "check_planned",
    "enough_frames",
    "frame_count",
    "one_line",
    "open_image",
    "parse_json",
    "parse_record",
    "read_json",
    "record_fps",
    "record_metadata",
    "record_text",
    "rgb_array",
    "to_clip",
    "too_many",
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

#: ``"format"`` of the JSON record stored with a clip.
_RECORD_FORMAT = "texsynth-clip"
#: Exceptions Pillow raises for damaged data while decoding.
PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
              IndexError, TypeError, KeyError)


@dataclass
class ClipInfo:
    """What :func:`texsynth_video.io.probe` learns from a clip's headers.

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


# -- checks on frames and pixels ---------------------------------------------------------

def one_line(text: object) -> str:
    """``text`` (an exception, a message) on one line, runs of white space made one space."""
    return " ".join(str(text).split())


def check_pixels(path: Path, height: int, width: int) -> None:
    """Refuse frames of ``height`` × ``width`` pixels that are empty or larger than
    :data:`MAX_FRAME_PIXELS`."""
    if height < 1 or width < 1:
        raise InputError(path, f"has frames of {width}x{height} pixels")
    if height * width > MAX_FRAME_PIXELS:
        raise InputError(path, f"frames of {width}x{height} ({height * width:,} pixels) are "
                               f"larger than the limit of {MAX_FRAME_PIXELS:,} pixels")


def too_many(path: Path, frames: int) -> InputError:
    """The error for a clip of ``frames`` frames, more than :data:`MAX_FRAMES`."""
    return InputError(path, f"has more than {MAX_FRAMES:,} frames ({frames:,}); read fewer "
                            "with max_frames", parameter="max_frames")


def check_planned(path: Path, frames: int, height: int, width: int,
                  max_frames: int | None) -> None:
    """Refuse from the headers a clip of too many frames or pixels, or one that will not fit
    in memory (``frames`` 0: unknown)."""
    check_pixels(path, height, width)
    if frames > MAX_FRAMES and (max_frames is None or max_frames > MAX_FRAMES):
        raise too_many(path, frames)
    planned = frames if max_frames is None else min(frames, max_frames)
    if planned > 0:
        check_signal_fits((3, planned, height, width), torch.device("cpu"),
                          what=f"reading {path.name}", copies=2)


def enough_frames(count: int, path: Path, max_frames: int | None) -> bool:
    """Whether reading stops after ``count`` frames; raise when past :data:`MAX_FRAMES`."""
    if max_frames is not None and count >= max_frames:
        return True
    if count > MAX_FRAMES:
        raise too_many(path, count)
    return False


def to_clip(frames: list[np.ndarray], order: list[int] | None = None) -> torch.Tensor:
    """Frames ``(H, W, 3)`` uint8 as a clip ``(3, T, H, W)`` float32 in [0, 1]; ``order``
    lists the frame index of each time step (repeats allowed)."""
    steps = order if order is not None else list(range(len(frames)))
    height, width = frames[0].shape[:2]
    clip = torch.empty((3, len(steps), height, width), dtype=torch.float32)
    for t, index in enumerate(steps):
        clip[:, t] = torch.from_numpy(frames[index]).permute(2, 0, 1)
    return clip.div_(255.0)


# -- the JSON record ----------------------------------------------------------------------

def record_text(fps: float, frames: int | None, metadata: Mapping[str, Any] | None) -> str:
    """The record stored with a clip, as ASCII JSON."""
    record = {"format": _RECORD_FORMAT, "fps": fps, "frames": frames,
              "metadata": dict(metadata) if metadata is not None else None}
    try:
        return json.dumps(record, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"clip metadata cannot be stored as JSON ({exc})",
                         parameter="metadata") from None


def parse_record(text: str | bytes | None) -> dict[str, Any] | None:
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


def record_fps(record: Mapping[str, Any] | None) -> float | None:
    """The frame rate (frames/s) a record states, if it is a finite positive number."""
    value = record.get("fps") if record is not None else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            math.isfinite(value) and value > 0:
        return float(value)
    return None


def record_metadata(path: Path, record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``"metadata"`` of a record (``None`` if none); not an object: an error naming
    ``path``."""
    value = record.get("metadata") if record is not None else None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError(path, "stored texsynth metadata is not a JSON object")
    return value


def parse_json(path: Path, text: str) -> Any:
    """``text`` (read from ``path``) parsed as JSON; invalid: an error naming ``path``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"stored texsynth metadata is not valid JSON ({exc})"
                         ) from None


def read_json(path: Path) -> Any:
    """The JSON in ``path`` (a settings file or sidecar)."""
    check_readable_file(path, kind="metadata file", allow_empty=True,
                        max_bytes=MAX_METADATA_BYTES)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read ({one_line(exc)})") from None
    return parse_json(path, text)


# -- pictures (Pillow), for animated images and frame folders ----------------------------

@contextlib.contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
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
        except PIL_ERRORS as exc:
            raise InputError(path, f"is corrupt or not a supported image ({one_line(exc)})"
                             ) from None
        with img:
            width, height = img.size
            check_pixels(path, height, width)
            yield img


def frame_count(img: Image.Image) -> int:
    """Frames in an opened picture (1 for a still one)."""
    return max(1, int(getattr(img, "n_frames", 1) or 1))


def rgb_array(img: Image.Image, path: Path) -> np.ndarray:
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
                               f"({one_line(exc)})") from None
