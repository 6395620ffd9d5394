"""texsynth hook implementations of the built-in video plugin (entry point ``video``)."""

from __future__ import annotations

import texsynth
from texsynth.hookspecs import RegisterDomain, RegisterExtractor

from .domain import VideoDomain
from .frames import OPTIONS as FRAMES_OPTIONS
from .frames import build_frames
from .spacetime import OPTIONS as SPACETIME_OPTIONS
from .spacetime import build_random_spacetime


@texsynth.hookimpl
def texsynth_register_domains(register: RegisterDomain) -> None:
    """Register the ``video`` domain."""
    register(VideoDomain)


@texsynth.hookimpl
def texsynth_register_extractors(register: RegisterExtractor) -> None:
    """Register ``random-spacetime`` (download-free appearance and dynamics filters) and
    ``frames`` (any picture extractor run on every frame)."""
    register("random-spacetime", build_random_spacetime, domains=("video",),
             description="one layer of random filters, one frame deep (appearance: a3, "
                         "a7@4, ...) and 3 or 7 frames (dynamics: d3x5, d7x5@2, ...), at "
                         "full resolution and pooled 2x2, 4x4; FFT correlation; no download",
             options=SPACETIME_OPTIONS)
    register("frames", build_frames, domains=("video",),
             description="a registered picture extractor (net=, default random-multiscale; "
                         "vgg19 for pretrained appearance) run on every frame",
             options=FRAMES_OPTIONS)
