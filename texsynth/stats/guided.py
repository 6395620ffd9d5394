"""Guided texture losses: the statistics of each region of the output against those of the
same region of the exemplars.

For region ``k`` and layer ``l`` the masked Gram matrix

``G_lk = Σ_p m_k(p) F_l(p) F_l(p)ᵀ / Z_k``, with ``Z_k = C_l · Σ_p m_k(p)`` (``"chw"``)

of the output is matched to the same masked Gram of the exemplars' positions of region
``k`` (:class:`GuidedTextureLoss`); position-free losses compare each region's gathered
positions (:class:`GatheredRegionLoss`). The masks come from
:mod:`texsynth.controls.regions`. Every region weighs the same, as if it were
synthesised alone, unless the weighting says ``"area"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch
from torch import nn

from ..controls.regions import RegionWeighting, erode_masks, inside_masks, pool_masks
from ..errors import UsageError
from .losses import GramNormalization, check_layer_weights, gram_matrix

__all__ = [
    "GatheredRegionLoss",
    "GuidedTextureLoss",
    "gather_region",
    "masked_grams",
]


def masked_grams(maps: torch.Tensor, masks: torch.Tensor, normalize: GramNormalization
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-region Grams of feature maps and the regions' weights.

    Args:
        maps: ``(N, C, *spatial)`` feature maps.
        masks: ``(N or 1, K, *spatial)`` region masks at the maps' resolution.
        normalize: as :func:`texsynth.gram_matrix`, with ``M`` the region's mask sum.

    Returns:
        ``(grams (N, K, C, C), area (N, K))``: ``grams[n, k] = Σ_p m F Fᵀ / Z_k`` and
        ``area[n, k] = Σ_p m_k(p)``; regions of no area have a zero Gram.
    """
    n, c = maps.shape[:2]
    flat = maps.reshape(n, c, -1)
    weights = masks.reshape(masks.shape[0], masks.shape[1], -1).to(flat)
    weights = weights.expand(n, -1, -1)
    area = weights.sum(dim=-1)
    grams = []
    for k in range(weights.shape[1]):
        root = weights[:, k].clamp_min(0).sqrt()[:, None, :]  # constant: no gradient
        raw = gram_matrix(flat * root, "none")
        scale = {"hw": 1.0, "chw": float(c), "none": 0.0}[normalize]
        if scale:
            raw = raw / (area[:, k] * scale).clamp_min(1e-12)[:, None, None]
        grams.append(raw)
    return torch.stack(grams, dim=1), area


class GuidedTextureLoss(nn.Module):
    """``Σ_k Σ_l w_l ‖G_lk(x) − T_lk‖²_F``: the Gram loss of every region against its own
    targets, averaged over the batch.

    Args:
        targets: ``{layer: (K, C_l, C_l)}`` region Grams of the exemplars.
        present: ``(K,)`` whether the exemplars have region ``k`` at all.
        output_masks: ``(K, *spatial)`` or ``(N, K, *spatial)`` masks of the output at
            the signal's extents (``forward`` may be given others).
        spatial_dims: the signal's number of spatial axes.
        layer_weights: ``{layer: w_l}``.
        normalize: Gram normalisation.
        names: region labels, for messages.
        margins: ``{layer: r}``, the half-width of each layer's window in its maps'
            positions (:meth:`~texsynth.FeatureExtractor.wrap_margin`); the output's masks
            are eroded by it (:func:`erode_masks`), so a region's statistics at a layer
            come from the positions that see only that region ("inside" guidance, Gatys
            et al. 2017). Layers not named are not eroded.
        weighting: :data:`RegionWeighting`.

    Raises:
        UsageError: the output has a region that no exemplar has.
    """

    def __init__(self, targets: Mapping[str, torch.Tensor], present: torch.Tensor,
                 output_masks: torch.Tensor | None, *, spatial_dims: int,
                 layer_weights: Mapping[str, float] | None = None,
                 normalize: GramNormalization = "chw", names: Sequence[str] = (),
                 margins: Mapping[str, int] | None = None,
                 weighting: RegionWeighting = "equal") -> None:
        super().__init__()
        if weighting not in ("equal", "area"):
            raise UsageError(f"unknown region weighting {weighting!r}; use equal or area")
        self.weighting: RegionWeighting = weighting
        self.layers = tuple(targets)
        self.margins = {name: int((margins or {}).get(name, 0)) for name in self.layers}
        self._cache: dict[tuple[str, tuple[int, ...], str], torch.Tensor] = {}
        self.layer_weights = check_layer_weights(targets, layer_weights)
        self.normalize: GramNormalization = normalize
        self.names = tuple(names)
        self.spatial_dims = int(spatial_dims)
        for index, name in enumerate(self.layers):
            self.register_buffer(f"target_{index}", targets[name].detach())
        self.register_buffer("present", present.bool())
        self.output_masks: torch.Tensor | None
        self.register_buffer("output_masks", None)
        if output_masks is not None:
            self.set_output_masks(output_masks)

    def set_output_masks(self, masks: torch.Tensor) -> None:
        """Fix the output's masks ``(K, *spatial)`` (or ``(N, K, *spatial)``)."""
        self.check_masks(masks)
        self.output_masks = masks.detach().float()
        self._cache = {}

    def layer_masks(self, name: str, masks: torch.Tensor, spatial: tuple[int, ...]
                    ) -> torch.Tensor:
        """``masks`` (``(N or 1, K, *s)`` or ``(K, *s)``) pooled to a layer's ``spatial``
        extents and eroded by its margin; cached for the fixed output masks."""
        fixed = masks is self.output_masks
        key = (name, spatial, str(masks.device))
        if fixed and key in self._cache:
            return self._cache[key]
        batch = masks if masks.dim() == self.spatial_dims + 2 else masks[None]
        level = erode_masks(pool_masks(batch, spatial), self.margins[name], circular=True)
        if fixed:
            self._cache[key] = level
        return level

    def check_masks(self, masks: torch.Tensor) -> None:
        """Refuse output masks with another number of regions, or a region the exemplars
        lack."""
        present = cast(torch.Tensor, self.present)
        regions = present.shape[0]
        batched = masks if masks.dim() == self.spatial_dims + 2 else masks[None]
        if batched.dim() != self.spatial_dims + 2 or batched.shape[1] != regions:
            raise UsageError(f"the guide has masks of shape {tuple(masks.shape)}, not "
                             f"{regions} regions over {self.spatial_dims} axes",
                             parameter="guide")
        totals = batched.sum(dim=tuple(d for d in range(batched.dim()) if d != 1))
        missing = [k for k in range(regions)
                   if totals[k] > 0 and not bool(present[k].item())]
        if missing:
            label = self.names[missing[0]] if self.names else str(missing[0])
            raise UsageError(f"region {label} of the guide is in no exemplar (give each "
                             "region's exemplar, or exemplar guides that have it)",
                             parameter="guide")

    def forward(self, features: Mapping[str, torch.Tensor],
                masks: torch.Tensor | None = None) -> torch.Tensor:
        masks = self.output_masks if masks is None else masks
        if masks is None:
            raise UsageError("a guided texture loss needs the output's guide")
        total: torch.Tensor | None = None
        for index, name in enumerate(self.layers):
            maps = features[name]
            level = self.layer_masks(name, masks.to(maps.device), tuple(maps.shape[2:]))
            grams, area = masked_grams(maps, level, self.normalize)
            target: torch.Tensor = getattr(self, f"target_{index}")
            present = cast(torch.Tensor, self.present)
            use = (area > 0) & present[None, :]
            diff = (grams - target[None]).pow(2).sum(dim=(2, 3)) * use
            if self.weighting == "area":
                diff = diff * area / area.sum(dim=1, keepdim=True).clamp_min(1e-12)
            term = diff.sum(dim=1).mean() * self.layer_weights[name]
            total = term if total is None else total + term
        if total is None:
            raise UsageError("a guided texture loss needs at least one layer")
        return total


def gather_region(maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The positions of ``maps`` ``(N, C, *spatial)`` where ``mask`` ``(*spatial)`` is
    over 0.5, as a one-axis map ``(N, C, n)`` (for statistics that ignore positions)."""
    return maps.flatten(2)[:, :, mask.reshape(-1) > 0.5]


class GatheredRegionLoss(nn.Module):
    """Spatial guidance for any texture loss that ignores positions (``sw``,
    ``gram+0.5*sw``): every region's output positions (hard masks, pooled to each layer
    and eroded as in :class:`GuidedTextureLoss`) are gathered into a one-axis map and
    compared by that region's own loss, built on the exemplars' gathered positions.
    Regions weigh the same. Fixed output masks only (optimisation, not training).

    Args:
        losses: per region, ``(loss module, layers it has)``; ``None`` for a region the
            exemplars lack.
        output_masks: ``(K, *spatial)`` masks of the output.
        margins: ``{layer: r}``, the erosion of each layer's masks.
        spatial_dims: the signal's number of spatial axes.
    """

    def __init__(self, losses: Sequence[tuple[nn.Module, tuple[str, ...]] | None],
                 output_masks: torch.Tensor, *, margins: Mapping[str, int],
                 spatial_dims: int) -> None:
        super().__init__()
        self.region_losses = nn.ModuleList([item[0] for item in losses if item is not None])
        self.region_layers = [None if item is None else item[1] for item in losses]
        self.margins = dict(margins)
        self.spatial_dims = int(spatial_dims)
        self.register_buffer("output_masks", output_masks.detach().float())
        self._cache: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}

    def _masks(self, name: str, spatial: tuple[int, ...], device: torch.device
               ) -> torch.Tensor:
        key = (name, spatial)
        if key not in self._cache:
            masks = cast(torch.Tensor, self.output_masks)
            level = pool_masks(masks.to(device)[None], spatial)
            self._cache[key] = inside_masks(level, self.margins.get(name, 0),
                                            circular=True)[0]
        return self._cache[key]

    def forward(self, features: Mapping[str, torch.Tensor],
                masks: torch.Tensor | None = None) -> torch.Tensor:
        if masks is not None:
            raise UsageError("guides with per-batch masks (doodle training) need the gram "
                             "texture loss", parameter="texture_loss")
        total: torch.Tensor | None = None
        modules = iter(self.region_losses)
        for k, layers in enumerate(self.region_layers):
            if layers is None:
                continue
            loss = next(modules)
            picked = {}
            for name in layers:
                maps = features[name]
                region = self._masks(name, tuple(maps.shape[2:]), maps.device)[k]
                picked[name] = gather_region(maps, region)
            term = loss(picked)
            total = term if total is None else total + term
        if total is None:
            raise UsageError("the guide has no region the exemplars have", parameter="guide")
        return total
