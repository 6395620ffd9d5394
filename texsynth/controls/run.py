"""The controls of a run beyond its statistics: blends, guides, exemplar scale, colour.

* **Blends**: one weight per exemplar (``a.png:0.7 b.png:0.3`` on the command line) mixes
  their statistics (:class:`~texsynth.stats.objective.TextureObjective`'s
  ``exemplar_weights``).
* **Guides**: regions of the output that take the texture of regions of the exemplars
  (:mod:`texsynth.controls.guidance`).
* **Exemplar scale**: the exemplars are rescaled by the domain
  (:meth:`~texsynth.Domain.rescale`) before their statistics are taken, so the output's
  elements come out larger (``> 1``) or smaller.
* **Colour preservation** of stylisation, declared by the domain
  (:meth:`~texsynth.Domain.color_modes`, :meth:`~texsynth.Domain.preserve_color`).

:class:`Controls` holds them; :meth:`Controls.apply` turns them into what a run's
objective takes. Domain-free: the domain decides what scale and colour mean.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..domain import Domain
from ..errors import UsageError
from .regions import Guidance, GuideSource, build_guidance

__all__ = ["Applied", "Controls", "split_weight"]


@dataclass(frozen=True)
class Applied:
    """What :meth:`Controls.apply` makes: the exemplars to take statistics of (rescaled),
    their blend weights and the run's guidance (each ``None`` when unused)."""

    exemplars: list[torch.Tensor]
    exemplar_weights: tuple[float, ...] | None
    guidance: Guidance | None


@dataclass(frozen=True)
class Controls:
    """The controls of one optimisation run.

    Attributes:
        exemplar_weights: blend weights, one per exemplar (normalised to sum 1);
            ``None``: the exemplars are pooled as photos of one texture.
        guide: the output's guide (:mod:`texsynth.controls.guidance`); ``None``: no regions.
        exemplar_guides: one guide per exemplar, naming the same regions by the same
            values; ``None``: exemplar ``i`` is region ``i`` as a whole.
        exemplar_scale: factor on the size of the exemplars' elements (``1``: as they are).
        preserve_color: a colour-preservation mode of the domain (stylisation only).
    """

    exemplar_weights: Sequence[float] | None = None
    guide: GuideSource | None = None
    exemplar_guides: Sequence[GuideSource] | None = None
    exemplar_scale: float = 1.0
    preserve_color: str | None = None

    def __post_init__(self) -> None:
        scale = float(self.exemplar_scale)
        if not math.isfinite(scale) or scale <= 0:
            raise UsageError(f"the exemplar scale must be a positive number, got "
                             f"{self.exemplar_scale}", parameter="exemplar_scale")
        object.__setattr__(self, "exemplar_scale", scale)
        if self.exemplar_weights is not None:
            object.__setattr__(self, "exemplar_weights",
                               tuple(float(w) for w in self.exemplar_weights))
        if self.exemplar_guides is not None:
            object.__setattr__(self, "exemplar_guides", tuple(self.exemplar_guides))
        if self.exemplar_guides and self.guide is None:
            raise UsageError("exemplar guides need the output's guide too",
                             parameter="guide")

    def canvas(self, domain: Domain, extents: tuple[int, ...]) -> tuple[int, ...]:
        """The extents a synthesis of ``extents`` runs at: ``extents / S`` for an exemplar
        scale ``S < 1`` where the domain scales by canvas
        (:attr:`~texsynth.Domain.scale_by_canvas`), else ``extents``."""
        if self.exemplar_scale >= 1.0 or not domain.scale_by_canvas:
            return tuple(extents)
        return tuple(max(1, round(e / self.exemplar_scale)) for e in extents)

    def apply(self, domain: Domain, exemplars: Sequence[torch.Tensor],
              extents: tuple[int, ...], *, canvas: bool = False) -> Applied:
        """Rescale ``exemplars`` (each ``(1, C, *spatial)``) and read the guides for an
        output of ``extents``; ``canvas``: the scale is the canvas's (:meth:`canvas`), so
        the exemplars are kept as they are.

        Raises:
            UsageError: a rescaled exemplar is below the domain's minimum extent, or the
                guides do not fit the exemplars (see
                :func:`~texsynth.controls.regions.build_guidance`).
        """
        signals = list(exemplars)
        if self.exemplar_scale != 1.0 and not canvas:
            signals = [domain.rescale(s, self.exemplar_scale) for s in signals]
            low = domain.min_extent()
            small = [s for s in signals if min(s.shape[2:]) < low]
            if small:
                raise UsageError(
                    f"exemplar scale {self.exemplar_scale:g} makes an exemplar "
                    f"{domain.describe_size(tuple(small[0].shape[2:]))}, below the "
                    f"domain's minimum of {low}", parameter="exemplar_scale")
        guidance = None
        if self.guide is not None:
            guidance = build_guidance(domain, self.guide, extents=extents,
                                      exemplar_extents=[tuple(s.shape[2:]) for s in signals],
                                      exemplar_guides=self.exemplar_guides)
        weights = None if self.exemplar_weights is None else tuple(self.exemplar_weights)
        return Applied(signals, weights, guidance)

    def settings(self, applied: Applied | None = None) -> dict[str, Any]:
        """What results record (only the controls in use)."""
        out: dict[str, Any] = {}
        if self.exemplar_weights is not None:
            total = sum(self.exemplar_weights) or 1.0
            out["exemplar_weights"] = [w / total for w in self.exemplar_weights]
        if self.guide is not None:
            out["guide"] = _describe(self.guide)
            if applied is not None and applied.guidance is not None:
                out["regions"] = list(applied.guidance.names)
        if self.exemplar_guides:
            out["exemplar_guides"] = [_describe(g) for g in self.exemplar_guides]
        if self.exemplar_scale != 1.0:
            out["exemplar_scale"] = self.exemplar_scale
        if self.preserve_color is not None:
            out["preserve_color"] = self.preserve_color
        return out


def _describe(source: GuideSource) -> str:
    return "<tensor>" if isinstance(source, torch.Tensor) else os.fspath(source)


def split_weight(text: str) -> tuple[str, float | None]:
    """``"a.png:0.7"`` -> ``("a.png", 0.7)``; ``"a.png"`` -> ``("a.png", None)``.

    The part after the last ``:`` is a weight only when it reads as a number and the
    whole text is not an existing file, so names with colons still work.

    Raises:
        UsageError: the weight is negative or not finite.
    """
    path, sep, tail = text.rpartition(":")
    if not sep or not path or os.path.exists(text):
        return text, None
    try:
        weight = float(tail)
    except ValueError:
        return text, None
    if not math.isfinite(weight) or weight < 0:
        raise UsageError(f"{text}: the blend weight {tail!r} must be a non-negative number",
                         parameter="exemplar_weights")
    return path, weight
