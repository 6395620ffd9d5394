"""The loss a training step minimises: the run's
:class:`~texsynth.stats.objective.TextureObjective`, built from its plan
(:func:`training_objective`), and the loss of one generated batch (:func:`batch_loss`).
"""

from __future__ import annotations

import dataclasses

import torch

from ..controls.regions import Guidance, RegionWeighting
from ..runtime.context import RunContext
from ..stats.objective import TextureObjective
from .train_plan import RunPlan

__all__ = ["batch_loss", "training_objective"]


def training_objective(plan: RunPlan, context: RunContext) -> TextureObjective:
    """``α · L_texture + β · L_content`` against the plan's exemplars, with its loss
    settings (a resumed run's as stored). A doodle or blend run's loss is guided by the
    regions: every region's statistics are matched to its exemplar's (regions weigh
    equally, or by area for blends)."""
    loss = plan.loss
    spec = dataclasses.replace(plan.features.spec, layer_weights=loss.layer_weights,
                               texture_loss=loss.texture_loss, normalize=loss.normalize,
                               batch_gram=bool(loss.batch_gram),
                               value_weight=float(loss.value_weight or 0.0))
    features = dataclasses.replace(plan.features, spec=spec)
    guidance = None
    if plan.regions is not None:
        weighting: RegionWeighting = "area" if plan.conditioning == "blends" else "equal"
        guidance = Guidance(None, plan.regions.exemplars, plan.regions.names, weighting)
    return features.objective(plan.exemplars, style_weight=loss.style_weight,
                              content_weight=loss.content_weight, manager=context.manager,
                              guidance=guidance)


def batch_loss(objective: TextureObjective, signal: torch.Tensor,
               inputs: torch.Tensor | None) -> torch.Tensor:
    """The loss of a generated batch ``signal`` ``(N, C, *spatial)`` given the generator's
    second input ``inputs``: the content it repainted, or (a guided objective) the doodle
    whose region masks ``(N, K, *spatial)`` it followed."""
    if objective.guided:
        return objective(signal, masks=inputs)
    return objective(signal, inputs)
