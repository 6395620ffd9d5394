"""Animated images (GIF, WebP, APNG / PNG) through Pillow: reading, probing, saving.

Every frame is composited as Pillow does when it seeks. The record is the comment of a
GIF, the EXIF ``ImageDescription`` of a WebP, a ``tEXt`` chunk keyed
:data:`METADATA_KEY` in a PNG. Pillow merges identical consecutive frames into one frame
shown longer; the record's frame rate lets :func:`read_animated` split them again. GIF
delays are whole hundredths of a second: :class:`PillowSink` alternates them (40 and
50 ms at 24 fps) so that the rate holds on average. Pictures written elsewhere are read
with the metadata the image plugin stores (a PNG ``texsynth`` chunk, or a ``<file>.json``
sidecar), if any.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from texsynth.atomic import atomic_path
from texsynth.domain import sidecar_path
from texsynth.errors import InputError
from texsynth.memory import check_signal_fits
from texsynth.validation import check_readable_file

from . import common
from .common import (
    DEFAULT_ANIMATED_FPS,
    PIL_ERRORS,
    ClipInfo,
    check_planned,
    enough_frames,
    frame_count,
    one_line,
    open_image,
    parse_json,
    parse_record,
    read_json,
    record_fps,
    record_metadata,
    record_text,
    rgb_array,
    to_clip,
    too_many,
)

__all__ = [
    "METADATA_KEY",
    "PILLOW_FORMATS",
    "PillowSink",
    "is_animated_image",
    "probe_animated",
    "read_animated",
]


#: Key of the PNG ``tEXt`` chunk holding the clip record.
METADATA_KEY = "texsynth-clip"
#: Suffix -> Pillow format name.
PILLOW_FORMATS: dict[str, str] = {".gif": "GIF", ".webp": "WEBP", ".apng": "PNG",
                                  ".png": "PNG"}
#: EXIF tag ``ImageDescription``, holding the record in WebP files.
_EXIF_DESCRIPTION = 0x010E


# -- reading ------------------------------------------------------------------------------

def _sidecar_metadata(path: Path) -> dict[str, Any] | None:
    """Settings from ``<file>.json`` (as the image plugin writes them), if there is one."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():  # a FIFO or device is never opened
        return None
    data = read_json(sidecar)
    if not isinstance(data, dict):
        raise InputError(sidecar, "stored texsynth metadata is not a JSON object")
    return data


def _image_record(img: Image.Image) -> dict[str, Any] | None:
    """The record stored in a GIF comment, WebP EXIF description or PNG text chunk."""
    if img.format == "GIF":
        return parse_record(img.info.get("comment"))
    if img.format == "WEBP":
        return parse_record(img.getexif().get(_EXIF_DESCRIPTION))
    if img.format == "PNG":
        text = img.info.get(METADATA_KEY)
        return parse_record(text if isinstance(text, (str, bytes)) else None)
    return None


def _decode_animated(path: Path, img: Image.Image, max_frames: int | None
                     ) -> tuple[list[np.ndarray], list[float]]:
    """Frames ``(H, W, 3)`` uint8 and their durations (ms; 0 where none is given)."""
    frames: list[np.ndarray] = []
    durations: list[float] = []
    try:
        for index in range(frame_count(img)):
            img.seek(index)
            img.load()
            frames.append(rgb_array(img, path))
            duration = img.info.get("duration")
            durations.append(float(duration) if isinstance(duration, (int, float))
                             and duration > 0 else 0.0)
            if enough_frames(len(frames), path, max_frames):
                break
    except PIL_ERRORS as exc:
        raise InputError(path, f"is truncated or corrupt after {len(frames)} frame(s) "
                               f"({one_line(exc)})") from None
    return frames, durations


def _timing(durations: list[float], record: Mapping[str, Any] | None, complete: bool
            ) -> tuple[float, list[int]]:
    """The frame rate, and how many time steps each decoded frame lasts.

    With the rate stored by :class:`PillowSink`, a frame shown ``k`` frame periods (one
    that Pillow merged from ``k`` identical frames) lasts ``k`` steps; frame starts are
    rounded to the nearest period, so rounded delays do not add up, and when every frame
    was decoded (``complete``) the last one is held up to the stored number of frames (a
    still PNG or WebP is what Pillow makes of a clip of identical frames). Without it
    each frame is one step at the rate of the first frame's delay.
    """
    stored_fps = record_fps(record)
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
            sum(repeats) < stored <= common.MAX_FRAMES:
        repeats[-1] += stored - sum(repeats)
    return stored_fps, repeats


def read_animated(path: Path, max_frames: int | None
                  ) -> tuple[torch.Tensor, float, dict[str, Any] | None]:
    """An animated image as ``(clip, fps, metadata)``: the clip ``(3, T, H, W)`` float32
    in [0, 1] with merged frames split again (see :func:`_timing`), the rate (frames/s)
    and the metadata of the record, else of the image plugin's PNG chunk or sidecar."""
    target = check_readable_file(path, kind="animated image",
                                 max_bytes=common.MAX_VIDEO_BYTES)
    with open_image(target) as img:
        width, height = img.size
        check_planned(target, frame_count(img), height, width, max_frames)
        record = _image_record(img)
        frames, durations = _decode_animated(target, img, max_frames)
        complete = len(frames) == frame_count(img)
        image_text = img.info.get("texsynth") if img.format == "PNG" else None
    fps, repeats = _timing(durations, record, complete)
    steps = sum(repeats) if max_frames is None else min(sum(repeats), max_frames)
    if steps > common.MAX_FRAMES:
        raise too_many(target, sum(repeats))
    check_signal_fits((3, steps, height, width), torch.device("cpu"),
                      what=f"reading {target.name}", copies=2)
    order = list(itertools.islice(
        (index for index, count in enumerate(repeats) for _ in range(count)), steps))
    if record is not None:
        metadata = record_metadata(target, record)
    elif isinstance(image_text, str):  # a picture of the image plugin: its PNG chunk
        metadata = record_metadata(target, {"metadata": parse_json(target, image_text)})
    else:
        metadata = _sidecar_metadata(target)
    return to_clip(frames, order), fps, metadata


def probe_animated(path: Path) -> ClipInfo:
    """Frames, picture size and rate of an animated image, from its headers (the stored
    record's frames and rate when it has one)."""
    target = check_readable_file(path, kind="animated image",
                                 max_bytes=common.MAX_VIDEO_BYTES)
    with open_image(target) as img:
        width, height = img.size
        record = _image_record(img)
        frames = frame_count(img)
        if img.format == "WEBP":  # WebP delays are known once a frame is decoded
            with contextlib.suppress(*PIL_ERRORS):
                img.load()
        duration = img.info.get("duration")
    fps = record_fps(record)
    stored = record.get("frames") if record is not None else None
    if fps is not None and isinstance(stored, int) and stored > 0:
        return ClipInfo(frames=stored, height=height, width=width, fps=fps)
    if fps is None:
        fps = (1000.0 / duration if isinstance(duration, (int, float)) and duration > 0
               else DEFAULT_ANIMATED_FPS)
    return ClipInfo(frames=frames, height=height, width=width, fps=fps)


def is_animated_image(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an existing GIF, WebP or PNG (APNG) file of more than one frame.
    Never raises: anything unreadable is ``False``."""
    try:
        target = Path(path)
        if not target.is_file() or target.stat().st_size > common.MAX_VIDEO_BYTES:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(target) as img:
                return img.format in ("GIF", "WEBP", "PNG") and frame_count(img) > 1
    except Exception:
        return False


# -- writing ------------------------------------------------------------------------------

class PillowSink:
    """Buffers frames as 8-bit pictures and saves them all with Pillow on :meth:`finish`
    (GIF, WebP and APNG are written in one go).

    Args:
        target: the file to write (its suffix, one of :data:`PILLOW_FORMATS`, picks the
            format).
        fps: frame rate (frames per second).
        metadata: JSON-serialisable settings stored in the record.
    """

    def __init__(self, target: Path, fps: float, metadata: Mapping[str, Any] | None
                 ) -> None:
        self.target = target
        self.fps = fps
        self.metadata = metadata
        self._frames: list[Image.Image] = []

    def write(self, frames: np.ndarray) -> None:
        """Buffer frames ``(n, H, W, 3)`` uint8."""
        self._frames.extend(Image.fromarray(array) for array in frames)

    def _options(self) -> dict[str, Any]:
        """Pillow's save options: format, delays (ms), looping and the record."""
        fmt = PILLOW_FORMATS[self.target.suffix.lower()]
        record = record_text(self.fps, len(self._frames), self.metadata)
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
        """Save every buffered frame into place (atomically)."""
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
                                          f"({one_line(exc)})") from None
        finally:
            self._frames = []

    def abort(self) -> None:
        """Drop the buffered frames."""
        self._frames = []
