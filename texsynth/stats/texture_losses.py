"""Texture-loss settings: a registered loss (``"gram"``, ``"sw"``) or a weighted sum of them
(``"gram+0.5*sw"``) parsed into ``(name, weight)`` terms (:func:`parse_texture_loss`) and
built against exemplar feature maps (:func:`build_texture_loss`), with the pooling of
several exemplars' maps into one target (:func:`pool_exemplar_maps`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Collection, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from ..plugins import PluginManager, get_plugin_manager
from .losses import CombinedLoss, GramNormalization

__all__ = [
    "build_texture_loss",
    "parse_texture_loss",
    "pool_exemplar_maps",
]


def parse_texture_loss(text: str, available: Collection[str]) -> list[tuple[str, float]]:
    """``[(name, weight), ...]`` of a texture-loss setting.

    ``text`` is a registered name (taken as it is, even if it holds ``+``), or terms
    joined by ``+``, each ``NAME`` (weight 1) or ``WEIGHT*NAME``; spaces around names and
    weights are ignored, a name may appear once.

    >>> parse_texture_loss("gram + 0.5*sw", ["gram", "sw"])
    [('gram', 1.0), ('sw', 0.5)]

    Raises:
        UsageError: one line naming the bad term, and for unknown names the registered ones.
    """
    if text in available:
        return [(text, 1.0)]
    known = ", ".join(sorted(available)) or "none are installed"
    terms: list[tuple[str, float]] = []
    for raw in text.split("+"):
        weight_text, star, name = raw.rpartition("*")
        name = name.strip()
        weight = _loss_weight(weight_text, text) if star else 1.0
        if not name:
            raise UsageError(f"texture loss {text!r}: {raw.strip()!r} is not NAME or "
                             f"WEIGHT*NAME (e.g. gram+0.5*sw); registered: {known}",
                             parameter="texture_loss")
        if name not in available:
            where = f" in {text!r}" if name != text else ""
            raise UsageError(f"unknown texture loss {name!r}{where}; available: {known} "
                             "(combine them as gram+0.5*sw)", parameter="texture_loss")
        if any(name == seen for seen, _ in terms):
            raise UsageError(f"texture loss {text!r} names {name!r} twice",
                             parameter="texture_loss")
        terms.append((name, weight))
    return terms


def _loss_weight(value: str, text: str) -> float:
    """The weight ``value`` of a term of setting ``text``, a non-negative finite number."""
    try:
        weight = float(value)
    except ValueError:
        weight = math.nan
    if not math.isfinite(weight) or weight < 0:
        raise UsageError(f"texture loss {text!r}: weight {value.strip()!r} must be a "
                         "non-negative number", parameter="texture_loss")
    return weight


def _takes_seed(factory: Any) -> bool:
    """Whether ``factory`` accepts a ``seed`` keyword (by name or through ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD
               or (p.name == "seed" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
               for p in params)


def build_texture_loss(text: str, target_features: Mapping[str, torch.Tensor], *,
                       layer_weights: Mapping[str, float] | None = None,
                       normalize: GramNormalization = "chw", seed: int = 0,
                       manager: PluginManager | None = None) -> nn.Module:
    """The texture loss ``text`` (see :func:`parse_texture_loss`) against exemplar maps.

    Each factory is called as ``factory(target_features, layer_weights=...,
    normalize=...)``, with ``seed=seed`` too when it accepts one. One loss of weight 1 is
    the factory's module itself; otherwise a :class:`~texsynth.stats.losses.CombinedLoss`.

    Args:
        text: the setting (``"gram"``, ``"gram+0.5*sw"``).
        target_features: ``{layer: (N_t, C_l, *spatial)}`` pooled exemplar maps.
        layer_weights: ``{layer: w_l}``, for every loss.
        normalize: Gram normalisation, for every loss that uses it.
        seed: seed of random losses.
        manager: plugin manager (default: the process-wide one).
    """
    manager = manager or get_plugin_manager()
    terms = parse_texture_loss(text, manager.losses())
    modules = []
    for name, weight in terms:
        factory = manager.get_loss(name).factory
        extra = {"seed": int(seed)} if _takes_seed(factory) else {}
        modules.append((name, weight, factory(target_features, layer_weights=layer_weights,
                                              normalize=normalize, **extra)))
    if len(modules) == 1 and modules[0][1] == 1.0:
        return modules[0][2]
    return CombinedLoss(modules)


def pool_exemplar_maps(maps: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack exemplar maps along N; maps of different sizes are flattened and joined.

    ``maps``: ``{layer: [(N_e, C_l, *spatial_e), ...]}``; the result is ``{layer: (ΣN_e,
    C_l, *spatial)}`` when the shapes agree, else ``{layer: (N, C_l, Σ positions)}``."""
    pooled = {}
    for name, items in maps.items():
        if all(item.shape == items[0].shape for item in items):
            pooled[name] = torch.cat(items, dim=0)
        else:  # different exemplar sizes: Gram of the concatenated positions
            flat = [item.reshape(item.shape[0], item.shape[1], -1) for item in items]
            pooled[name] = torch.cat(flat, dim=2)
    return pooled
