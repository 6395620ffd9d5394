"""Built-in video plugin of texsynth: clips as ``(N, 3, T, H, W)`` signals.

Registers the ``video`` domain (:class:`VideoDomain`) and the extractors
``random-spacetime`` (random one-frame and spatio-temporal filters, no download) and
``frames`` (a picture extractor of another plugin, through the core's registry, run on
every frame) through the ``texsynth`` entry point ``video = "texsynth_video.hooks"``.
Needs the ``video`` extra (PyAV and Pillow).
"""

from __future__ import annotations

from .domain import VideoDomain
from .frames import FramesExtractor
from .io import ClipWriter, read_clip, write_clip
from .preview import frame_strip
from .spacetime import RandomSpacetimeExtractor

__all__ = [
    "ClipWriter",
    "FramesExtractor",
    "RandomSpacetimeExtractor",
    "VideoDomain",
    "frame_strip",
    "read_clip",
    "write_clip",
]
