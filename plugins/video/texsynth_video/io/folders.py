"""Frame folders: a directory of numbered image files with ``texsynth.json`` beside them.

The frames are the image files (:data:`~texsynth_video.io.common.FRAME_SUFFIXES`) whose
stems end in a number (``frame_000001.png``, ``00012.jpg``), in the order of that number;
the frame rate and metadata are in :data:`FOLDER_SETTINGS`. :class:`FolderSink` writes
numbered PNG frames into a temporary folder beside the target and renames it into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from texsynth.atomic import check_writable, write_error
from texsynth.errors import InputError
from texsynth.validation import check_readable_file

from . import common
from .common import (
    DEFAULT_FPS,
    FRAME_SUFFIXES,
    PIL_ERRORS,
    ClipInfo,
    check_planned,
    one_line,
    open_image,
    read_json,
    record_fps,
    record_metadata,
    record_text,
    rgb_array,
    to_clip,
    too_many,
)

__all__ = [
    "FOLDER_SETTINGS",
    "FolderSink",
    "check_folder_target",
    "is_frame_folder",
    "probe_folder",
    "read_folder",
]


#: Name of the settings file of a frame folder.
FOLDER_SETTINGS = "texsynth.json"
#: The number ending a frame file's stem.
_NUMBERED = re.compile(r"(\d+)$")


# -- reading ------------------------------------------------------------------------------

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
        raise InputError(folder, f"cannot be read: {one_line(exc.strerror or exc).lower()}"
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
    """The record in the folder's :data:`FOLDER_SETTINGS`, if it has one."""
    settings = folder / FOLDER_SETTINGS
    if not settings.is_file():
        return None
    data = read_json(settings)
    if not isinstance(data, dict):
        raise InputError(settings, "is not a JSON object")
    return data


def _read_frame(path: Path, size: tuple[int, int] | None, folder: Path) -> np.ndarray:
    """One frame file as ``(H, W, 3)`` uint8; ``size`` ``(W, H)`` it must have."""
    target = check_readable_file(path, kind="frame image",
                                 max_bytes=common.MAX_FRAME_BYTES)
    with open_image(target) as img:
        if size is not None and img.size != size:
            raise InputError(folder, f"frames of different sizes: {target.name} is "
                                     f"{img.width}x{img.height}, the first {size[0]}x{size[1]}")
        try:
            img.seek(0)
            img.load()
        except PIL_ERRORS as exc:
            raise InputError(target, f"image data is truncated or corrupt ({one_line(exc)})"
                             ) from None
        return rgb_array(img, target)


def read_folder(folder: Path, max_frames: int | None
                ) -> tuple[torch.Tensor, float, dict[str, Any] | None]:
    """A frame folder as ``(clip, fps, metadata)``: the clip ``(3, T, H, W)`` float32 in
    [0, 1], the rate (frames/s) of :data:`FOLDER_SETTINGS`, else 24, and its metadata."""
    paths = _list_frames(folder)
    cap = common.MAX_FRAMES
    if len(paths) > cap and (max_frames is None or max_frames > cap):
        raise too_many(folder, len(paths))
    paths = paths[:max_frames] if max_frames is not None else paths
    record = _folder_record(folder)
    first = _read_frame(paths[0], None, folder)
    height, width = first.shape[:2]
    check_planned(folder, len(paths), height, width, max_frames)
    frames = [first] + [_read_frame(p, (width, height), folder) for p in paths[1:]]
    fps = record_fps(record) or DEFAULT_FPS
    return to_clip(frames), fps, record_metadata(folder / FOLDER_SETTINGS, record)


def probe_folder(folder: Path) -> ClipInfo:
    """Frames, picture size and rate of a frame folder (only the first frame's header is
    read)."""
    paths = _list_frames(folder)
    target = check_readable_file(paths[0], kind="frame image",
                                 max_bytes=common.MAX_FRAME_BYTES)
    with open_image(target) as img:
        width, height = img.size
    fps = record_fps(_folder_record(folder)) or DEFAULT_FPS
    return ClipInfo(frames=len(paths), height=height, width=width, fps=fps)


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

def check_folder_target(target: Path) -> None:
    """Refuse a frame folder's target that is a file or a non-empty folder."""
    if target.is_dir():
        with contextlib.suppress(OSError):
            if any(os.scandir(target)):
                raise InputError(target, "is a folder that is not empty; write the frames "
                                         "to a new folder")
    elif os.path.lexists(target):
        raise InputError(target, "exists and is not a folder; a name without a suffix is "
                                 "written as a folder of frames")


class FolderSink:
    """Writes numbered PNG frames into a temporary folder beside the target, renamed into
    place (with ``texsynth.json``) on :meth:`finish`.

    Args:
        target: the folder to write (absent, or an empty folder).
        fps: frame rate (frames per second), stored in :data:`FOLDER_SETTINGS`.
        metadata: JSON-serialisable settings stored there too.
    """

    def __init__(self, target: Path, fps: float, metadata: Mapping[str, Any] | None
                 ) -> None:
        self.target = target
        self.fps = fps
        self.metadata = metadata
        check_folder_target(target)
        check_writable(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._tmp: Path | None = Path(tempfile.mkdtemp(
                prefix=f".{target.name[:200]}.", suffix=".tmp", dir=target.parent))
        except OSError as exc:
            raise write_error(target, exc) from None
        self._count = 0

    def write(self, frames: np.ndarray) -> None:
        """Save frames ``(n, H, W, 3)`` uint8 as the next numbered PNG files."""
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
        """Write :data:`FOLDER_SETTINGS` and rename the folder into place."""
        assert self._tmp is not None
        record = record_text(self.fps, self._count, self.metadata)
        data = json.loads(record)
        try:
            with open(self._tmp / FOLDER_SETTINGS, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            _fsync_dir(self._tmp)
            check_folder_target(self.target)
            check_writable(self.target)
            os.rename(self._tmp, self.target)  # replaces at most an empty folder
        except OSError as exc:
            raise write_error(self.target, exc) from None
        self._tmp = None
        _fsync_dir(self.target.parent)

    def abort(self) -> None:
        """Remove the temporary folder."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _fsync_dir(directory: Path) -> None:
    """Flush a directory's entries to disk (where the file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
