"""Hook implementations of the built-in image plugin (entry point ``image``)."""

from __future__ import annotations

import texsynth
from texsynth.hookspecs import RegisterDomain, RegisterExtractor

from .domain import ImageDomain
from .multiscale import OPTIONS as MULTISCALE_OPTIONS
from .multiscale import build_random_multiscale
from .vgg import OPTIONS as VGG19_OPTIONS
from .vgg import build_vgg19, build_vgg19_random


@texsynth.hookimpl
def texsynth_register_domains(register: RegisterDomain) -> None:
    """Register the ``image`` domain."""
    register(ImageDomain)


@texsynth.hookimpl
def texsynth_register_extractors(register: RegisterExtractor) -> None:
    """Register ``random-multiscale`` (default), ``vgg19`` and ``vgg19-random``."""
    register("random-multiscale", build_random_multiscale, domains=("image",),
             description="one layer of random filters, 3-55 px, FFT convolution "
                         "(Ustyuzhaninov et al. 2016); no download",
             options=MULTISCALE_OPTIONS)
    register("vgg19", build_vgg19, domains=("image",),
             description="VGG19 with torchvision's ImageNet weights (downloaded once, "
                         "or --weights FILE); average pooling (Gatys et al. 2015)",
             options=VGG19_OPTIONS)
    register("vgg19-random", build_vgg19_random, domains=("image",),
             description="VGG19 architecture with seeded random weights; no download",
             options=VGG19_OPTIONS)
