"""``patches``: the model input's patches at several scales, as feature maps, with no network.

After Elnekave & Weiss (ECCV 2022, "Generating natural images with direct patch
distributions matching") and Houdard, Leclaire, Papadakis & Rabin (2022, GOTEX): the
statistics of a texture are those of its small patches, at a few scales. Each layer of
this extractor is a map whose feature vector at a position is a whole patch:

* ``p<s>`` (``p1``, ``p2``, ``p4`` by default, ``options["scales"]``): the input
  downsampled by ``s`` (area averaging over ``s``-sample blocks, the remainder cropped),
  cut into patches of ``k`` samples along every spatial axis (``options["size"]``,
  default 7), every ``stride`` samples (``options["stride"]``, default 1), unfolded into
  channels: ``(N, C · k^d, *positions)`` for a ``(N, C, *spatial)`` input with ``d``
  spatial axes (``k × k`` patches of a picture, ``k``-frame windows along time);
* ``value``: the input itself, ``(N, C, *spatial)``: its distribution over positions is
  the distribution of colours (of signal values), which zero-mean filters cannot see.

With the ``"sw"`` loss, ``p<s>`` compares patch distributions (the Elnekave-Weiss
statistic, sliced) and ``value`` the colour distribution; with ``"gram"``, patch Grams
are the input's autocorrelation within a patch, and ``value``'s Gram its colour moments.

The extractor reads nothing but the layout of the model input, so it is registered for
every domain (``domains=("*",)``). Channel order of a patch: input channel first, then
the offsets along each axis in order (``c, o_1, …, o_d``, row-major).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..domain import Domain
from ..errors import UsageError
from ..extractor import ExtractorConfig, FeatureExtractor
from ..validation import check_choice, check_int_list, check_options

__all__ = [
    "DEFAULT_SCALES",
    "DEFAULT_SIZE",
    "DEFAULT_STRIDE",
    "OPTIONS",
    "PatchExtractor",
    "area_downsample",
    "build_patches",
    "parse_options",
    "unfold_patches",
]

#: Patch extent along each spatial axis, in samples.
DEFAULT_SIZE = 7
#: Step between patches; 1 keeps every patch.
DEFAULT_STRIDE = 1
#: Downsampling factors, one ``p<s>`` layer each.
DEFAULT_SCALES: tuple[int, ...] = (1, 2, 4)
_PADDING = ("valid", "circular")
_OWNER = "extractor 'patches'"
#: Options of ``patches`` (``ExtractorConfig.options``) with one-line help, as registered.
OPTIONS: dict[str, str] = {
    "size": "patch extent along each spatial axis, in samples (default 7)",
    "stride": "step between patches along each axis (default 1; 2 keeps a quarter of "
              "the patches of a 2-D input)",
    "scales": "downsampling factors, one layer p<s> each, e.g. 1:2:4 (default 1:2:4)",
    "padding": "valid (default: patches lie inside the input) or circular (patches wrap "
               "around, for outputs that tile)",
}


def area_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean over ``factor``-sample blocks along every spatial axis.

    Args:
        x: ``(N, C, *spatial)`` with 1 to 3 spatial axes.
        factor: block extent (1 returns ``x`` itself).

    Returns:
        ``(N, C, *(S_i // factor))``; samples beyond the last whole block are dropped.
    """
    if factor == 1:
        return x
    pools = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
    dims = x.dim() - 2
    if dims not in pools:
        raise UsageError(f"{_OWNER}: downsampling needs 1 to 3 spatial axes, got {dims}")
    pooled: torch.Tensor = pools[dims](x, factor)
    return pooled


def unfold_patches(x: torch.Tensor, size: int, stride: int = 1) -> torch.Tensor:
    """Every ``size``-sample patch of ``x``, its values as channels.

    Args:
        x: ``(N, C, *spatial)``, any number of spatial axes ``d``, each at least ``size``.
        size: patch extent ``k`` along each axis.
        stride: step between patch origins along each axis.

    Returns:
        ``(N, C · k^d, *positions)`` with ``positions_i = (S_i − k) // stride + 1``; the
        channel ``(c, o_1, …, o_d)`` (row-major) holds ``x[n, c, p_1 · stride + o_1, …]``.
    """
    dims = x.dim() - 2
    n, channels = x.shape[:2]
    out = x
    for axis in range(dims):
        out = out.unfold(2 + axis, size, stride)  # the window goes last
    order = [0, 1, *range(2 + dims, 2 + 2 * dims), *range(2, 2 + dims)]
    out = out.permute(order)
    return out.reshape(n, channels * size**dims, *out.shape[2 + dims:])


class PatchExtractor(FeatureExtractor):
    """Patches of the input at several scales (``p<s>``) and the input itself (``value``).

    Input: the domain's model input ``(N, C, *spatial)``, used as it is (no
    preprocessing). Output: ``{"value": (N, C, *spatial), "p<s>": (N, C · k^d, *P_s)}``
    where ``P_s`` are the patch positions of the input downsampled by ``s`` (see
    :func:`unfold_patches`; with circular padding, one patch per downsampled sample).
    Default texture layers: every one; default content layer: ``value``. No weights.

    Args:
        layers: layers :meth:`forward` returns by default (default: all).
        size: patch extent ``k`` along each spatial axis.
        stride: step between patches.
        scales: distinct downsampling factors, one layer ``p<s>`` each.
        padding: ``"valid"`` (patches inside the input) or ``"circular"`` (the input is
            wrapped by ``k − 1`` samples along each axis first).
    """

    default_content_layers: tuple[str, ...] = ("value",)

    def __init__(self, layers: Sequence[str] | None = None, *, size: int = DEFAULT_SIZE,
                 stride: int = DEFAULT_STRIDE, scales: Sequence[int] = DEFAULT_SCALES,
                 padding: str = "valid") -> None:
        self.scales = tuple(int(s) for s in scales)
        names = ("value", *(f"p{s}" for s in self.scales))
        self.available_layers = names
        self.default_texture_layers = names
        super().__init__(layers)
        self.size = int(size)
        self.stride = int(stride)
        self.padding = padding

    def _patches(self, x: torch.Tensor, scale: int, name: str) -> torch.Tensor:
        if x.dim() < 3 or min(x.shape[2:]) < scale:
            raise UsageError(f"{_OWNER}: layer {name} downsamples the input "
                             f"{tuple(x.shape[2:])} by {scale}, leaving nothing; use "
                             "smaller scales or a larger input")
        small = area_downsample(x, scale)
        extents = tuple(int(e) for e in small.shape[2:])
        if self.padding == "circular":
            before = (self.size - 1) // 2
            after = self.size - 1 - before
            if max(before, after) > min(extents):
                raise UsageError(f"{_OWNER}: layer {name} sees {extents}, too small to "
                                 f"wrap {self.size}-sample patches; use a smaller size")
            small = F.pad(small, (before, after) * len(extents), mode="circular")
        elif min(extents) < self.size:
            raise UsageError(
                f"{_OWNER}: layer {name} sees the input at 1/{scale} size, {extents}, "
                f"smaller than its {self.size}-sample patches; use a smaller size, fewer "
                "scales or a larger input")
        return unfold_patches(small, self.size, self.stride)

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name in layers:
            if name == "value":
                out[name] = x
            else:
                out[name] = self._patches(x, int(name[1:]), name)
        return out


def _int_list(value: Any, what: str) -> list[int]:
    return check_int_list(value, owner=_OWNER, name=what)


def _positive(options: Mapping[str, Any], key: str, default: int) -> int:
    numbers = _int_list(options.get(key, default), key)
    if len(numbers) != 1 or numbers[0] < 1:
        raise UsageError(f"{_OWNER}: {key} must be one positive integer, "
                         f"got {options.get(key)!r}")
    return numbers[0]


def parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :class:`PatchExtractor` from ``config.options``."""
    check_options(options, OPTIONS, owner=_OWNER)
    scales = _int_list(options.get("scales", DEFAULT_SCALES), "scales")
    if any(s < 1 for s in scales) or len(set(scales)) != len(scales):
        raise UsageError(f"{_OWNER}: scales must be distinct positive integers, got {scales}")
    padding = check_choice(options.get("padding", "valid"), _PADDING, owner=_OWNER,
                           name="padding")
    return {"size": _positive(options, "size", DEFAULT_SIZE),
            "stride": _positive(options, "stride", DEFAULT_STRIDE),
            "scales": scales, "padding": padding}


def build_patches(config: ExtractorConfig, domain: Domain) -> PatchExtractor:
    """Factory of ``patches``: layers ``value``, ``p1``, ``p2``, ``p4`` by default; options
    ``size`` (7), ``stride`` (1), ``scales`` (``1:2:4``), ``padding`` (``valid``).
    Accepts any domain; takes no weights and no seed."""
    del domain
    if config.weights:
        raise UsageError(f"{_OWNER} has no weights; drop the weights file")
    net = PatchExtractor(config.layers, **parse_options(config.options))
    net.freeze()
    return net
