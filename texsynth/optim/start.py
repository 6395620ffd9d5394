"""Where an optimisation starts: the initial signal of a run (:func:`start_signal`) from
its ``init`` (seeded noise, spot noise with the exemplar's spectrum, the content, a signal
or a file), or noise made region by region for a guided run (:func:`region_noise`), at
the first level's extents.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..controls.regions import Guidance, pool_masks
from ..domain import Domain
from ..errors import UsageError
from ..runtime.context import RunContext
from ..stats.features import as_signal
from .levels import Level
from .spot import spot_noise

__all__ = ["AUTO_INIT", "NOISE_STARTS", "InitSource", "region_noise", "resolve_init",
           "start_signal"]

#: What a run starts from: ``"auto"`` (the domain's choice, see :func:`resolve_init`),
#: ``"noise"``, ``"spot"`` (noise with the exemplar's power spectrum,
#: :func:`~texsynth.optim.spot.spot_noise`), ``"content"`` (stylisation), a signal
#: ``(1, C, *spatial)`` or a file the domain reads.
InitSource = str | torch.Tensor | os.PathLike[str]
#: The domain's start: ``"init"`` in :meth:`texsynth.Domain.defaults`, else ``"noise"``.
AUTO_INIT = "auto"
#: Starts made from the exemplar at the run's size (not a signal of the output's size).
NOISE_STARTS = ("noise", "spot")


def resolve_init(init: InitSource, domain: Domain) -> InitSource:
    """``init``, with ``"auto"`` replaced by the domain's start (``"init"`` in
    :meth:`texsynth.Domain.defaults`, else ``"noise"``)."""
    if isinstance(init, str) and init == AUTO_INIT:
        return str(domain.defaults().get("init", "noise"))
    return init


def start_signal(init: InitSource, domain: Domain, shape: tuple[int, ...], *,
                 level: Level, exemplars: Sequence[torch.Tensor],
                 content: torch.Tensor | None, guidance: Guidance | None,
                 context: RunContext) -> torch.Tensor:
    """The start of a run of ``shape`` ``(1, C, *spatial)`` at the first ``level``'s
    extents: noise or spot noise made at that size (seeded with the run's seed; for a
    guided run, noise region by region, see :func:`region_noise`), or the signal
    ``init`` names resampled to it.

    Raises:
        UsageError: ``init`` is ``"content"`` without a content, or a signal or file of
            another size or number of channels than ``shape``.
    """
    if isinstance(init, str) and init in NOISE_STARTS and guidance is not None:
        return region_noise(domain, guidance, exemplars, (*shape[:2], *level.extents),
                            seed=context.seed)
    start = _full_init(init, domain, shape, content=content, exemplar=exemplars[0],
                       seed=context.seed, extents=level.extents)
    if tuple(start.shape[2:]) != level.extents:
        start = domain.clamp(domain.resample(start, level.extents))
    return start


def region_noise(domain: Domain, guidance: Guidance, exemplars: Sequence[torch.Tensor],
                 shape: tuple[int, ...], *, seed: int) -> torch.Tensor:
    """Start noise of ``shape`` for a guided run: in every region, the domain's noise like
    that region's positions in the exemplars (:meth:`Domain.noise` ``like``; a picture's
    mean colour), blended by the region masks at ``shape``'s extents."""
    assert guidance.output is not None
    masks = pool_masks(guidance.output, tuple(shape[2:]))
    masks = masks if masks.dim() == len(shape) else masks[None]
    start = torch.zeros(shape)
    for k in range(guidance.regions):
        pixels = [e[0][:, m[k] > 0.5] for e, m in zip(exemplars, guidance.exemplars,
                                                        strict=True) if bool((m[k] > 0.5).any())]
        like = torch.cat(pixels, dim=1)[None] if pixels else exemplars[0]
        gen = torch.Generator().manual_seed(seed)
        start = start + masks[:, k:k + 1] * domain.noise(shape, generator=gen, like=like)
    return domain.clamp(start)


def _full_init(init: InitSource, domain: Domain, shape: tuple[int, ...], *,
               content: torch.Tensor | None, exemplar: torch.Tensor, seed: int,
               extents: tuple[int, ...]) -> torch.Tensor:
    """``init`` as a signal: noise like ``exemplar`` or its spot noise made directly at
    ``extents``, or the content, signal or file given, checked against the full
    ``shape``."""
    if isinstance(init, torch.Tensor):
        start = as_signal(init, domain)
    elif isinstance(init, str) and init == "noise":
        gen = torch.Generator().manual_seed(seed)
        return domain.noise((*shape[:2], *extents), generator=gen, like=exemplar)
    elif isinstance(init, str) and init == "spot":
        gen = torch.Generator().manual_seed(seed)
        return domain.clamp(spot_noise(exemplar, extents, generator=gen))
    elif isinstance(init, str) and init == "content":
        if content is None:
            raise UsageError("init content needs a content input (stylize)", parameter="init")
        start = content
    else:
        start = domain.load(Path(init))
    if tuple(start.shape[2:]) != shape[2:]:
        raise UsageError(
            f"init signal size {domain.describe_size(tuple(start.shape[2:]))} differs from "
            f"the output size {domain.describe_size(shape[2:])}", parameter="init"
        )
    if start.shape[1] != shape[1]:
        raise UsageError(f"init signal has {start.shape[1]} channels, expected {shape[1]}",
                         parameter="init")
    return start.clone()
