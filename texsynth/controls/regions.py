"""Guide maps and region masks: regions of the output that take the statistics of regions of
exemplars (Gatys et al. 2017, "Controlling perceptual factors in neural style transfer";
Champandard 2016, "Semantic style transfer and turning two-bit doodles into fine
artworks").

A *guide* labels every position of the output with a region, and every exemplar has its
own guide, or is one region as a whole. Guides are read by the domain
(:meth:`texsynth.Domain.load_guide`) as *value maps* ``(V, *spatial)`` -- colours of a
doodle, or a region number along time -- and each distinct value vector is a region
(:func:`guide_palette`, :func:`guide_masks`). Regions are numbered in the order of their
values' mean, then the values themselves (darkest first for colours). Masks are
area-averaged down to each layer's resolution (:func:`pool_masks`) and eroded by a
layer's window (:func:`inside_masks`); the losses that use them are in
:mod:`texsynth.stats.guided`.

Domain-free: nothing here knows what the axes mean; masks follow the signal's spatial
axes, whatever their number.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..domain import Domain
from ..errors import UsageError
from ..resample import resize_nearest

__all__ = [
    "GUIDE_MIN_SHARE",
    "Guidance",
    "GuideSource",
    "RegionWeighting",
    "Regions",
    "build_guidance",
    "doodle_masks",
    "erode_masks",
    "exemplar_regions",
    "guide_masks",
    "guide_palette",
    "inside_masks",
    "load_guide_map",
    "pool_masks",
    "region_names",
]


#: A guide: a file the domain reads, a domain's text (``"5"``: seconds), or a map tensor.
GuideSource = torch.Tensor | str | os.PathLike[str]


#: How the regions' terms of a guided loss add up: ``"equal"`` (every region as if it
#: were synthesised alone) or ``"area"`` (each by its share of the masks' total weight:
#: with constant soft masks ``w_k`` this is the blend ``Σ_k w_k ‖G − T_k‖²``).
RegionWeighting = Literal["equal", "area"]


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
            for a batch), one per region; ``None`` when every batch brings its own (a
            doodle-conditioned generator's training).
        exemplars: per exemplar, ``(K, *spatial_e)`` masks of its positions.
        names: one label per region, for messages and settings.
        weighting: how the regions' terms add up (:class:`GuidedTextureLoss`).
    """

    output: torch.Tensor | None
    exemplars: tuple[torch.Tensor, ...]
    names: tuple[str, ...]
    weighting: RegionWeighting = "equal"

    @property
    def regions(self) -> int:
        """The number of regions ``K``."""
        return int(self.exemplars[0].shape[0])

    def at(self, extents: Sequence[int], exemplar_extents: Sequence[Sequence[int]]
           ) -> Guidance:
        """The same regions with the output's masks at ``extents`` and each exemplar's at
        its entry of ``exemplar_extents`` (a coarse-to-fine level, a rescaled exemplar)."""
        output = None if self.output is None else pool_masks(self.output, tuple(extents))
        return Guidance(output,
                        tuple(pool_masks(m, tuple(e))
                              for m, e in zip(self.exemplars, exemplar_extents, strict=True)),
                        self.names, self.weighting)


def guide_palette(maps: Sequence[torch.Tensor], *, min_share: float = GUIDE_MIN_SHARE
                  ) -> torch.Tensor:
    """The regions' value vectors ``(K, V)`` of guide maps ``(V, *spatial)``: every
    distinct vector (rounded to 1/255) whose *interior* positions (those whose neighbours
    along every axis have the same vector) cover at least ``min_share`` of some map, so
    that the in-between colours of an anti-aliased edge are no region however long the
    edge; ordered by mean value, then by the values."""
    found: dict[tuple[int, ...], None] = {}
    for guide in maps:
        codes = torch.round(guide.float() / _QUANTUM).to(torch.int64)
        inner = _interior(codes).reshape(-1)
        flat = codes.reshape(codes.shape[0], -1).T[inner]
        if flat.shape[0] == 0:
            continue
        values, counts = torch.unique(flat, dim=0, return_counts=True)
        keep = counts >= max(1, int(min_share * inner.shape[0]))
        for row in values[keep].tolist():
            found[tuple(row)] = None
    if not found:
        raise UsageError("the guide has no region (no value covers enough positions)",
                         parameter="guide")
    rows = sorted(found, key=lambda row: (sum(row) / len(row), row))
    return torch.tensor(rows, dtype=torch.float32) * _QUANTUM


def _interior(codes: torch.Tensor) -> torch.Tensor:
    """``(*spatial)`` whether each position of ``codes`` ``(V, *spatial)`` has the same
    vector as both its neighbours along every axis (a missing neighbour counts as same)."""
    inner = torch.ones(codes.shape[1:], dtype=torch.bool)
    for axis in range(1, codes.dim()):
        length = codes.shape[axis]
        if length < 2:
            continue
        same = (codes.narrow(axis, 1, length - 1) == codes.narrow(axis, 0, length - 1)
                ).all(dim=0)  # same[i]: positions i and i + 1 agree
        edge = torch.ones_like(same.narrow(axis - 1, 0, 1))
        inner &= torch.cat([edge, same], dim=axis - 1) & torch.cat([same, edge], dim=axis - 1)
    return inner


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


def erode_masks(masks: torch.Tensor, radius: int, *, circular: bool) -> torch.Tensor:
    """Masks ``(N, K, *spatial)`` eroded by ``radius`` positions along every axis: each
    position keeps the smallest value within ``radius`` of it (a box, one axis at a
    time), so only positions whose whole window lies inside a region keep its weight.
    ``circular``: the masks wrap around (an output); else the edges repeat (an exemplar).
    """
    if radius <= 0:
        return masks
    out = masks
    dims = masks.dim() - 2
    for axis in range(2, 2 + dims):
        if out.shape[axis] <= 2 * radius and circular:
            return out.amin(dim=tuple(range(2, 2 + dims)), keepdim=True).expand_as(masks)
        moved = out.movedim(axis, -1)
        lead = moved.shape[:-1]
        flat = moved.reshape(-1, 1, moved.shape[-1])
        padded = F.pad(flat, (radius, radius), mode="circular" if circular else "replicate")
        eroded = -F.max_pool1d(-padded, 2 * radius + 1, stride=1)
        out = eroded.reshape(*lead, -1).movedim(-1, axis)
    return out


def load_guide_map(domain: Domain, source: GuideSource, extents: tuple[int, ...] | None
                   ) -> torch.Tensor:
    """A guide map ``(V, *extents)``: a tensor ``(V, *spatial)`` (resized by nearest
    neighbours) or what :meth:`Domain.load_guide` reads from a file or text;
    ``extents`` ``None``: as it is."""
    if isinstance(source, torch.Tensor):
        guide = source.detach().float()
        if guide.dim() == domain.spatial_dims + 2 and guide.shape[0] == 1:
            guide = guide[0]
        if guide.dim() != domain.spatial_dims + 1:
            raise UsageError(f"a guide tensor must be (V, *spatial) with "
                             f"{domain.spatial_dims} spatial axes, got shape "
                             f"{tuple(source.shape)}", parameter="guide")
        return guide if extents is None else resize_nearest(guide, extents)
    return domain.load_guide(source, extents)


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
    regions = exemplar_regions(domain, exemplar_extents, exemplar_guides, also=[output])
    names = regions.names if regions.palette is not None \
        else region_names(guide_palette([output]))
    masks = doodle_masks(output, len(regions.exemplars), regions.palette)
    return Guidance(masks, regions.exemplars, names)


@dataclass(frozen=True)
class Regions:
    """The regions the exemplars define: their masks and, when the exemplars have guides,
    the value vector of every region (``palette`` ``(K, V)``; ``None``: region ``i`` is
    exemplar ``i``, and a guide's regions are taken darkest first)."""

    exemplars: tuple[torch.Tensor, ...]
    names: tuple[str, ...]
    palette: torch.Tensor | None


def exemplar_regions(domain: Domain, exemplar_extents: Sequence[tuple[int, ...]],
                     exemplar_guides: Sequence[GuideSource] | None = None, *,
                     also: Sequence[torch.Tensor] = ()) -> Regions:
    """The regions of exemplars of ``exemplar_extents``: from their guides (whose values,
    with those of the maps ``also``, make the palette), or one exemplar per region."""
    count = len(exemplar_extents)
    if not exemplar_guides:
        wholes = []
        for index, ext in enumerate(exemplar_extents):
            mask = torch.zeros(count, *ext)
            mask[index] = 1.0
            wholes.append(mask)
        return Regions(tuple(wholes), tuple(f"exemplar {i + 1}" for i in range(count)), None)
    if len(exemplar_guides) != count:
        raise UsageError(f"{len(exemplar_guides)} exemplar guides for {count} exemplars: "
                         "give one per exemplar", parameter="exemplar_guides")
    maps = [load_guide_map(domain, g, tuple(e))
            for g, e in zip(exemplar_guides, exemplar_extents, strict=True)]
    if any(m.shape[0] != maps[0].shape[0] for m in [*maps, *also]):
        raise UsageError("the exemplar guides and the guide have different numbers of "
                         "values per position", parameter="exemplar_guides")
    palette = guide_palette([*also, *maps])
    return Regions(tuple(guide_masks(m, palette) for m in maps), region_names(palette),
                   palette)


def inside_masks(masks: torch.Tensor, radius: int, *, circular: bool) -> torch.Tensor:
    """Hard masks ``(N, K, *spatial)`` for gathering: :func:`erode_masks` over 0.5, and
    for a region that erosion empties (smaller than the window), the region itself."""
    eroded = erode_masks(masks, radius, circular=circular) > 0.5
    whole = masks > 0.5
    spatial = tuple(range(2, masks.dim()))
    empty = eroded.sum(dim=spatial, keepdim=True) < 2
    return torch.where(empty, whole, eroded).to(masks.dtype)


def doodle_masks(guide: torch.Tensor, count: int, palette: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Masks ``(K, *spatial)`` of an output's guide map ``(V, *spatial)`` for ``count``
    regions: each position to the nearest ``palette`` vector (``(K, V)``, the exemplar
    guides' regions) or, without one, the guide's own regions, darkest first, which must
    be ``count`` (one per exemplar).

    Raises:
        UsageError: the guide's number of regions is not ``count``.
    """
    if palette is not None:
        if guide.shape[0] != palette.shape[1]:
            raise UsageError(f"the guide has {guide.shape[0]} values per position, the "
                             f"regions {palette.shape[1]}", parameter="guide")
        return guide_masks(guide, palette)
    palette = guide_palette([guide])
    names = region_names(palette)
    if palette.shape[0] != count:
        raise UsageError(
            f"the guide has {palette.shape[0]} regions ({', '.join(names[:8])}) for "
            f"{count} exemplar(s): give one exemplar per region, in the regions' order "
            "(darkest first), or a guide of each exemplar", parameter="guide")
    return guide_masks(guide, palette)
