"""The format-neutral front of :mod:`texsynth_video.io`: picks the back-end from the path.

:func:`read_clip` and :func:`probe` send a directory to :mod:`.folders`, a video suffix to
:mod:`.pyav` and an animated-image suffix to :mod:`.animated` (an unknown suffix by
content); :class:`ClipWriter` checks its arguments and the output, then writes through
the back-end's sink (``VideoSink``, ``PillowSink`` or ``FolderSink``).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from texsynth.atomic import ClosesOrAborts, check_writable
from texsynth.errors import UsageError
from texsynth.validation import check_output_name, check_readable_file

from . import common
from .animated import PILLOW_FORMATS, PillowSink, probe_animated, read_animated
from .common import ANIMATED_SUFFIXES, VIDEO_SUFFIXES, ClipInfo, record_text
from .folders import FolderSink, check_folder_target, probe_folder, read_folder
from .pyav import CONTAINERS, VideoSink, probe_video, read_video

__all__ = [
    "ClipWriter",
    "check_output_path",
    "probe",
    "read_clip",
    "supported_output",
    "write_clip",
]


# -- reading ------------------------------------------------------------------------------

def _check_max_frames(max_frames: int | None) -> None:
    """Refuse a ``max_frames`` that is not ``None`` or a positive number of frames."""
    if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 1):
        raise UsageError(f"max_frames must be a positive number of frames, got {max_frames!r}",
                         parameter="max_frames")


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
    check_readable_file(path, kind="clip file", max_bytes=common.MAX_VIDEO_BYTES)
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
        return probe_folder(target)
    if kind == "video":
        return probe_video(target)
    return probe_animated(target)


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
        return read_folder(target, max_frames)
    if kind == "video":
        return read_video(target, max_frames)
    return read_animated(target, max_frames)


# -- writing ------------------------------------------------------------------------------

def supported_output(path: str | os.PathLike[str]) -> bool:
    """Whether :class:`ClipWriter` can write ``path``: a suffix of :data:`VIDEO_SUFFIXES`
    or :data:`ANIMATED_SUFFIXES`, or none (a frame folder)."""
    suffix = Path(path).suffix.lower()
    return not suffix or suffix in CONTAINERS or suffix in PILLOW_FORMATS


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
        check_folder_target(target)
    check_writable(target)


def _check_fps(fps: float) -> float:
    """``fps`` as a float, refused unless a finite rate in (0, 1000] frames/s."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) \
            or not 0 < fps <= 1000:
        raise UsageError(f"fps must be a frame rate in (0, 1000] frames per second, got "
                         f"{fps!r}", parameter="fps")
    return float(fps)


def _check_extent(value: int, name: str) -> int:
    """``value`` (the frame's ``name``: height or width), refused unless a positive
    number of pixels."""
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


class ClipWriter(ClosesOrAborts):
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
    clip. ``metadata`` is stored as :mod:`texsynth_video.io` says. Used as a context manager,
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
        if height * width > common.MAX_FRAME_PIXELS:
            raise UsageError(f"frames of {width}x{height} pixels are larger than the limit "
                             f"of {common.MAX_FRAME_PIXELS:,} pixels")
        self.fps = _check_fps(fps)
        self.metadata = dict(metadata) if metadata is not None else None
        self.frames_written = 0
        check_output_path(self.path)
        record = record_text(self.fps, None, self.metadata)  # refuses non-JSON early
        suffix = self.path.suffix.lower()
        self._sink: VideoSink | PillowSink | FolderSink
        if suffix in CONTAINERS:
            self._sink = VideoSink(self.path, self.height, self.width, self.fps, record)
        elif suffix:
            self._sink = PillowSink(self.path, self.fps, self.metadata)
        else:
            self._sink = FolderSink(self.path, self.fps, self.metadata)
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
        if self.frames_written + len(array) > common.MAX_FRAMES:
            raise UsageError(f"{self.path}: a clip holds at most {common.MAX_FRAMES:,} frames")
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
