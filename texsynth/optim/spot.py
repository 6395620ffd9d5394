"""Spot noise: a random signal with an exemplar's power spectrum, as a start for synthesis.

White noise knows nothing of the exemplar but its mean; the first hundred evaluations of
an optimisation go into what a Gaussian texture with the exemplar's spectrum already has:
the colours and their covariance, the balance of coarse and fine detail and, for regular
textures, the periods of their lattice (its spectral peaks). The asymptotic discrete spot
noise of Galerne, Gousseau & Morel (2011, "Random phase textures: theory and synthesis")
is that texture for any output size: the exemplar, less its mean, circularly convolved
with one white Gaussian noise shared by all channels (which keeps their correlation),
divided by the square root of its number of positions, plus the mean.

An exemplar whose opposite borders differ would add a cross of spurious frequencies (its
periodic extension jumps at the borders), so its periodic component (Moisan 2011,
"Periodic plus smooth image decomposition") is used: the exemplar less the smooth signal
whose discrete Laplacian equals the jumps across its borders. Exemplars larger than the
output are folded onto it (circular convolution at the output size), smaller ones padded
with zeros. Works for any number of spatial axes (pictures, sound, video).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["periodic_component", "spot_noise"]


def periodic_component(signal: torch.Tensor) -> torch.Tensor:
    """Moisan's periodic component of ``signal`` ``(N, C, *spatial)``: same shape and
    dtype; it has the signal's mean, and its periodic extension has no jump at the
    borders."""
    axes = tuple(range(2, signal.dim()))
    work = signal.double()
    jumps = torch.zeros_like(work)
    for axis in axes:
        first, last = work.select(axis, 0), work.select(axis, -1)
        jumps.select(axis, 0).add_(last - first)
        jumps.select(axis, -1).add_(first - last)
    laplacian = torch.zeros(work.shape[2:], dtype=work.dtype)
    for k, axis in enumerate(axes):
        n = work.shape[axis]
        freq = 2 * torch.cos(2 * math.pi * torch.arange(n, dtype=work.dtype) / n) - 2
        laplacian = laplacian + freq.view([n if j == k else 1 for j in range(len(axes))])
    laplacian.view(-1)[0] = 1.0  # the mean: left as it is
    smooth = torch.fft.fftn(jumps, dim=axes) / laplacian
    smooth.view(*smooth.shape[:2], -1)[..., 0] = 0
    return (work - torch.fft.ifftn(smooth, dim=axes).real).to(signal.dtype)


def _fold(signal: torch.Tensor, extents: Sequence[int]) -> torch.Tensor:
    """``signal`` ``(N, C, *spatial)`` wrapped onto ``extents``: position ``p`` adds into
    ``p mod extents`` (zero-padding where the signal is smaller)."""
    out = signal
    for k, size in enumerate(extents):
        axis = k + 2
        index = torch.arange(out.shape[axis]) % size
        shape = list(out.shape)
        shape[axis] = size
        out = torch.zeros(shape, dtype=out.dtype).index_add_(axis, index, out)
    return out


def spot_noise(exemplar: torch.Tensor, extents: Sequence[int], *,
               generator: torch.Generator) -> torch.Tensor:
    """A sample of the spot noise of ``exemplar`` ``(1, C, *spatial)`` at ``extents``
    (one per spatial axis): ``(1, C, *extents)``, float32, values not clamped.

    Its mean is the exemplar's and its power spectrum (autocovariance) the exemplar
    periodic component's, folded onto ``extents``. ``generator`` draws the white noise
    (one field for all channels).
    """
    axes = tuple(range(2, exemplar.dim()))
    periodic = periodic_component(exemplar[:1].double())
    mean = periodic.mean(dim=axes, keepdim=True)
    spot = _fold((periodic - mean) / math.sqrt(math.prod(exemplar.shape[2:])), extents)
    noise = torch.randn((1, 1, *extents), generator=generator, dtype=torch.float64)
    mixed = torch.fft.rfftn(spot, dim=axes) * torch.fft.rfftn(noise, dim=axes)
    return (mean + torch.fft.irfftn(mixed, s=tuple(extents), dim=axes)).float()
