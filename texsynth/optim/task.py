"""What one optimisation run is: the problem it solves (:class:`Problem`, which builds
the objective of any level), its task around that problem (:class:`Task`: output,
inputs, finishing step), how it optimises (:class:`RunOptions`) and what it records
(:class:`RunSettings`, from which the JSON saved with every output and step snapshot is
written).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..controls.run import Applied
from ..runtime.context import RunContext
from ..stats.features import Features, describe_source
from ..stats.objective import TextureObjective
from .fitting import MemoryPlan
from .levels import Level, level_extents
from .loop import OptimizerName, StepCallback
from .start import AUTO_INIT, InitSource

__all__ = ["Finish", "Problem", "RunOptions", "RunSettings", "Task"]

#: Turns the optimised signal ``(1, C, *spatial)`` into the output (e.g. colour
#: preservation's putting back the content's chrominance).
Finish = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Problem:
    """What a run matches, at full resolution; :meth:`objective` builds any level's.

    Attributes:
        features: the run's prepared features.
        exemplars: the signals whose statistics are matched, each ``(1, C, *spatial)``
            (after the controls, e.g. rescaled).
        content: stylisation's content ``(1, C, *extents)``; ``None`` for synthesis.
        style_weight: α, the texture loss's weight.
        content_weight: β, the content loss's weight.
        extents: the optimised signal's extents (tensor order).
        applied: the controls in use (blend weights, guidance); ``None``: none.
    """

    features: Features
    exemplars: list[torch.Tensor]
    content: torch.Tensor | None
    style_weight: float
    content_weight: float
    extents: tuple[int, ...]
    applied: Applied | None = None

    def at(self, signal: torch.Tensor, scale: float) -> torch.Tensor:
        """``signal`` resampled by ``scale`` (itself at 1), clamped to the value range."""
        if scale == 1.0:
            return signal
        dom = self.features.domain
        return dom.clamp(dom.resample(signal, level_extents(signal.shape[2:], scale)))

    def objective(self, scale: float, context: RunContext) -> TextureObjective:
        """The objective of the level at ``scale`` against exemplars and content
        resampled by it (losses from ``context``'s plugins)."""
        content = None if self.content is None else self.at(self.content, scale)
        exemplars = [self.at(e, scale) for e in self.exemplars]
        applied = self.applied
        guidance = None if applied is None else applied.guidance
        if guidance is not None and scale != 1.0:
            guidance = guidance.at(level_extents(self.extents, scale),
                                   [tuple(e.shape[2:]) for e in exemplars])
        return self.features.objective(
            exemplars, content=content,
            style_weight=self.style_weight, content_weight=self.content_weight,
            manager=context.manager, guidance=guidance,
            exemplar_weights=None if applied is None else applied.exemplar_weights)


@dataclass(frozen=True)
class Task:
    """One synthesis or stylisation around its :class:`Problem`.

    Attributes:
        command: ``"synthesize"`` or ``"stylize"`` (recorded; names the progress bar).
        what: the run in messages (``"synthesis"``, ``"stylisation"``).
        problem: what the run matches.
        shape: the optimised signal's shape ``(1, C, *problem.extents)``.
        size: the output's extents (differ from ``problem.extents`` when a canvas is
            optimised and resampled down, see :meth:`texsynth.controls.run.Controls.canvas`).
        sources: the inputs as recorded (``{"exemplars": [...]}``, or ``{"content": ...,
            "styles": [...]}``; see :func:`~texsynth.stats.features.describe_source`).
        weights: the loss weights as recorded (stylisation's ``content_weight`` and
            ``style_weight``; empty for synthesis).
        controls: the controls in use as recorded
            (:meth:`texsynth.controls.run.Controls.settings`).
        finish: applied to the result and to every step snapshot; ``None``: nothing.
    """

    command: str
    what: str
    problem: Problem
    shape: tuple[int, ...]
    size: tuple[int, ...]
    sources: Mapping[str, Any]
    weights: Mapping[str, float] = field(default_factory=dict)
    controls: Mapping[str, Any] = field(default_factory=dict)
    finish: Finish | None = None


@dataclass(frozen=True)
class RunOptions:
    """How a run optimises: the keyword arguments :func:`texsynth.synthesize` and
    :func:`texsynth.stylize` share (documented there)."""

    steps: int | None = None
    levels: int | None = None
    level_steps: Sequence[int] | None = None
    optimizer: OptimizerName = "lbfgs"
    lr: float | None = None
    init: InitSource = AUTO_INIT
    callback: StepCallback | None = None
    save_every: int = 0
    output: str | os.PathLike[str] | None = None
    memory_check: bool = True
    block: int | None = None


@dataclass
class RunSettings:
    """The settings of one optimisation run; :meth:`saved` writes them as the JSON stored
    with its output and step snapshots.

    Attributes:
        task: the run's task (command, domain, inputs, sizes, weights, controls).
        plan: the levels, coarsest first.
        options: how it optimises (optimizer, learning rate, ``init``).
        context: its seed and device.
        memory: the finest level's memory plan (block, L-BFGS history).
        representation: the domain representation's name and settings once a level
            optimised one (:meth:`texsynth.Domain.representation`); ``None``: the signal.
        final_loss: the last evaluation's loss once the run is done.
    """

    task: Task
    plan: Sequence[Level]
    options: RunOptions
    context: RunContext
    memory: MemoryPlan
    representation: dict[str, Any] | None = None
    final_loss: float | None = None

    def saved(self) -> dict[str, Any]:
        """The JSON-serialisable record: the task's (``command``, ``domain``, inputs,
        ``size``, features, weights, controls, ``canvas`` when one was optimised), the
        run's (``steps`` of the finest level, ``optimizer``, ``lr``, ``init``, ``seed``,
        ``device``, ``levels``, ``level_steps`` when several), the memory plan's, then
        ``representation`` and ``final_loss`` once known."""
        task, plan, options = self.task, self.plan, self.options
        dom, extents = task.problem.features.domain, task.problem.extents
        out: dict[str, Any] = {
            "command": task.command, "domain": dom.name, **task.sources,
            "size": dom.describe_size(task.size), **task.problem.features.settings(),
            **task.weights, **task.controls,
            **({"canvas": dom.describe_size(extents)} if extents != task.size else {}),
            "steps": plan[-1].steps, "optimizer": options.optimizer, "lr": options.lr,
            "init": describe_source(options.init), "seed": self.context.seed,
            "device": str(self.context.device), "levels": len(plan)}
        if len(plan) > 1:
            out["level_steps"] = [level.steps for level in plan]
        out.update(self.memory.settings())
        if self.representation is not None:
            out["representation"] = self.representation
        if self.final_loss is not None:
            out["final_loss"] = self.final_loss
        return out

    def finished(self, losses: Sequence[float]) -> dict[str, Any]:
        """Record the run's last loss (NaN when none) and return :meth:`saved`."""
        self.final_loss = losses[-1] if losses else math.nan
        return self.saved()
