"""File checks of the image plugin: the size caps of what it reads.

Every loader of the plugin starts with one of these: the core's
:func:`texsynth.validation.check_readable_file` (missing files, directories, devices,
FIFOs and sockets are refused *before* anything opens them; a FIFO's ``open`` would
block) with a size cap per kind of file, checked before any byte is decoded. Pillow's
decompression-bomb guard still applies to what passes. Writes go through
:func:`texsynth.atomic.atomic_path` and :func:`texsynth.domain.write_with_sidecar`, which
turn a failed write into one error naming the file and leave nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from texsynth.validation import check_readable_file

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_WEIGHTS_BYTES",
    "check_image_file",
    "check_metadata_file",
    "check_weights_file",
]

#: Largest image file read (bytes): far above any picture this tool can synthesise from.
MAX_IMAGE_BYTES = 2 * 1024**3
#: Largest weights file read (bytes); torchvision's VGG19 state dict is 548 MB.
MAX_WEIGHTS_BYTES = 4 * 1024**3
#: Largest ``<image>.json`` metadata sidecar read (bytes).
MAX_METADATA_BYTES = 16 * 1024**2


def check_image_file(path: str | os.PathLike[str]) -> Path:
    """A readable image file of at most :data:`MAX_IMAGE_BYTES`."""
    return check_readable_file(path, kind="image file", max_bytes=MAX_IMAGE_BYTES)


def check_weights_file(path: str | os.PathLike[str]) -> Path:
    """A readable weights file of at most :data:`MAX_WEIGHTS_BYTES`."""
    return check_readable_file(path, kind="weights file", max_bytes=MAX_WEIGHTS_BYTES)


def check_metadata_file(path: str | os.PathLike[str]) -> Path:
    """A readable JSON sidecar of at most :data:`MAX_METADATA_BYTES`; an empty one passes
    (and is then reported as invalid JSON)."""
    return check_readable_file(path, kind="metadata file", allow_empty=True,
                               max_bytes=MAX_METADATA_BYTES)
