"""The texture objective's targets (:class:`texsynth.stats.objective.TextureObjective`),
computed once from its exemplars: blend weights, the exemplars' feature maps and model
input, and the loss modules that hold their statistics.

* the plain texture loss (:func:`exemplar_texture_loss`): the exemplars' maps pooled
  (several photos of one texture), or a blend's weighted sum of one loss per exemplar;
* guided losses, per region of a guide (:mod:`texsynth.controls.regions`): masked Grams
  of the exemplars' regions (:func:`guided_region_loss`), or any texture loss on the
  positions gathered from each region (:func:`gathered_region_loss`);
* the value term (:func:`value_loss`): sliced Wasserstein on the model input's channel
  vectors.

Exemplar maps lose their wrap margins first (:func:`unwrapped`): positions whose
receptive field wraps around a border are not exemplar statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..controls.regions import Guidance, erode_masks, inside_masks, pool_masks
from ..domain import Domain
from ..errors import UsageError
from ..extractor import FeatureExtractor, axis_margins
from ..plugins import PluginManager
from .guided import GatheredRegionLoss, GuidedTextureLoss, gather_region, masked_grams
from .losses import CombinedLoss, GramNormalization
from .sliced import SlicedWassersteinLoss
from .texture_losses import build_texture_loss, pool_exemplar_maps

__all__ = [
    "blend_weights",
    "exemplar_maps",
    "exemplar_texture_loss",
    "gathered_region_loss",
    "guided_region_loss",
    "region_margins",
    "unwrapped",
    "value_loss",
    "widest_margin",
]


def blend_weights(weights: Sequence[float] | None, count: int) -> tuple[float, ...] | None:
    """Blend weights normalised to sum 1, or ``None`` (no blend)."""
    if weights is None:
        return None
    values = [float(w) for w in weights]
    if len(values) != count:
        raise UsageError(f"{len(values)} blend weights for {count} exemplars: give one per "
                         "exemplar", parameter="exemplar_weights")
    if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise UsageError(f"blend weights must be non-negative numbers, not all zero, got "
                         f"{', '.join(f'{w:g}' for w in values)}",
                         parameter="exemplar_weights")
    total = sum(values)
    return tuple(w / total for w in values)


def unwrapped(maps: torch.Tensor, margin: int | Sequence[int]) -> torch.Tensor:
    """``maps`` ``(N, C, *spatial)`` without ``margin`` positions at both ends of every
    spatial axis (one number, or one per axis; see :meth:`FeatureExtractor.wrap_margin`);
    axes too short to keep at least their margin are left whole."""
    margins = axis_margins(margin, maps.dim() - 2)
    if not any(m > 0 for m in margins):
        return maps
    index: list[slice] = [slice(None), slice(None)]
    for extent, cut in zip(maps.shape[2:], margins, strict=True):
        index.append(slice(cut, extent - cut) if cut > 0 and extent >= 3 * cut
                     else slice(None))
    return maps[tuple(index)]


def widest_margin(margin: int | Sequence[int]) -> int:
    """The largest of a wrap margin's axes (what region masks are eroded by)."""
    return int(margin) if isinstance(margin, int) else max((int(m) for m in margin),
                                                            default=0)


def exemplar_maps(domain: Domain, extractor: FeatureExtractor,
                  exemplars: Sequence[torch.Tensor], layers: Sequence[str],
                  device: torch.device) -> tuple[list[dict[str, torch.Tensor]],
                                                 list[torch.Tensor]]:
    """Per exemplar ``(1, C, *spatial)``, its maps ``{layer: (1, C_l, *spatial_l)}`` of
    ``layers`` and its model input (what the value term compares), computed on ``device``
    without gradients."""
    with torch.no_grad():
        per_exemplar: list[dict[str, torch.Tensor]] = []
        values: list[torch.Tensor] = []
        for exemplar in exemplars:
            model_input = extractor.input_of(domain, exemplar.to(device))
            values.append(model_input)
            feats = extractor(model_input, layers=layers)
            per_exemplar.append({name: feats[name] for name in layers})
    return per_exemplar, values


def exemplar_texture_loss(per_exemplar: Sequence[Mapping[str, torch.Tensor]], text: str,
                          extractor: FeatureExtractor, layers: Sequence[str], *,
                          blend: Sequence[float] | None,
                          layer_weights: Mapping[str, float] | None,
                          normalize: GramNormalization, seed: int,
                          manager: PluginManager) -> nn.Module:
    """The texture loss ``text`` (:func:`~texsynth.stats.texture_losses.build_texture_loss`)
    of the pooled exemplars' maps (``blend`` ``None``), or a blend's weighted sum of one
    loss per exemplar; the maps of ``layers`` lose their wrap margins first."""
    margins = {name: extractor.wrap_margin(name) for name in layers}

    def trimmed(maps: Mapping[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        return {name: [unwrapped(maps[name], margins[name])] for name in maps}

    if blend is None:
        pooled: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
        for maps in per_exemplar:
            for name, items in trimmed(maps).items():
                pooled[name].extend(items)
        return build_texture_loss(text, pool_exemplar_maps(pooled),
                                  layer_weights=layer_weights, normalize=normalize,
                                  seed=seed, manager=manager)
    return CombinedLoss([
        (f"exemplar{i}", weight,
         build_texture_loss(text, pool_exemplar_maps(trimmed(maps)),
                            layer_weights=layer_weights, normalize=normalize,
                            seed=seed, manager=manager))
        for i, (maps, weight) in enumerate(zip(per_exemplar, blend, strict=True))])


def region_margins(extractor: FeatureExtractor, layers: Sequence[str]) -> dict[str, int]:
    """Per layer, the widest axis of its wrap margin: guided losses erode region masks and
    cut maps by one margin for every axis."""
    return {name: widest_margin(extractor.wrap_margin(name)) for name in layers}


def _region_targets(per_exemplar: Sequence[Mapping[str, torch.Tensor]],
                    guidance: Guidance, region: int, layers: Sequence[str],
                    margins: Mapping[str, int]) -> dict[str, torch.Tensor]:
    """``{layer: (1, C_l, P)}``: the ``P`` positions of region ``region`` in every
    exemplar (hard masks, wrap margins cut), for the layers where it has any."""
    targets: dict[str, torch.Tensor] = {}
    for name in layers:
        parts = []
        for maps, masks in zip(per_exemplar, guidance.exemplars, strict=True):
            level = pool_masks(masks.to(maps[name].device)[None],
                               tuple(maps[name].shape[2:]))
            cut = unwrapped(inside_masks(level, margins[name], circular=False),
                            margins[name])[0, region]
            if bool((cut > 0.5).any()):
                parts.append(gather_region(unwrapped(maps[name], margins[name]), cut))
        if parts:
            targets[name] = torch.cat(parts, dim=-1)
    return targets


def gathered_region_loss(per_exemplar: Sequence[Mapping[str, torch.Tensor]],
                         guidance: Guidance, text: str, extractor: FeatureExtractor,
                         layers: Sequence[str], *, layer_weights: Mapping[str, float] | None,
                         normalize: GramNormalization, seed: int, manager: PluginManager,
                         spatial_dims: int) -> GatheredRegionLoss:
    """Per region, the loss ``text`` on the exemplars' gathered region positions
    (:class:`~texsynth.stats.guided.GatheredRegionLoss`, hard masks); region ``k``'s
    random losses are seeded with ``seed + k``.

    Raises:
        UsageError: a region of the output's guide is in no exemplar.
    """
    margins = region_margins(extractor, layers)
    losses: list[tuple[nn.Module, tuple[str, ...]] | None] = []
    for k in range(guidance.regions):
        targets = _region_targets(per_exemplar, guidance, k, layers, margins)
        if not targets:
            losses.append(None)
            continue
        loss = build_texture_loss(text, targets, layer_weights={
            name: w for name, w in (layer_weights or {}).items() if name in targets},
            normalize=normalize, seed=seed + k, manager=manager)
        losses.append((loss, tuple(targets)))
    assert guidance.output is not None
    present = [item is not None for item in losses]
    totals = guidance.output.reshape(guidance.regions, -1).sum(dim=1)
    missing = [k for k in range(guidance.regions) if totals[k] > 0 and not present[k]]
    if missing:
        raise UsageError(f"region {guidance.names[missing[0]]} of the guide is in no "
                         "exemplar (give each region's exemplar, or exemplar guides "
                         "that have it)", parameter="guide")
    return GatheredRegionLoss(losses, guidance.output, margins=margins,
                              spatial_dims=spatial_dims)


def guided_region_loss(per_exemplar: Sequence[Mapping[str, torch.Tensor]],
                       guidance: Guidance, extractor: FeatureExtractor,
                       layers: Sequence[str], *, layer_weights: Mapping[str, float] | None,
                       normalize: GramNormalization, spatial_dims: int) -> GuidedTextureLoss:
    """Region Grams ``{layer: (K, C_l, C_l)}`` of the exemplars, pooled over exemplars by
    area and normalised by ``normalize``, in a
    :class:`~texsynth.stats.guided.GuidedTextureLoss`.

    Raises:
        UsageError: the guidance has masks for another number of exemplars.
    """
    if len(guidance.exemplars) != len(per_exemplar):
        raise UsageError(f"the guidance has masks for {len(guidance.exemplars)} "
                         f"exemplars, not {len(per_exemplar)}", parameter="guide")
    regions = guidance.regions
    targets: dict[str, torch.Tensor] = {}
    present = torch.zeros(regions, dtype=torch.bool)
    for name in layers:
        margin = widest_margin(extractor.wrap_margin(name))
        sums: torch.Tensor | None = None
        areas = torch.zeros(regions)
        for maps, masks in zip(per_exemplar, guidance.exemplars, strict=True):
            level = pool_masks(masks.to(maps[name].device)[None],
                               tuple(maps[name].shape[2:]))
            level = erode_masks(level, margin, circular=False)[0]
            cut_maps = unwrapped(maps[name], margin)
            cut_masks = unwrapped(level[None], margin)
            grams, area = masked_grams(cut_maps, cut_masks, "none")
            sums = grams[0] if sums is None else sums + grams[0]
            areas = areas + area[0].cpu()
        assert sums is not None
        channels = sums.shape[-1]
        scale = {"hw": areas, "chw": areas * channels, "none": torch.ones(regions)}
        targets[name] = sums / scale[normalize].clamp_min(1e-12).to(sums)[:, None, None]
        present |= areas > 0
    margins = region_margins(extractor, layers)
    return GuidedTextureLoss(targets, present, guidance.output, spatial_dims=spatial_dims,
                             layer_weights=layer_weights, normalize=normalize,
                             names=guidance.names, margins=margins,
                             weighting=guidance.weighting)


def value_loss(values: Sequence[torch.Tensor], blend: Sequence[float] | None,
               seed: int) -> nn.Module:
    """The value term's loss: sliced Wasserstein between channel-vector distributions of
    the model input and of the exemplars' ``values`` (``(1, C, *spatial)`` each; pooled,
    or one loss per exemplar weighted by ``blend``), directions drawn from ``seed + 1``."""
    value_seed = (seed + 1) % 2**63
    if blend is None:
        return SlicedWassersteinLoss(pool_exemplar_maps({"value": list(values)}),
                                     seed=value_seed)
    return CombinedLoss([
        (f"exemplar{i}", w, SlicedWassersteinLoss({"value": v}, seed=value_seed))
        for i, (v, w) in enumerate(zip(values, blend, strict=True))])
