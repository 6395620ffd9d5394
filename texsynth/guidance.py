"""Spatial guidance: regions of the output that take the statistics of regions of exemplars.

Gatys et al. 2017 ("Controlling perceptual factors in neural style transfer") and
Champandard 2016 ("Semantic style transfer and turning two-bit doodles into fine
artworks"): a *guide* labels every position of the output with a region, and every
exemplar has its own guide, or is one region as a whole. The texture statistics are then
computed per region: for region ``k`` and layer ``l`` the masked Gram matrix

``G_lk = Σ_p m_k(p) F_l(p) F_l(p)ᵀ / Z_k``, with ``Z_k = C_l · Σ_p m_k(p)`` (``"chw"``)

of the output is matched to the same masked Gram of the exemplars' positions of region
``k``; the mask ``m_k`` is the region's indicator, area-averaged down to each layer's
resolution (so masks are soft near boundaries at deep layers). Every region weighs the
same, as if it were synthesised alone.

Guides are read by the domain (:meth:`texsynth.Domain.load_guide`) as *value maps*
``(V, *spatial)`` -- colours of a doodle, or a region number along time -- and each
distinct value vector is a region (:func:`guide_palette`, :func:`guide_masks`). Regions
are numbered in the order of their values' mean, then the values themselves (darkest
first for colours).

Domain-free: nothing here knows what the axes mean; masks follow the signal's spatial
axes, whatever their number.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from .domain import Domain
from .errors import UsageError
from .losses import GramNormalization, check_layer_weights, gram_matrix

__all__ = [
    "GUIDE_MIN_SHARE",
    "Guidance",
    "GuideSource",
    "GuidedTextureLoss",
    "build_guidance",
    "guide_masks",
    "guide_palette",
    "load_guide_map",
    "masked_grams",
    "pool_masks",
    "region_names",
    "resize_nearest",
]

#: A guide: a file the domain reads, a domain's text (``"5"``: seconds), or a map tensor.
GuideSource = torch.Tensor | str | os.PathLike[str]

#: A value vector becomes a region when it covers at least this share of some guide's
#: positions; the rest (anti-aliased edges of a drawn doodle) join the nearest region.
GUIDE_MIN_SHARE = 0.002
#: Values are compared after rounding to this step (8-bit colours stay distinct).
_QUANTUM = 1.0 / 255.0


@dataclass(frozen=True)
class Guidance:
    """Region masks of one run.

    Attributes:
        output: ``(K, *spatial)`` masks in [0, 1] of the output (or ``(N, K, *spatial)``
            for a batch), one per region.
        exemplars: per exemplar, ``(K, *spatial_e)`` masks of its positions.
        names: one label per region, for messages and settings.
    """

    output: torch.Tensor
    exemplars: tuple[torch.Tensor, ...]
    names: tuple[str, ...]

    @property
    def regions(self) -> int:
        """The number of regions ``K``."""
        return int(self.output.shape[-(self.exemplars[0].dim())])

    def at(self, extents: Sequence[int], exemplar_extents: Sequence[Sequence[int]]
           ) -> Guidance:
        """The same regions with the output's masks at ``extents`` and each exemplar's at
        its entry of ``exemplar_extents`` (a coarse-to-fine level, a rescaled exemplar)."""
        return Guidance(pool_masks(self.output, tuple(extents)),
                        tuple(pool_masks(m, tuple(e))
                              for m, e in zip(self.exemplars, exemplar_extents, strict=True)),
                        self.names)


def guide_palette(maps: Sequence[torch.Tensor], *, min_share: float = GUIDE_MIN_SHARE
                  ) -> torch.Tensor:
    """The regions' value vectors ``(K, V)`` of guide maps ``(V, *spatial)``: every
    distinct vector (rounded to 1/255) that covers at least ``min_share`` of the
    positions of some map, ordered by mean value, then by the values."""
    found: dict[tuple[int, ...], None] = {}
    for guide in maps:
        flat = torch.round(guide.reshape(guide.shape[0], -1).T / _QUANTUM).to(torch.int64)
        values, counts = torch.unique(flat, dim=0, return_counts=True)
        keep = counts >= max(1, int(min_share * flat.shape[0]))
        for row in values[keep].tolist():
            found[tuple(row)] = None
    if not found:
        raise UsageError("the guide has no region", parameter="guide")
    rows = sorted(found, key=lambda row: (sum(row) / len(row), row))
    return torch.tensor(rows, dtype=torch.float32) * _QUANTUM


def guide_masks(guide: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """One-hot masks ``(K, *spatial)`` of a guide map ``(V, *spatial)``: every position
    belongs to the region of the nearest palette vector ``(K, V)``."""
    flat = guide.reshape(guide.shape[0], -1).T.float()
    nearest = torch.cdist(flat, palette.to(flat)).argmin(dim=1)
    masks = F.one_hot(nearest, palette.shape[0]).T.to(torch.float32)
    return masks.reshape(palette.shape[0], *guide.shape[1:])


def region_names(palette: torch.Tensor) -> tuple[str, ...]:
    """Labels of regions: ``#rrggbb`` for three values in [0, 1], else the values."""
    names = []
    for row in palette.tolist():
        if len(row) == 3:
            names.append("#" + "".join(f"{round(v * 255):02x}" for v in row))
        else:
            names.append(",".join(f"{v:g}" for v in row))
    return tuple(names)


def pool_masks(masks: torch.Tensor, extents: tuple[int, ...]) -> torch.Tensor:
    """Masks ``(..., *spatial)`` at ``extents`` (as many axes): area averages where an axis
    shrinks, nearest neighbours where it grows; leading axes are kept."""
    dims = len(extents)
    spatial = tuple(masks.shape[-dims:])
    if spatial == tuple(extents):
        return masks
    lead = masks.shape[:-dims]
    flat = masks.reshape(-1, 1, *spatial).float()
    if all(e <= s for e, s in zip(extents, spatial, strict=True)):
        pool: Any = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
                     F.adaptive_avg_pool3d)[dims - 1]
        out = pool(flat, extents)
    else:
        out = F.interpolate(flat, size=extents, mode="nearest")
    return out.reshape(*lead, *extents)


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

    Raises:
        UsageError: the output has a region that no exemplar has.
    """

    def __init__(self, targets: Mapping[str, torch.Tensor], present: torch.Tensor,
                 output_masks: torch.Tensor | None, *, spatial_dims: int,
                 layer_weights: Mapping[str, float] | None = None,
                 normalize: GramNormalization = "chw", names: Sequence[str] = ()) -> None:
        super().__init__()
        self.layers = tuple(targets)
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
            spatial = tuple(maps.shape[2:])
            batch = masks if masks.dim() == self.spatial_dims + 2 else masks[None]
            level = pool_masks(batch.to(maps.device), spatial)
            grams, area = masked_grams(maps, level, self.normalize)
            target: torch.Tensor = getattr(self, f"target_{index}")
            present = cast(torch.Tensor, self.present)
            use = (area > 0) & present[None, :]
            diff = (grams - target[None]).pow(2).sum(dim=(2, 3)) * use
            term = diff.sum(dim=1).mean() * self.layer_weights[name]
            total = term if total is None else total + term
        if total is None:
            raise UsageError("a guided texture loss needs at least one layer")
        return total


def load_guide_map(domain: Domain, source: GuideSource, extents: tuple[int, ...]
                   ) -> torch.Tensor:
    """A guide map ``(V, *extents)``: a tensor ``(V, *spatial)`` (resized by nearest
    neighbours) or what :meth:`Domain.load_guide` reads from a file or text."""
    if isinstance(source, torch.Tensor):
        guide = source.detach().float()
        if guide.dim() == domain.spatial_dims + 2 and guide.shape[0] == 1:
            guide = guide[0]
        if guide.dim() != domain.spatial_dims + 1:
            raise UsageError(f"a guide tensor must be (V, *spatial) with "
                             f"{domain.spatial_dims} spatial axes, got shape "
                             f"{tuple(source.shape)}", parameter="guide")
        return resize_nearest(guide, extents)
    return domain.load_guide(source, extents)


def resize_nearest(guide: torch.Tensor, extents: tuple[int, ...]) -> torch.Tensor:
    """A guide map ``(V, *spatial)`` at ``extents`` by nearest neighbours (no new values)."""
    if tuple(guide.shape[1:]) == tuple(extents):
        return guide
    return F.interpolate(guide[None].float(), size=tuple(extents), mode="nearest")[0]


def build_guidance(domain: Domain, guide: GuideSource, *, exemplar_extents:
                   Sequence[tuple[int, ...]], extents: tuple[int, ...],
                   exemplar_guides: Sequence[GuideSource] | None = None) -> Guidance:
    """The regions of a run from its guides.

    Args:
        domain: reads guide files (:meth:`Domain.load_guide`).
        guide: the output's guide (a file, a domain's text, or a ``(V, *spatial)`` map).
        exemplar_extents: each exemplar's extents.
        extents: the output's extents.
        exemplar_guides: one guide per exemplar, whose values name the same regions as
            the output's (a doodle's colours); ``None``: exemplar ``i`` is region ``i``
            as a whole (regions in :func:`guide_palette`'s order, darkest first).

    Raises:
        UsageError: the numbers of regions and exemplars (or exemplar guides) differ.
    """
    output = load_guide_map(domain, guide, extents)
    if exemplar_guides:
        if len(exemplar_guides) != len(exemplar_extents):
            raise UsageError(f"{len(exemplar_guides)} exemplar guides for "
                             f"{len(exemplar_extents)} exemplars: give one per exemplar",
                             parameter="exemplar_guides")
        maps = [load_guide_map(domain, g, tuple(e))
                for g, e in zip(exemplar_guides, exemplar_extents, strict=True)]
        if any(m.shape[0] != output.shape[0] for m in maps):
            raise UsageError("the exemplar guides and the guide have different numbers of "
                             "values per position", parameter="exemplar_guides")
        palette = guide_palette([output, *maps])
        return Guidance(guide_masks(output, palette),
                        tuple(guide_masks(m, palette) for m in maps), region_names(palette))
    palette = guide_palette([output])
    names = region_names(palette)
    count = len(exemplar_extents)
    if palette.shape[0] != count:
        raise UsageError(
            f"the guide has {palette.shape[0]} regions ({', '.join(names[:8])}) for "
            f"{count} exemplar(s): give one exemplar per region, in the regions' order "
            "(darkest first), or a guide of each exemplar", parameter="guide")
    wholes = []
    for index, ext in enumerate(exemplar_extents):
        mask = torch.zeros(count, *ext)
        mask[index] = 1.0
        wholes.append(mask)
    return Guidance(guide_masks(output, palette), tuple(wholes), names)
