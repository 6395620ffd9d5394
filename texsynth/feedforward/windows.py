"""Windowed (region) evaluation of a multi-scale pyramid, for tiled sampling.

**Regions (tiled sampling).** :meth:`texsynth.feedforward.pyramid.PyramidGenerator.forward_region`
computes any window of the output that
:meth:`~texsynth.feedforward.pyramid.PyramidGenerator.forward` would give for a size, from the
noise of that window plus a margin (*halo*) per scale that follows from the architecture: every
3-tap convolution needs one more position on each side, so a branch or join block (two 3-taps and
a 1-tap) needs 2; at scale ``k`` the join needs its block's 2 around the window, the branch 2 more
around that, and the coarser scale the positions the ×2 upsampling reads for the widened window
(its cell for nearest upsampling, also one neighbour for linear; see :func:`scale_halos`).
Convolutions run without padding on the widened windows, so the result is exact: with batch
normalisation in eval mode (running statistics, pointwise) a window equals the same positions of
the whole output up to float rounding. Instance normalisation needs statistics over the whole
extent of each scale; :mod:`texsynth.feedforward.tiled` computes them in passes over tiles
first and hands them in as ``norm_stats``.

The pyramid is described structurally, so this module does not depend on the generator
class: ``branches[k]`` is the block of scale ``k`` (0 = finest, ``K`` scales) that maps its
noise to feature maps, and ``joins[k]`` (``k < K - 1``, a :class:`JoinLayers`) merges the
×2-upsampled output of scale ``k + 1`` with branch ``k``: both are normalised,
concatenated along channels and run through ``joins[k].block``. The output of scale 0 is
the pyramid's feature output (before the generator's final 1×1 convolution).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..generator import NormStats, Region

__all__ = ["JoinLayers", "NoiseWindow", "Windows", "instance_norm_layers", "scale_halos"]

#: Instance norms (they need whole-extent statistics) and convolutions over 1 to 3 axes.
_INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: Convolution by tensor rank (``N, C`` and 1 to 3 spatial axes).
_CONV_FUNCTIONS: dict[int, Callable[..., torch.Tensor]] = {3: F.conv1d, 4: F.conv2d,
                                                           5: F.conv3d}
_BATCH_NORM = nn.modules.batchnorm._BatchNorm

#: ``noise(scale, region)``: the noise ``(N, C_noise, *(stop - start))`` of window
#: ``region`` of scale ``scale`` (positions wrap around the scale's extent).
NoiseWindow = Callable[[int, Region], torch.Tensor]


class JoinLayers(Protocol):
    """The layers that join scale ``k + 1`` (upsampled) with branch ``k``."""

    @property
    def norm_coarse(self) -> nn.Module:
        """Normalises the upsampled coarse maps ``(N, C_coarse, *extent_k)``."""

    @property
    def norm_branch(self) -> nn.Module:
        """Normalises the branch maps ``(N, C_branch, *extent_k)``."""

    @property
    def block(self) -> nn.Sequential:
        """Convolutions, norms and activations on the concatenation
        ``(N, C_coarse + C_branch, *extent_k)``."""


def _conv_margin(layers: Iterable[nn.Module]) -> int:
    """Positions a stack of "same" convolutions reads beyond its output on each side."""
    margin = 0
    for layer in layers:
        if isinstance(layer, _CONVS):
            kernel, dilation = int(layer.kernel_size[0]), int(layer.dilation[0])
            margin += (kernel - 1) * dilation // 2
    return margin


def _grow(region: Region, margin: int) -> Region:
    """``region`` widened by ``margin`` positions on both sides of every axis."""
    return tuple((lo - margin, hi + margin) for lo, hi in region)


def _coarse_index(positions: torch.Tensor, fine: int, coarse: int) -> torch.Tensor:
    """Unwrapped coarse positions the nearest ×2 upsampling reads for fine ``positions``.

    On the torus of extent ``fine``, position ``p = m·fine + r`` reads coarse position
    ``r // 2`` of period ``m``, i.e. unwrapped ``m·coarse + r // 2`` (this is the
    upsample-and-crop of :meth:`texsynth.feedforward.pyramid.PyramidGenerator.forward`, including
    the half-wide last cell when ``fine`` is odd). ``positions``: int64, any shape; the result
    has the same shape.
    """
    period = torch.div(positions, fine, rounding_mode="floor")
    return period * coarse + torch.div(positions - period * fine, 2, rounding_mode="floor")


def _upsample_taps(positions: torch.Tensor, fine: int, coarse: int, mode: str
                   ) -> list[tuple[torch.Tensor, float]]:
    """The coarse positions (unwrapped) and weights the ×2 upsampling ``mode`` combines
    for each fine position: nearest reads its cell (:func:`_coarse_index`, weight 1);
    linear adds ¼ of the neighbouring cell on its side (the previous one for even ``r``,
    the next for odd) to ¾ of its own (:func:`texsynth.feedforward.pyramid_layers.upsample2`)."""
    own = _coarse_index(positions, fine, coarse)
    if mode == "nearest":
        return [(own, 1.0)]
    period = torch.div(positions, fine, rounding_mode="floor")
    side = (positions - period * fine).remainder(2) * 2 - 1  # -1 for even r, +1 for odd
    return [(own, 0.75), (own + side, 0.25)]


def _until(block: nn.Sequential, stop: nn.Module | None) -> list[nn.Module]:
    """The layers of ``block`` before ``stop`` (all of them if it is not in the block)."""
    layers = list(block)
    for index, layer in enumerate(layers):
        if layer is stop:
            return layers[:index]
    return layers


def instance_norm_layers(branches: Sequence[nn.Sequential], joins: Sequence[JoinLayers]
                         ) -> list[tuple[int, nn.Module]]:
    """``(scale, module)`` of every instance-norm layer of the pyramid, in the order its
    forward pass runs them (coarsest scale first; each one's input depends only on those
    before it)."""
    found: list[tuple[int, nn.Module]] = []
    for k in reversed(range(len(branches))):
        modules: list[nn.Module] = list(branches[k])
        if k < len(branches) - 1:
            join = joins[k]
            modules += [join.norm_coarse, join.norm_branch, *join.block]
        found += [(k, m) for m in modules if isinstance(m, _INSTANCE_NORMS)]
    return found


def scale_halos(branches: Sequence[nn.Sequential], joins: Sequence[JoinLayers],
                sizes: Sequence[tuple[int, ...]], upsample: str = "nearest") -> list[int]:
    """Noise positions, per scale, that one output position depends on beyond itself.

    Args:
        branches, joins: the pyramid (see the module docstring).
        sizes: extents of every scale, finest first (only the first axis is used).
        upsample: the joins' ×2 upsampling, ``"nearest"`` or ``"linear"``.

    Returns:
        ``K`` radii: entry ``k`` is the radius, in positions of scale ``k`` along the first
        axis, of the noise window a single output position reads at scale ``k``.
    """
    num_scales = len(branches)
    lo, hi = 0, 1
    halos = []
    for k in range(num_scales):
        last = k == num_scales - 1
        margin = 0 if last else _conv_margin(joins[k].block)
        lo, hi = lo - margin, hi + margin
        reach = _conv_margin(branches[k])
        halos.append(max(-(lo - reach), hi + reach - 1))
        if not last:
            taps = _upsample_taps(torch.arange(lo, hi), sizes[k][0], sizes[k + 1][0],
                                  upsample)
            lo = min(int(index.min()) for index, _ in taps)
            hi = max(int(index.max()) for index, _ in taps) + 1
    return halos


class Windows:
    """Evaluates a pyramid on windows of its scales with unpadded convolutions.

    ``output(k, R)`` is the output of scale ``k`` (after its join) exactly on window ``R``:
    it computes the inputs of the last block on ``R`` widened by the block's margin and
    runs the block's convolutions without padding, which shrinks them back to ``R``.

    Args:
        branches, joins: the pyramid (see the module docstring); batch norm must be in
            eval mode (it is applied pointwise with its running statistics).
        sizes: extents of every scale for the whole output, finest first.
        noise: the noise of a window of a scale (:data:`NoiseWindow`), ``N`` samples.
        norm_stats: whole-extent statistics of the instance-norm layers used.
        upsample: the joins' ×2 upsampling, ``"nearest"`` or ``"linear"``.
    """

    def __init__(self, branches: Sequence[nn.Sequential], joins: Sequence[JoinLayers],
                 sizes: Sequence[tuple[int, ...]], noise: NoiseWindow,
                 norm_stats: NormStats | None = None, *, upsample: str = "nearest") -> None:
        self.branches = list(branches)
        self.joins = list(joins)
        self.sizes = list(sizes)
        self.noise = noise
        self.stats = norm_stats or {}
        self.upsample = upsample

    def _norm(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``layer`` (a norm) on ``x`` ``(N, C, *extent)``: batch norm as it is, instance
        norm with the whole-extent statistics."""
        if not isinstance(layer, _INSTANCE_NORMS):
            out: torch.Tensor = layer(x)  # batch norm in eval mode: pointwise
            return out
        if layer not in self.stats:
            raise UsageError("windows of an instance-norm generator need the whole-extent "
                             "statistics of every instance-norm layer (texsynth.feedforward.tiled)")
        mean, var = (t.to(x.device, x.dtype) for t in self.stats[layer])
        shape = (*mean.shape, *([1] * (x.dim() - 2)))
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + layer.eps)
        if layer.affine:
            channel = (1, -1, *([1] * (x.dim() - 2)))
            y = y * layer.weight.view(channel) + layer.bias.view(channel)
        return y

    def _run(self, layers: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        """``layers`` on ``x`` ``(N, C, *extent)``, convolutions unpadded (each shrinks the
        extent by its margin on both sides)."""
        for layer in layers:
            if isinstance(layer, _CONVS):
                conv = _CONV_FUNCTIONS[x.dim()]
                x = conv(x, layer.weight, layer.bias, layer.stride, 0, layer.dilation,
                         layer.groups)
            elif isinstance(layer, (*_INSTANCE_NORMS, _BATCH_NORM)):
                x = self._norm(layer, x)
            else:
                x = layer(x)
        return x

    def _branch(self, k: int, region: Region, stop: nn.Module | None = None) -> torch.Tensor:
        """Branch ``k`` (up to ``stop``) on ``region``: ``(N, C, *extent)``."""
        layers = _until(self.branches[k], stop)
        return self._run(layers, self.noise(k, _grow(region, _conv_margin(layers))))

    def _upsampled(self, k: int, region: Region) -> torch.Tensor:
        """Scale ``k+1``'s output upsampled onto window ``region`` of scale ``k``."""
        taps = [_upsample_taps(torch.arange(lo, hi), fine, coarse, self.upsample)
                for (lo, hi), fine, coarse in zip(region, self.sizes[k], self.sizes[k + 1],
                                                  strict=True)]
        coarse_region = tuple((min(int(i.min()) for i, _ in axis),
                               max(int(i.max()) for i, _ in axis) + 1) for axis in taps)
        out = self.output(k + 1, coarse_region)
        for axis, (axis_taps, (lo, _)) in enumerate(zip(taps, coarse_region, strict=True)):
            parts = [weight * out.index_select(2 + axis, (index - lo).to(out.device))
                     for index, weight in axis_taps]
            out = parts[0] if len(parts) == 1 else parts[0] + parts[1]
        return out

    def output(self, k: int, region: Region, stop: nn.Module | None = None) -> torch.Tensor:
        """Output ``(N, C_k, *(stop - start))`` of scale ``k`` on ``region`` (or the input
        of ``stop``, a layer of that scale)."""
        if stop is not None and any(m is stop for m in self.branches[k]):
            return self._branch(k, region, stop)
        if k == len(self.branches) - 1:
            return self._branch(k, region)
        join = self.joins[k]
        if stop is join.norm_coarse:
            return self._upsampled(k, region)
        if stop is join.norm_branch:
            return self._branch(k, region)
        layers = _until(join.block, stop)
        widened = _grow(region, _conv_margin(layers))
        joined = torch.cat([self._norm(join.norm_coarse, self._upsampled(k, widened)),
                            self._norm(join.norm_branch, self._branch(k, widened))], dim=1)
        return self._run(layers, joined)
