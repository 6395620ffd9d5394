"""Resampling signals and maps to other extents, over any number of spatial axes.

:func:`resample_linear` is the default of :meth:`texsynth.Domain.resample` (coarse-to-fine
levels, exemplar scale); :func:`resize_nearest` resizes guide maps and region masks
without mixing their values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .errors import UsageError

__all__ = ["resample_linear", "resize_nearest"]

_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def resample_linear(signal: torch.Tensor, extents: Sequence[int]) -> torch.Tensor:
    """``signal`` ``(N, C, *spatial)`` (1 to 3 spatial axes) resampled to ``extents``.

    Two axes: bilinear with antialiasing (a triangle filter as wide as the reduction when
    shrinking). One or three axes: area averaging along axes that shrink, then (tri)linear
    interpolation to the exact extents. Returns a new float tensor; the same size is a copy.
    """
    target = tuple(int(e) for e in extents)
    dims = signal.dim() - 2
    if dims not in _MODES:
        raise UsageError(f"resampling needs 1 to 3 spatial axes, got {dims}")
    if len(target) != dims:
        raise UsageError(f"resampling to {len(target)} extents a signal with {dims} axes")
    if tuple(signal.shape[2:]) == target:
        return signal.clone()
    if dims == 2:
        return F.interpolate(signal, size=target, mode="bilinear", align_corners=False,
                             antialias=True)
    shrunk = tuple(min(t, s) for t, s in zip(target, signal.shape[2:], strict=True))
    out = signal
    if shrunk != tuple(signal.shape[2:]):
        out = F.adaptive_avg_pool1d(out, shrunk[0]) if dims == 1 else \
            F.adaptive_avg_pool3d(out, (shrunk[0], shrunk[1], shrunk[2]))
    if tuple(out.shape[2:]) != target:
        out = F.interpolate(out, size=target, mode=_MODES[dims], align_corners=False)
    return out


def resize_nearest(guide: torch.Tensor, extents: tuple[int, ...]) -> torch.Tensor:
    """A guide map ``(V, *spatial)`` at ``extents`` by nearest neighbours (no new values)."""
    if tuple(guide.shape[1:]) == tuple(extents):
        return guide
    return F.interpolate(guide[None].float(), size=tuple(extents), mode="nearest")[0]
