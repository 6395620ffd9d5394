"""Running one optimisation task: seed the run and prepare its features
(:func:`run_task`), plan its levels and memory, then optimise level by level, coarsest
first (:func:`run_levels`), each level on the signal or on the domain's representation
(:func:`optimize_level`), saving step snapshots on the way (:func:`step_snapshots`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..atomic import check_writable
from ..domain import Domain
from ..errors import UsageError
from ..memory import check_signal_fits
from ..plugins import PluginManager
from ..runtime.context import RunContext
from ..stats.features import Features, FeatureSpec, SignalSource, prepare, resolve_domain
from ..stats.objective import TextureObjective
from .fitting import MemoryPlan, plan_memory
from .levels import Level, plan_run
from .loop import OptimizationResult, StepCallback, run_optimization
from .start import resolve_init, start_signal
from .task import Finish, RunOptions, RunSettings, Task

__all__ = ["LevelCallbacks", "optimize_level", "run_levels", "run_task", "step_snapshots"]

#: ``hooks(offset, decode)``: the step callback of one level, whose steps are numbered
#: from ``offset`` and whose variable ``decode`` turns into a signal (``None``: it is one).
LevelCallbacks = Callable[[int, Callable[[torch.Tensor], torch.Tensor] | None],
                          StepCallback | None]


def run_task(build: Callable[[Features], Task], spec: FeatureSpec,
             domain: Domain | str | None, hint: SignalSource, options: RunOptions, *,
             stylising: bool, seed: int | None, device: str | torch.device | None,
             manager: PluginManager | None, progress: bool) -> OptimizationResult:
    """Run one synthesis or stylisation: resolve the domain (``domain``, or the one of
    ``hint``'s file), start the run's :class:`~texsynth.runtime.context.RunContext`
    (seeding every random stream), prepare the features of ``spec`` and ``build`` the
    task from them, check and plan it, optimise its levels and finish the result.

    Returns:
        the result at the task's output size, with the run's saved settings.
    """
    dom = resolve_domain(domain, hint, manager=manager)
    options = dataclasses.replace(options, init=resolve_init(options.init, dom))
    context = RunContext.start(seed=seed, device=device, manager=manager, progress=progress)
    features = prepare(spec, dom, seed=context.seed, stylising=stylising,
                       device=context.device, manager=context.manager)
    task = build(features)
    problem, extents = task.problem, task.problem.extents
    what = f"{task.what} at {dom.describe_size(extents)}"
    if options.memory_check:
        check_signal_fits(task.shape, features.device, what=what)
    plan = plan_run(dom, extents, [tuple(e.shape[2:]) for e in problem.exemplars],
                    levels=options.levels, steps=options.steps,
                    level_steps=options.level_steps)
    objective = problem.objective(1.0, context)
    memory = plan_memory(objective, dom, task.shape, features.device, block=options.block,
                         check=options.memory_check, what=what)
    settings = RunSettings(task, plan, options, context, memory)
    result = run_levels(task, plan, objective, memory, settings, options, context)
    if task.finish is not None:
        result.signal = task.finish(result.signal)
    if extents != task.size:
        result.signal = dom.clamp(dom.resample(result.signal, task.size))
    return result


def run_levels(task: Task, plan: Sequence[Level], finest: TextureObjective,
               memory: MemoryPlan, settings: RunSettings, options: RunOptions,
               context: RunContext) -> OptimizationResult:
    """Optimise level by level, coarsest first, each level starting from the previous
    level's result resampled up; ``finest`` is the objective of the last level, planned
    as ``memory`` (coarser levels are planned here, with ``options.block`` and
    ``options.memory_check``). Returns the optimised signal ``(1, C, *extents)`` on the
    CPU (before the task's finish) with ``settings`` saved."""
    problem = task.problem
    feats, dom = problem.features, problem.features.domain
    shape = (1, problem.exemplars[0].shape[1], *plan[-1].extents)
    total = sum(level.steps for level in plan)
    saver = step_snapshots(dom, options.save_every, total, options.output, settings,
                           options.callback, task.finish)
    start = start_signal(options.init, dom, shape, level=plan[0], exemplars=problem.exemplars,
                         content=problem.content,
                         guidance=None if problem.applied is None else problem.applied.guidance,
                         context=context)
    losses: list[float] = []
    signal: torch.Tensor | None = None
    for level in plan:
        if signal is not None:
            start = dom.clamp(dom.resample(signal, level.extents))
        if level.scale == 1.0:
            objective, level_memory = finest, memory
        else:
            objective = problem.objective(level.scale, context)
            level_memory = plan_memory(objective, dom, (*shape[:2], *level.extents),
                                       feats.device, block=options.block,
                                       check=options.memory_check,
                                       what=f"level {level.index + 1} at "
                                            f"{dom.describe_size(level.extents)}")
        signal, level_losses = optimize_level(
            dom, objective, start.to(feats.device), level, len(plan), settings, options,
            context, callbacks=saver, offset=len(losses), history=level_memory.history)
        losses.extend(level_losses)
        del objective
    assert signal is not None
    return OptimizationResult(signal=signal, losses=losses,
                              settings=settings.finished(losses))


def optimize_level(domain: Domain, objective: TextureObjective, start: torch.Tensor,
                   level: Level, levels: int, settings: RunSettings, options: RunOptions,
                   context: RunContext, *, callbacks: LevelCallbacks, offset: int,
                   history: int = 50) -> tuple[torch.Tensor, list[float]]:
    """Run ``level`` (one of ``levels``) from the signal ``start`` ``(1, C, *extents)``,
    on the signal or on the domain's :class:`~texsynth.domain.Representation` (recorded
    in ``settings``); ``offset`` steps ran before it. Returns the level's signal on the
    CPU and its losses."""
    extents = level.extents
    description = settings.task.command
    if levels > 1:
        description += f" {level.index + 1}/{levels} ({domain.describe_size(extents)})"
    rep = domain.representation()
    if rep is None:
        result, losses = run_optimization(
            start, objective, steps=level.steps, optimizer=options.optimizer, lr=options.lr,
            project=domain.clamp, progress=context.progress, description=description,
            callback=callbacks(offset, None), history=history)
        return result.detach().cpu(), losses
    settings.representation = {"name": rep.name, **rep.settings()}

    def decode(variable: torch.Tensor) -> torch.Tensor:
        return domain.clamp(rep.decode(variable, extents))

    def loss(variable: torch.Tensor) -> torch.Tensor:
        return objective.input_terms(rep.to_features_input(variable))["total"]

    found, losses = run_optimization(
        rep.encode(start).to(start.device), loss, steps=level.steps,
        optimizer=options.optimizer, lr=options.lr, project=rep.project,
        progress=context.progress, description=f"{description} ({rep.name})",
        callback=callbacks(offset, decode), history=history)
    return decode(found).detach().cpu(), losses


def step_snapshots(domain: Domain, every: int, steps: int,
                   out: str | os.PathLike[str] | None, settings: RunSettings,
                   user: StepCallback | None, finish: Finish | None = None
                   ) -> LevelCallbacks:
    """Per-level callbacks that save ``<stem>_stepNNNNN<suffix>`` every ``every`` steps
    (counted over all levels, ``steps`` in all; through ``finish``, what turns the
    optimised signal into the output, e.g. colour preservation), with ``settings`` and
    the step's number and loss, and then call ``user``.

    Raises:
        UsageError: ``every`` is negative.
        InputError: a step file would replace a file (checked before any work).
    """
    if every < 0:
        raise UsageError(f"save_every must be positive, got {every}", parameter="save_every")
    paths: dict[int, Path] = {}
    if every and out is not None:
        target = Path(out)
        paths = {step: target.with_name(f"{target.stem}_step{step:05d}{target.suffix}")
                 for step in range(every, steps + 1, every)}
    for path in paths.values():  # before any work: no step file may replace a file
        check_writable(path)

    def for_level(offset: int, decode: Callable[[torch.Tensor], torch.Tensor] | None
                  ) -> StepCallback | None:
        if not paths and (user is None or offset == 0):
            return user

        def save(step: int, loss: float, signal: torch.Tensor) -> None:
            if step + offset in paths:
                current = decode(signal) if decode is not None else signal
                if finish is not None:
                    current = finish(current)
                domain.save(domain.clamp(current.cpu()), paths[step + offset],
                            metadata={**settings.saved(), "step": step + offset,
                                      "loss": loss})
            if user is not None:
                user(step + offset, loss, signal)
        return save
    return for_level
