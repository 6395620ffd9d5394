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
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from .domain import Domain
from .errors import UsageError
from .losses import GramNormalization, check_layer_weights, gram_matrix

__all__ = [
    "GUIDE_MIN_SHARE",
    "BlendSet",
    "DoodleSet",
    "GatheredRegionLoss",
    "Guidance",
    "GuideSource",
    "GuidedTextureLoss",
    "RegionWeighting",
    "Regions",
    "blend_masks",
    "build_guidance",
    "doodle_masks",
    "erode_masks",
    "exemplar_regions",
    "gather_region",
    "guide_masks",
    "guide_palette",
    "inside_masks",
    "load_guide_map",
    "masked_grams",
    "pool_masks",
    "random_doodles",
    "region_names",
    "resize_nearest",
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
    doodle-conditioned generator; a :class:`~texsynth.content.BatchSource`)."""

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
    code is the weights; a :class:`~texsynth.content.BatchSource`). Weights are uniform
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


def inside_masks(masks: torch.Tensor, radius: int, *, circular: bool) -> torch.Tensor:
    """Hard masks ``(N, K, *spatial)`` for gathering: :func:`erode_masks` over 0.5, and
    for a region that erosion empties (smaller than the window), the region itself."""
    eroded = erode_masks(masks, radius, circular=circular) > 0.5
    whole = masks > 0.5
    spatial = tuple(range(2, masks.dim()))
    empty = eroded.sum(dim=spatial, keepdim=True) < 2
    return torch.where(empty, whole, eroded).to(masks.dtype)
