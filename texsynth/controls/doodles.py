"""Conditioning inputs of feed-forward training: random doodles (region masks a
doodle-conditioned generator learns to follow) and blend codes (a blend generator's
slider between exemplars).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import UsageError

__all__ = [
    "BlendSet",
    "DoodleSet",
    "blend_masks",
    "random_doodles",
]




def random_doodles(count: int, regions: int, extents: Sequence[int], *,
                   generator: torch.Generator | None = None,
                   smallest: float = 0.05, largest: float = 0.25) -> torch.Tensor:
    """``count`` random doodles: one-hot masks ``(count, regions, *extents)``.

    Each sample draws ``regions`` Gaussian random fields (white noise low-passed with a
    Gaussian whose width is a random share in ``[smallest, largest]`` of the largest
    extent, log-uniform; no mean, unit variance) and gives every position to the largest
    field: blobs of every region, of one size per sample, periodic along every axis (as
    circular generators' outputs).
    """
    dims = len(extents)
    noise = torch.randn(count, regions, *extents, generator=generator)
    shares = torch.exp(torch.empty(count).uniform_(
        float(torch.log(torch.tensor(smallest))), float(torch.log(torch.tensor(largest))),
        generator=generator))
    axes = tuple(range(2, 2 + dims))
    spectrum = torch.fft.fftn(noise, dim=axes)
    freq2 = torch.zeros(tuple(extents))  # |f|² in cycles per position
    for axis, extent in enumerate(extents):
        shape = [1] * dims
        shape[axis] = extent
        freq2 = freq2 + torch.fft.fftfreq(extent).reshape(shape) ** 2
    # a Gaussian of σ positions is exp(-2π² σ² |f|²) in frequency
    sigma = (shares * max(extents)).reshape(-1, *([1] * (dims + 1)))
    gain = torch.exp(-2 * torch.pi**2 * sigma**2 * freq2[None, None])
    gain = gain * (freq2 > 0)  # no mean: every field varies about zero, no region wins all
    fields = torch.fft.ifftn(spectrum * gain, dim=axes).real
    fields = fields / fields.flatten(2).std(dim=2).clamp_min(1e-12).reshape(
        count, regions, *([1] * dims))
    winner = fields.argmax(dim=1)
    return F.one_hot(winner, regions).movedim(-1, 1).to(torch.float32)


class DoodleSet:
    """Random doodles of ``regions`` regions, drawn in batches (the training input of a
    doodle-conditioned generator; a :class:`~texsynth.feedforward.batches.BatchSource`)."""

    def __init__(self, regions: int) -> None:
        if regions < 1:
            raise UsageError("doodles need at least one region")
        self.regions = int(regions)

    def batch(self, count: int, size: tuple[int, ...], rng: torch.Generator) -> torch.Tensor:
        """``(count, regions, *size)`` one-hot masks (:func:`random_doodles`)."""
        return random_doodles(count, self.regions, size, generator=rng)

    def describe(self) -> list[str]:
        return [f"random doodles of {self.regions} regions"]


class BlendSet:
    """Random blend weights of ``regions`` exemplars as constant masks, drawn in batches
    (the training input of a blend generator, a texture-code-conditioned generator whose
    code is the weights; a :class:`~texsynth.feedforward.batches.BatchSource`). Weights are uniform
    on the simplex (Dirichlet(1)); a quarter of the samples are one exemplar alone, so
    the ends of a slider are trained as often as the mixtures."""

    def __init__(self, regions: int) -> None:
        if regions < 2:
            raise UsageError("a blend needs at least two exemplars")
        self.regions = int(regions)

    def batch(self, count: int, size: tuple[int, ...], rng: torch.Generator) -> torch.Tensor:
        """``(count, regions, *size)``: every sample's weights, constant over positions."""
        draws = -torch.log(torch.rand(count, self.regions, generator=rng).clamp_min(1e-12))
        weights = draws / draws.sum(dim=1, keepdim=True)
        alone = torch.rand(count, generator=rng) < 0.25
        which = torch.randint(self.regions, (count,), generator=rng)
        weights[alone] = F.one_hot(which[alone], self.regions).to(weights)
        return blend_masks(weights, size)

    def describe(self) -> list[str]:
        return [f"random blends of {self.regions} exemplars"]


def blend_masks(weights: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Constant masks ``(N, K, *size)`` of blend weights ``(N, K)`` (or ``(K,)``)."""
    rows = weights if weights.dim() == 2 else weights[None]
    return rows.float().reshape(*rows.shape, *([1] * len(size))).expand(
        *rows.shape, *size).contiguous()
