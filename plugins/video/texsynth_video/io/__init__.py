"""Clip files of the video plugin: reading and writing clips ``(3, T, H, W)``.

A *clip* is a float32 tensor ``(3, T, H, W)``: RGB, ``T`` frames of ``H``×``W`` pixels,
values in [0, 1], played at a frame rate in frames per second. Three kinds of file hold
one, each read and written by its own back-end module:

* **video files** (:data:`VIDEO_SUFFIXES`: MP4, WebM, MKV, MOV), :mod:`.pyav`, with PyAV
  (FFmpeg): the first video stream, decoded to 8-bit RGB; written as H.264
  (``libx264``) or, in WebM, VP9 (``libvpx-vp9``), tagged as BT.601 (the matrix FFmpeg's
  RGB conversion uses, so a reader that honours the tag gets the colours back);
* **animated images** (:data:`ANIMATED_SUFFIXES`: GIF, WebP, APNG / PNG),
  :mod:`.animated`, with Pillow; every frame is composited as Pillow does when it seeks;
* **frame folders**, :mod:`.folders`: a directory of image files (:data:`FRAME_SUFFIXES`)
  whose names end in a number (``frame_000001.png``, ``00012.jpg``), in the order of that
  number, with the frame rate and metadata in ``<folder>/texsynth.json``.

:mod:`.clips` is the front that picks the back-end (:func:`read_clip`, :func:`probe`,
:class:`ClipWriter`); :mod:`.common` holds what the back-ends share (suffixes, caps, the
stored record, frame checks, Pillow decoding). This package exports the API.

Every reader starts with :func:`texsynth.validation.check_readable_file` (missing files,
directories, devices and FIFOs are refused before anything opens them) under a size cap,
and checks the caps on frames and pixels (:data:`MAX_FRAMES`, :data:`MAX_FRAME_PIXELS`)
from the headers before it decodes and again while it decodes. Every problem with a file
is one :class:`~texsynth.errors.InputError` naming it. The caps are read from
:mod:`texsynth_video.io.common` when a reader or writer runs: set them there (the names
exported here are copies).

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

from .animated import METADATA_KEY, is_animated_image
from .clips import (
    ClipWriter,
    check_output_path,
    probe,
    read_clip,
    supported_output,
    write_clip,
)
from .common import (
    ANIMATED_SUFFIXES,
    DEFAULT_ANIMATED_FPS,
    DEFAULT_FPS,
    FRAME_SUFFIXES,
    MAX_FRAME_BYTES,
    MAX_FRAME_PIXELS,
    MAX_FRAMES,
    MAX_METADATA_BYTES,
    MAX_VIDEO_BYTES,
    VIDEO_SUFFIXES,
    ClipInfo,
)
from .folders import FOLDER_SETTINGS, is_frame_folder

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
