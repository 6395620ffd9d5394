"""``random-pyramid``: random filters on every octave of an image pyramid.

The Grams of one layer of random filters (:mod:`texsynth_image.multiscale`) constrain
nothing beyond their largest kernel: two bricks 60 px apart, the rows of a tile roof and
the period of a herringbone are not in them, so regular textures lose their order.
Widening the kernels is costly and thins the exemplar's statistics (a kernel's wrapped
margin is left out of them). Snelgrove (2017) instead matched Gram matrices on every level
of a Gaussian pyramid: the same filters, applied to the image halved ``o`` times, see
``2**o`` times as far for ``1 / 4**o`` of the cost.

Here the input is halved by 2 × 2 averaging (exact on the circular lattice, and so
block by block) ``octaves - 1`` times; every octave gets the same bank of random
zero-mean unit-norm filters at the same kernel sizes (a
:class:`~texsynth_image.multiscale.RandomMultiscaleExtractor` per octave, so each keeps
the spectra of its own input size), then a ReLU. Layers are named ``k<size>`` at full
resolution and ``k<size>@<factor>`` on the octave ``factor`` times smaller: ``k23@4``
sees 92 input pixels. With the defaults (sizes 3-23, three octaves) the widest support
is 92 px at about the cost of ``random-multiscale``'s 3-55 px.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from texsynth.domain import Domain
from texsynth.errors import UsageError
from texsynth.extractor import BlockGeometry, ExtractorConfig, FeatureExtractor
from texsynth.validation import check_int_list, check_options

from .multiscale import DEFAULT_FILTERS, RandomMultiscaleExtractor
from .normalization import imagenet_normalize

__all__ = [
    "DEFAULT_OCTAVES",
    "DEFAULT_PYRAMID_SIZES",
    "PYRAMID_OPTIONS",
    "RandomPyramidExtractor",
    "build_random_pyramid",
    "layer_name",
]

#: Kernel sizes (pixels at each octave's resolution).
DEFAULT_PYRAMID_SIZES: tuple[int, ...] = (3, 5, 7, 11, 15, 23)
#: Octaves: the image and its 1/2 and 1/4 versions.
DEFAULT_OCTAVES = 3
_OWNER = "extractor 'random-pyramid'"
#: Options of ``random-pyramid`` with one-line help, as registered.
PYRAMID_OPTIONS: dict[str, str] = {
    "sizes": "distinct odd kernel sizes in pixels of each octave (default 3:5:7:11:15:23)",
    "octaves": "pyramid levels, each half the previous one's size (default 3)",
    "filters": f"random filters per size (default {DEFAULT_FILTERS})",
}


def layer_name(size: int, octave: int) -> str:
    """``k<size>`` at octave 0, ``k<size>@<2**octave>`` below it."""
    return f"k{size}" if octave == 0 else f"k{size}@{2 ** octave}"


class RandomPyramidExtractor(FeatureExtractor):
    """Random filters at several kernel sizes on every octave of a 2 × 2-mean pyramid.

    Input: ``(N, 3, H, W)`` RGB in [0, 1], ImageNet-normalised by :meth:`preprocess`.
    Output: ``{"k<size>": (N, F, H, W), "k<size>@2": (N, F, H // 2, W // 2), ...}``;
    circular padding on every octave, so outputs tile. Extents that are odd at some
    octave lose their last row or column there (floor division).

    Default texture layers: every size on every octave; content layers ``k3, k5, k7``.

    Args:
        layers: layers :meth:`forward` returns by default (default: all).
        sizes: odd kernel sizes, in pixels of each octave.
        octaves: pyramid levels (1 is ``random-multiscale`` with these sizes).
        filters: filters per size (the same bank on every octave).
        seed: seed of the random filters.
    """

    default_content_layers: tuple[str, ...] = ("k3", "k5", "k7")

    def __init__(self, layers: Sequence[str] | None = None, *,
                 sizes: Sequence[int] = DEFAULT_PYRAMID_SIZES,
                 octaves: int = DEFAULT_OCTAVES, filters: int = DEFAULT_FILTERS,
                 seed: int = 0) -> None:
        sizes = tuple(int(s) for s in sizes)
        names = tuple(layer_name(s, o) for o in range(octaves) for s in sizes)
        self.available_layers = names
        self.default_texture_layers = names
        self.default_content_layers = tuple(
            n for n in type(self).default_content_layers if n in names) or names[:1]
        super().__init__(layers)
        self.sizes = sizes
        self.octaves = int(octaves)
        self.seed = int(seed)
        self._where = {layer_name(s, o): (s, o) for o in range(octaves) for s in sizes}
        self.levels = nn.ModuleList(
            RandomMultiscaleExtractor(self._level_layers(o, self.layers), sizes=sizes,
                                      filters=filters, seed=seed, normalize=False)
            if self._level_layers(o, self.layers) else nn.Identity()
            for o in range(octaves))

    def _level_layers(self, octave: int, layers: Sequence[str]) -> list[str]:
        """The ``random-multiscale`` names (``k<size>``) of ``layers`` on ``octave``."""
        return [f"k{self._where[n][0]}" for n in layers if self._where[n][1] == octave]

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet normalisation of RGB ``(N, 3, H, W)`` in [0, 1]; differentiable."""
        return imagenet_normalize(x)

    def trim(self, layers: Sequence[str]) -> RandomPyramidExtractor:
        """Keep only ``layers``; octaves left without layers are dropped."""
        super().trim(layers)
        for octave, level in enumerate(self.levels):
            wanted = self._level_layers(octave, self.layers)
            if isinstance(level, RandomMultiscaleExtractor):
                if wanted:
                    level.trim(wanted)
                else:
                    self.levels[octave] = nn.Identity()
        return self

    def wrap_margin(self, layer: str) -> int:
        """``size // 2`` map positions (of that octave) for layer ``k<size>[@f]``."""
        return self._where[layer][0] // 2

    def block_geometry(self, layers: Sequence[str]) -> BlockGeometry:
        """Blocks aligned to the coarsest octave used, with a halo covering the widest
        kernel in input pixels; crops wrap."""
        deepest = max(self._where[n][1] for n in layers)
        align = 2 ** deepest
        reach = max((self._where[n][0] // 2 + 1) * 2 ** self._where[n][1] for n in layers)
        halo = -(-reach // align) * align
        return BlockGeometry(halo=halo, align=align,
                             strides={n: 2 ** self._where[n][1] for n in layers}, wrap=True)

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        deepest = max(self._where[n][1] for n in layers)
        out: dict[str, torch.Tensor] = {}
        level_input = x
        for octave in range(deepest + 1):
            if octave:
                level_input = F.avg_pool2d(level_input, 2)
            wanted = [n for n in layers if self._where[n][1] == octave]
            if not wanted:
                continue
            level = self.levels[octave]
            if not isinstance(level, RandomMultiscaleExtractor):
                raise UsageError(f"layers {', '.join(wanted)} were not built in this "
                                 "extractor; rebuild it with them")
            maps = level(level_input, self._level_layers(octave, wanted))
            for name in wanted:
                out[name] = maps[f"k{self._where[name][0]}"]
        return out


def _parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    check_options(options, PYRAMID_OPTIONS, owner=_OWNER)
    sizes = check_int_list(options.get("sizes", DEFAULT_PYRAMID_SIZES), owner=_OWNER,
                           name="sizes")
    if not sizes or any(s < 1 or s % 2 == 0 for s in sizes) or len(set(sizes)) != len(sizes):
        raise UsageError(f"{_OWNER}: sizes must be distinct odd positive integers, "
                         f"got {sizes}")
    octaves = check_int_list(options.get("octaves", DEFAULT_OCTAVES), owner=_OWNER,
                             name="octaves")
    filters = check_int_list(options.get("filters", DEFAULT_FILTERS), owner=_OWNER,
                             name="filters")
    if len(octaves) != 1 or not 1 <= octaves[0] <= 8:
        raise UsageError(f"{_OWNER}: octaves must be one integer from 1 to 8, got {octaves}")
    if len(filters) != 1 or filters[0] < 1:
        raise UsageError(f"{_OWNER}: filters must be one positive integer, got {filters}")
    return {"sizes": sizes, "octaves": octaves[0], "filters": filters[0]}


def build_random_pyramid(config: ExtractorConfig, domain: Domain) -> RandomPyramidExtractor:
    """Factory for ``random-pyramid``: options ``sizes``, ``octaves``, ``filters``;
    filters seeded by ``config.seed``; takes no weights file."""
    del domain
    if config.weights:
        raise UsageError(f"{_OWNER} uses random filters and takes no --weights")
    net = RandomPyramidExtractor(config.layers, seed=config.seed,
                                 **_parse_options(config.options))
    net.freeze()
    return net
