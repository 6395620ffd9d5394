"""``autocorr``: a texture loss on the autocorrelation of feature maps over short lags.

Gram matrices average over positions, so they say which features occur together at one
place but nothing about how a feature at one place relates to the same feature a little
further on: rhythm in sound, regular spacing in pictures. Antognini, Hoffman & Weiss
(2019) added an autocorrelation term to random-filter sound textures for that reason;
Berger & Memisevic (2017) shifted correlations for pictures. Here, per layer ``l`` and
channel ``c``, with maps ``F`` of shape ``(N, C, *spatial)``:

* ``R_c(τ) = Σ_p F̃_c(p) F̃_c(p + τ) / count(τ)``, the autocovariance at spatial lag
  ``τ`` (``|τ_i| ≤ L`` along every axis), where ``F̃ = F − mean over positions`` and
  the sum runs over the ``count(τ) = Π_i (n_i − |τ_i|)`` pairs inside the map (no wrap),
  so maps of different sizes give comparable estimates;
* the loss ``Σ_l w_l · Σ_{c,τ} (R_c(τ) − R*_c(τ))² / Σ_{c,τ} R*_c(τ)²`` averaged over the
  batch, where ``R*`` is the exemplar's (several exemplars averaged): a relative error,
  about 1 for maps with no autocorrelation in common, 0 for a perfect match.

``L`` is :data:`MAX_LAG` = 32 positions (at the audio domain's hop, 0.74 s; for images,
32 pixels at layer resolution), reduced to ``n_i - 1`` along an axis a map is shorter on;
the output's lags are those of the exemplar's set that its maps can hold. Computed with
FFTs of the zero-padded maps, ``O(C · P log P)`` per layer. Combine with Gram or sliced
Wasserstein terms: ``--loss gram+autocorr``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import UsageError
from .losses import check_layer_weights

__all__ = ["MAX_LAG", "AutocorrelationLoss", "autocovariance"]

#: Largest lag (positions, per axis) of :class:`AutocorrelationLoss`.
MAX_LAG = 32


def autocovariance(maps: torch.Tensor, lags: tuple[int, ...]) -> torch.Tensor:
    """Autocovariance of every channel at lags ``-lags[i] … lags[i]`` along each axis.

    Args:
        maps: ``(N, C, *spatial)``.
        lags: largest lag per spatial axis, each ``< n_i``.

    Returns:
        ``(N, C, *(2·lags + 1))``, lag 0 in the middle; entry ``τ`` is
        ``Σ_p F̃(p) F̃(p + τ) / count(τ)`` over the pairs inside the map.
    """
    spatial = tuple(maps.shape[2:])
    if len(lags) != len(spatial) or any(not 0 <= lag < n for lag, n in zip(lags, spatial,
                                                                           strict=True)):
        raise UsageError(f"lags {lags} do not fit maps of extent {spatial}")
    dims = tuple(range(2, maps.dim()))
    centred = maps - maps.mean(dim=dims, keepdim=True)
    padded = tuple(2 * n for n in spatial)
    spectrum = torch.fft.rfftn(centred.float(), s=padded, dim=dims)
    full = torch.fft.irfftn(spectrum.abs().pow(2), s=padded, dim=dims)
    out = full
    for axis, (lag, n) in enumerate(zip(lags, spatial, strict=True)):
        index = torch.arange(-lag, lag + 1, device=maps.device) % (2 * n)
        out = out.index_select(2 + axis, index)
        count = (n - torch.arange(-lag, lag + 1, device=maps.device).abs()).to(out.dtype)
        shape = [1] * out.dim()
        shape[2 + axis] = 2 * lag + 1
        out = out / count.view(shape)
    return out.to(maps.dtype)


class AutocorrelationLoss(nn.Module):
    """The ``autocorr`` texture loss (see the module docstring) against fixed exemplar
    maps ``{layer: (N_e, C_l, *spatial)}``; ``normalize`` is accepted for the loss
    factory signature and unused (the loss is relative per layer)."""

    def __init__(self, target_features: Mapping[str, torch.Tensor], *,
                 layer_weights: Mapping[str, float] | None = None,
                 normalize: str = "chw", max_lag: int = MAX_LAG) -> None:
        super().__init__()
        del normalize
        self.layers = tuple(target_features)
        self.layer_weights = check_layer_weights(target_features, layer_weights)
        self.lags: dict[str, tuple[int, ...]] = {}
        for index, (name, maps) in enumerate(target_features.items()):
            lags = tuple(min(max_lag, n - 1) for n in maps.shape[2:])
            self.lags[name] = lags
            target = autocovariance(maps.detach(), lags).mean(dim=0, keepdim=True)
            self.register_buffer(f"target_{index}", target)

    def _target(self, index: int) -> torch.Tensor:
        target = getattr(self, f"target_{index}")
        assert isinstance(target, torch.Tensor)
        return target

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total: torch.Tensor | None = None
        for index, name in enumerate(self.layers):
            maps = features[name]
            target = self._target(index)
            lags = tuple(min(lag, n - 1) for lag, n in zip(self.lags[name], maps.shape[2:],
                                                             strict=True))
            for axis, (full, lag) in enumerate(zip(self.lags[name], lags, strict=True)):
                target = target.narrow(2 + axis, full - lag, 2 * lag + 1)
            current = autocovariance(maps, lags)
            dims = tuple(range(1, current.dim()))
            scale = target.pow(2).sum().clamp_min(1e-12)
            term = ((current - target).pow(2).sum(dim=dims) / scale).mean()
            term = term * self.layer_weights[name]
            total = term if total is None else total + term
        if total is None:
            raise UsageError("the autocorrelation loss needs at least one layer")
        return total
