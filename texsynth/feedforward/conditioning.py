"""The second input of conditioned generators, checked against what their checkpoint
stores (untrusted input): a blend generator's weights, one per exemplar
(:func:`blend_weights`), and a doodle-conditioned generator's region masks made from a
guide (:func:`doodle_input`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..controls.regions import GuideSource, doodle_masks, load_guide_map
from ..errors import InputError, UsageError
from .loading import TrainedGenerator

__all__ = [
    "blend_weights",
    "doodle_input",
]


def blend_weights(trained: TrainedGenerator, blend: Sequence[float] | None
                  ) -> list[float] | None:
    """A blend generator's weights, normalised (``None`` gives equal weights); ``None``
    for other generators.

    Raises:
        UsageError: weights for a generator that takes none, a wrong count, or weights
            that are negative or all zero.
    """
    info = trained.blends
    if info is None:
        if blend is not None:
            raise UsageError(f"{trained.path}: is not a blend generator (train one with "
                             "--blends)", parameter="blend")
        return None
    count = info.get("regions")
    if not isinstance(count, int) or count != trained.generator.config.content_channels:
        raise InputError(trained.path, "corrupt or tampered checkpoint: training.blends "
                                       "does not match the generator's inputs")
    values = [1.0] * count if blend is None else [float(w) for w in blend]
    if len(values) != count:
        raise UsageError(f"{len(values)} blend weights for a generator of {count} "
                         "exemplars", parameter="blend")
    if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise UsageError("blend weights must be non-negative numbers, not all zero",
                         parameter="blend")
    total = sum(values)
    return [w / total for w in values]


def doodle_input(trained: TrainedGenerator, guide: GuideSource,
                 size: tuple[int, ...] | None = None) -> torch.Tensor:
    """The region masks ``(1, K, *spatial)`` a doodle-conditioned generator takes for a
    guide (see :func:`~texsynth.feedforward.sampling.apply`), with its training's regions.

    Raises:
        UsageError: the guide's regions are not the generator's.
    """
    info = trained.doodles
    if info is None:
        raise UsageError(f"{trained.path}: is not a doodle-conditioned generator")
    regions, palette = _stored_regions(trained, info)
    guide_map = load_guide_map(trained.domain, guide, size)
    return doodle_masks(guide_map, regions, palette)[None]


def _stored_regions(trained: TrainedGenerator, info: Mapping[str, Any]
                    ) -> tuple[int, torch.Tensor | None]:
    """The number of regions and the palette ``(K, V)`` stored in a checkpoint, checked
    (a checkpoint is untrusted input) against the generator's inputs."""
    bad = InputError(trained.path, "corrupt or tampered checkpoint: training.doodles does "
                                   "not match the generator's inputs")
    regions = info.get("regions")
    if not isinstance(regions, int) or regions != trained.generator.config.content_channels:
        raise bad
    palette = info.get("palette")
    if palette is None:
        return regions, None
    try:
        values = torch.tensor(palette, dtype=torch.float32)
    except (TypeError, ValueError):
        raise bad from None
    if values.dim() != 2 or values.shape[0] != regions or not torch.isfinite(values).all():
        raise bad
    return regions, values
