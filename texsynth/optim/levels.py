"""Coarse-to-fine schedules: the levels of a multiresolution optimisation.

Optimisation at full resolution spends its first hundreds of evaluations on what a
coarse version settles in a fraction of the time: where large structures go. A
coarse-to-fine run (the multiresolution scheme of Gatys et al. 2017, "Controlling
perceptual factors in neural style transfer") optimises a small output against an
exemplar downsampled by the same factor, resamples the result up, and continues at the
next level, up to the output size. Each level halves every extent of the next
(:data:`LEVEL_FACTOR`); the domain resamples (:meth:`texsynth.Domain.resample`, by
default :func:`texsynth.resample.resample_linear`).

This module plans the levels (:func:`plan_levels`; :func:`plan_run` for a run's
arguments and its domain); :mod:`texsynth.optim.runner` runs them.

Single-scale (one level) is the default: on the image quality benchmark coarse-to-fine
did not reach single-scale's 300-step score sooner (``benchmarks/RESULTS.md``,
"Coarse-to-fine optimisation"); it is there for users who want the larger-scale
arrangement the coarse levels settle, with ``levels=N`` or ``levels=0`` (as many as
:func:`auto_levels` allows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..domain import Domain
from ..errors import UsageError

__all__ = [
    "COARSEST_EXTENT",
    "COARSE_STEPS_FACTOR",
    "DEFAULT_STEPS",
    "LEVEL_FACTOR",
    "Level",
    "auto_levels",
    "default_steps",
    "level_extents",
    "plan_levels",
    "plan_run",
]

#: Each level's extents are this factor smaller than the next finer level's.
LEVEL_FACTOR = 2
#: Smallest extent (positions along an axis) of the output or an exemplar at the
#: coarsest automatic level, unless the domain says otherwise (``"coarsest"`` in
#: :meth:`texsynth.Domain.defaults`).
COARSEST_EXTENT = 64
#: Steps of each coarser level, as a multiple of the finest level's steps, unless given
#: per level: see :func:`plan_levels`. A third (100 + 300 for two levels) scored better
#: than equal steps per level (150 + 100, 100 + 100 + 100) on the image quality benchmark
#: (``benchmarks/RESULTS.md``): coarse levels that run long settle large-scale colour
#: variations the finest level cannot undo.
COARSE_STEPS_FACTOR = 1 / 3
#: Loss evaluations at the output size when neither the run nor its domain says
#: (``"steps"`` in :meth:`texsynth.Domain.defaults`).
DEFAULT_STEPS = 300


@dataclass(frozen=True)
class Level:
    """One level of a schedule.

    Attributes:
        index: 0 for the coarsest level.
        scale: ``1 / LEVEL_FACTOR**k`` for the level ``k`` steps above the finest.
        extents: the output's extents at this level (tensor order).
        steps: loss evaluations at this level.
    """

    index: int
    scale: float
    extents: tuple[int, ...]
    steps: int


def level_extents(extents: Sequence[int], scale: float) -> tuple[int, ...]:
    """``extents`` times ``scale``, rounded, at least 1 each."""
    return tuple(max(1, round(int(e) * scale)) for e in extents)


def auto_levels(extents: Sequence[int], exemplar_extents: Sequence[Sequence[int]], *,
                coarsest: int = COARSEST_EXTENT, limit: int = 8) -> int:
    """The most levels (at most ``limit``) whose coarsest level keeps every extent of the
    output and of every exemplar at ``coarsest`` or more; 1 when even the first halving
    would go below it."""
    smallest = min([*extents, *(e for ex in exemplar_extents for e in ex)])
    count = 1
    while count < limit and smallest / LEVEL_FACTOR ** count >= coarsest:
        count += 1
    return count


def plan_levels(extents: Sequence[int], *, levels: int, steps: int,
                level_steps: Sequence[int] | None = None,
                coarse_factor: float = COARSE_STEPS_FACTOR) -> list[Level]:
    """The levels of a run to ``extents``, coarsest first.

    Args:
        extents: the output's extents (tensor order).
        levels: number of levels; 1 is a plain single-scale run.
        steps: loss evaluations at the finest level.
        level_steps: evaluations per level, coarsest first (``levels`` of them);
            overrides ``steps`` and ``coarse_factor``.
        coarse_factor: each coarser level runs ``round(coarse_factor · steps)``
            evaluations (at least 1).

    Raises:
        UsageError: ``levels < 1``, or ``level_steps`` of the wrong length or not positive.
    """
    if levels < 1:
        raise UsageError(f"levels must be at least 1, got {levels}", parameter="levels")
    if level_steps is not None:
        counts = [int(s) for s in level_steps]
        if len(counts) != levels:
            raise UsageError(f"level_steps has {len(counts)} entries for {levels} level(s); "
                             "give one per level, coarsest first", parameter="level_steps")
        if any(s < 1 for s in counts):
            raise UsageError(f"level_steps must all be at least 1, got {counts}",
                             parameter="level_steps")
    else:
        if steps < 1:
            raise UsageError(f"steps must be at least 1, got {steps}", parameter="steps")
        if not math.isfinite(coarse_factor) or coarse_factor <= 0:
            raise UsageError(f"the coarse steps factor must be positive, got {coarse_factor}",
                             parameter="coarse_factor")
        coarse = max(1, round(coarse_factor * steps))
        counts = [coarse] * (levels - 1) + [steps]
    plan = []
    for index, count in enumerate(counts):
        scale = 1.0 / LEVEL_FACTOR ** (levels - 1 - index)
        plan.append(Level(index=index, scale=scale, extents=level_extents(extents, scale),
                          steps=count))
    return plan


def default_steps(steps: int | None, domain: Domain) -> int:
    """``steps``, or the domain's preferred number of steps, or :data:`DEFAULT_STEPS`."""
    return int(steps if steps is not None else domain.defaults().get("steps", DEFAULT_STEPS))


def plan_run(domain: Domain, extents: tuple[int, ...],
             exemplar_extents: Sequence[Sequence[int]], *, levels: int | None,
             steps: int | None, level_steps: Sequence[int] | None) -> list[Level]:
    """The levels of a run to ``extents`` against exemplars of ``exemplar_extents``, as
    :func:`texsynth.synthesize` and :func:`texsynth.stylize` take them.

    Args:
        levels: ``1`` optimises at the output size only; ``N`` starts at
            ``1 / 2**(N-1)`` of every extent (output and exemplars); ``0``: as many as
            keep the coarsest output and exemplars at the domain's ``"coarsest"`` extent
            (:data:`COARSEST_EXTENT`) or more (:func:`auto_levels`); ``None``: as many as
            ``level_steps`` has entries, else 1.
        steps: evaluations at the finest level (:func:`default_steps`).
        level_steps: evaluations per level, coarsest first; default: ``steps`` at the
            finest level and :data:`COARSE_STEPS_FACTOR` ``· steps`` at each coarser one.

    Raises:
        UsageError: the coarsest level would put the output or an exemplar below the
            domain's minimum extent, or the counts are wrong (see :func:`plan_levels`).
    """
    if levels is None:
        levels = len(level_steps) if level_steps is not None else 1
    if levels == 0:
        if level_steps is not None:
            levels = len(level_steps)
        else:
            coarsest = int(domain.defaults().get("coarsest", COARSEST_EXTENT))
            levels = auto_levels(extents, exemplar_extents,
                                 coarsest=max(coarsest, domain.min_extent()))
    plan = plan_levels(extents, levels=int(levels), steps=default_steps(steps, domain),
                       level_steps=level_steps)
    low = domain.min_extent()
    coarse = plan[0]
    smallest = min(min(e) for e in exemplar_extents) * coarse.scale
    if min(coarse.extents) < low or smallest < low:
        raise UsageError(
            f"{len(plan)} levels make the coarsest level {coarse.scale:g} of the full size: "
            f"{domain.describe_size(coarse.extents)} for the output and an exemplar "
            f"extent of {smallest:.0f}, below the domain's minimum of {low}; use fewer "
            "levels", parameter="levels")
    return plan
