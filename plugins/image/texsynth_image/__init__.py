"""texsynth's built-in image plugin: the ``image`` domain and its feature extractors.

* :class:`ImageDomain` — RGB images in [0, 1], read and written with Pillow;
* ``random-multiscale`` (:class:`RandomMultiscaleExtractor`, the default) — one layer
  of random filters at sizes 3-55 px, FFT convolution, no download;
* ``vgg19`` / ``vgg19-random`` (:class:`VGG19Extractor`) — VGG19 with ImageNet or
  seeded random weights.

Each extractor brings the input normalisation it expects (its ``preprocess``, ImageNet
statistics for all three: :mod:`texsynth_image.normalization`); the domain hands them
its signal in [0, 1] unchanged.

Registered through the ``texsynth`` entry point ``image = "texsynth_image.hooks"``.
"""

from __future__ import annotations

from .domain import ImageDomain
from .io import read_metadata
from .multiscale import RandomMultiscaleExtractor, build_random_multiscale, fft_conv2d
from .normalization import IMAGENET_MEAN, IMAGENET_STD, imagenet_normalize
from .vgg import VGG19_LAYERS, VGG19Extractor, build_vgg19, build_vgg19_random

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VGG19_LAYERS",
    "ImageDomain",
    "RandomMultiscaleExtractor",
    "VGG19Extractor",
    "build_random_multiscale",
    "build_vgg19",
    "build_vgg19_random",
    "fft_conv2d",
    "imagenet_normalize",
    "read_metadata",
]
