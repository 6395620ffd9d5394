"""Texture synthesis and stylisation by optimisation (Gatys et al. 2015, 2016).

The signal itself is the variable: it starts from noise (or the content, or a file) and
is updated by L-BFGS (default) or Adam to minimise

``L = α · L_texture(x) + β · L_content(x)``

(:class:`~texsynth.stats.objective.TextureObjective`, built from a
:class:`~texsynth.stats.features.FeatureSpec` by :func:`~texsynth.stats.features.prepare`) with the texture
loss against the exemplar's Gram matrices (computed once) and, for stylisation, the
content loss against the content's feature maps. After every step the signal is
projected back onto the domain's value range, so every intermediate result is a valid
signal.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm.auto import tqdm
from typing_extensions import Unpack

from ..atomic import check_writable
from ..controls.regions import Guidance, GuideSource, pool_masks
from ..controls.run import Applied, Controls
from ..domain import Domain
from ..errors import UsageError
from ..memory import check_signal_fits
from ..plugins import PluginManager
from ..runtime.rng import seed_everything
from ..stats.features import (
    FeatureOptions,
    Features,
    FeatureSpec,
    SignalSource,
    as_signal,
    describe_source,
    prepare,
    resolve_domain,
    signal_sources,
)
from ..stats.objective import TextureObjective
from .fitting import MemoryPlan, plan_memory
from .levels import COARSEST_EXTENT, Level, auto_levels, level_extents, plan_levels

__all__ = [
    "OptimizationResult",
    "OptimizerName",
    "StepCallback",
    "run_optimization",
    "stylize",
    "synthesize",
]

OptimizerName = Literal["lbfgs", "adam"]
#: ``callback(step, loss, signal)`` called after every loss evaluation; ``signal`` is the
#: current (projected) signal ``(1, C, *spatial)``, detached.
StepCallback = Callable[[int, float, torch.Tensor], None]


@dataclass
class OptimizationResult:
    """What an optimisation run returns.

    Attributes:
        signal: the result ``(1, C, *spatial)`` on the CPU, within the domain's range.
        losses: total loss after each evaluation (``len == steps``).
        settings: resolved settings and seed, JSON-serialisable; saved with outputs.
    """

    signal: torch.Tensor
    losses: list[float]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        """The seed the run used."""
        return int(self.settings["seed"])


class _BudgetSpent(Exception):
    """Raised by the loss closure once ``steps`` evaluations are done."""


def run_optimization(
    signal: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int,
    optimizer: OptimizerName = "lbfgs",
    lr: float | None = None,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    callback: StepCallback | None = None,
    description: str = "optimising",
    history: int = 50,
) -> tuple[torch.Tensor, list[float]]:
    """Minimise ``loss_fn(signal)`` over the signal; return the result and loss history.

    ``steps`` counts loss evaluations (one forward and backward pass each), for both
    optimisers, so runs of the same ``steps`` cost the same: the history has ``steps``
    entries and ``callback`` is called ``steps`` times (an L-BFGS line search still
    under way when the budget is spent is cut short).
    The signal with the lowest loss seen is returned (the last iterate can be worse after
    a bad line-search step).
    L-BFGS uses a strong-Wolfe line search: without one, PyTorch's L-BFGS takes tiny
    first steps and skips history updates when the loss is small, and stalls.
    ``project`` maps the variable back onto valid signals after each update; ``history``
    is L-BFGS's number of update pairs (see :func:`texsynth.optim.fitting.lbfgs_history`).
    """
    if steps < 1:
        raise UsageError(f"steps must be at least 1, got {steps}", parameter="steps")
    x = signal.detach().clone().requires_grad_(True)
    losses: list[float] = []
    best: list[Any] = [math.inf, None]
    bar = tqdm(total=steps, desc=description, disable=not progress, unit="step",
               dynamic_ncols=True, leave=False)

    def evaluate() -> torch.Tensor:
        if len(losses) >= steps:  # the budget is spent, also inside a line search
            raise _BudgetSpent
        if project is not None:
            with torch.no_grad():
                x.copy_(project(x))
        loss = loss_fn(x)
        if not torch.isfinite(loss):
            raise UsageError(f"the loss became {loss.item()} at step {len(losses) + 1}; "
                             "lower the learning rate or the loss weights")
        if x.grad is not None:
            x.grad = None
        loss.backward()
        value = float(loss.detach())
        losses.append(value)
        if value < best[0]:  # keep the best iterate: L-BFGS may end on a worse one
            best[0] = value
            best[1] = x.detach().clone()
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4g}")
        if callback is not None:
            callback(len(losses), value, x.detach())
        return loss

    try:
        if optimizer == "lbfgs":
            opt: torch.optim.Optimizer = torch.optim.LBFGS(
                [x], lr=1.0 if lr is None else lr, max_iter=steps, max_eval=steps,
                history_size=history, tolerance_grad=1e-30, tolerance_change=1e-30,
                line_search_fn="strong_wolfe",
            )
            # L-BFGS may stop early on a flat loss; keep going until the budget is spent.
            while len(losses) < steps:
                before = len(losses)
                for group in opt.param_groups:
                    group["max_iter"] = group["max_eval"] = steps - len(losses)
                try:
                    opt.step(evaluate)  # type: ignore[arg-type]
                except _BudgetSpent:
                    break
                if len(losses) == before:
                    break
        elif optimizer == "adam":
            opt = torch.optim.Adam([x], lr=0.02 if lr is None else lr)
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                evaluate()
                opt.step()
        else:
            raise UsageError(f"unknown optimizer {optimizer!r}; use lbfgs or adam",
                             parameter="optimizer")
    finally:
        bar.close()
    final = best[1] if best[1] is not None else x.detach()
    with torch.no_grad():
        result = project(final) if project is not None else final
    return result.detach(), losses



def _init_signal(init: str | torch.Tensor | os.PathLike[str], domain: Domain,
                 shape: tuple[int, ...], *, content: torch.Tensor | None,
                 exemplar: torch.Tensor, seed: int, level: Level) -> torch.Tensor:
    """The start of a run of ``shape`` ``(1, C, *spatial)``, at the first ``level``'s
    extents: noise made at that size, or the signal given resampled to it."""
    start = _full_init(init, domain, shape, content=content, exemplar=exemplar, seed=seed,
                       extents=level.extents)
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


def _full_init(init: str | torch.Tensor | os.PathLike[str], domain: Domain,
               shape: tuple[int, ...], *, content: torch.Tensor | None,
               exemplar: torch.Tensor, seed: int, extents: tuple[int, ...]) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        start = as_signal(init, domain)
    elif isinstance(init, str) and init == "noise":
        gen = torch.Generator().manual_seed(seed)
        return domain.noise((*shape[:2], *extents), generator=gen, like=exemplar)
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


#: ``hooks(offset, decode)``: the step callback of one level, whose steps are numbered
#: from ``offset`` and whose variable ``decode`` turns into a signal (``None``: it is one).
LevelCallbacks = Callable[[int, Callable[[torch.Tensor], torch.Tensor] | None],
                          StepCallback | None]


def _checkpoint_saver(domain: Domain, every: int, steps: int,
                      out: str | os.PathLike[str] | None,
                      settings: dict[str, Any], user: StepCallback | None,
                      finish: Callable[[torch.Tensor], torch.Tensor] | None = None
                      ) -> LevelCallbacks:
    """Per-level callbacks that save ``<stem>_stepNNNNN<suffix>`` every ``every`` steps
    (counted over all levels, ``steps`` in all; through ``finish``, what turns the
    optimised signal into the output, e.g. colour preservation) and then call ``user``."""
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
                            metadata={**settings, "step": step + offset, "loss": loss})
            if user is not None:
                user(step + offset, loss, signal)
        return save
    return for_level


def _optimize(domain: Domain, objective: TextureObjective, start: torch.Tensor,
              extents: tuple[int, ...], settings: dict[str, Any], *, steps: int,
              optimizer: OptimizerName, lr: float | None, progress: bool,
              callbacks: LevelCallbacks, offset: int, level: Level, levels: int,
              history: int = 50) -> OptimizationResult:
    """Run one level of ``synthesize``/``stylize`` from the signal ``start``, on the
    signal or on the domain's :class:`~texsynth.domain.Representation`."""
    description = str(settings["command"])
    if levels > 1:
        description += f" {level.index + 1}/{levels} ({domain.describe_size(extents)})"
    rep = domain.representation()
    if rep is None:
        result, losses = run_optimization(
            start, objective, steps=steps, optimizer=optimizer, lr=lr, project=domain.clamp,
            progress=progress, description=description, callback=callbacks(offset, None),
            history=history)
    else:
        settings["representation"] = {"name": rep.name, **rep.settings()}

        def decode(variable: torch.Tensor) -> torch.Tensor:
            return domain.clamp(rep.decode(variable, extents))

        def loss(variable: torch.Tensor) -> torch.Tensor:
            return objective.input_terms(rep.to_features_input(variable))["total"]

        found, losses = run_optimization(
            rep.encode(start).to(start.device), loss, steps=steps, optimizer=optimizer,
            lr=lr, project=rep.project, progress=progress,
            description=f"{description} ({rep.name})",
            callback=callbacks(offset, decode), history=history)
        result = decode(found)
    return OptimizationResult(signal=result.detach().cpu(), losses=losses, settings=settings)


def _resolve_features(features: FeatureSpec | None, options: FeatureOptions) -> FeatureSpec:
    """``features`` (default: an empty spec) with the keyword ``options`` applied."""
    return (features or FeatureSpec()).replace(**options)


def _setup(spec: FeatureSpec, domain: Domain | str | None, hint: SignalSource, *,
           seed: int | None, device: str | torch.device | None, stylising: bool,
           manager: PluginManager | None) -> tuple[Features, int]:
    """Seed the run, then prepare its features: ``(features, seed used)``."""
    dom = resolve_domain(domain, hint, manager=manager)
    used_seed = seed_everything(seed)  # the run's global RNGs (e.g. Griffin-Lim's init)
    return prepare(spec, dom, seed=used_seed, stylising=stylising, device=device,
                   manager=manager), used_seed


def _steps(steps: int | None, domain: Domain) -> int:
    """``steps``, or the domain's preferred number of steps, or 300."""
    return int(steps if steps is not None else domain.defaults().get("steps", 300))


def _run_settings(plan: Sequence[Level], optimizer: str, lr: float | None,
                  init: str | torch.Tensor | os.PathLike[str], seed: int,
                  device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {"steps": plan[-1].steps, "optimizer": optimizer, "lr": lr,
                           "init": describe_source(init), "seed": seed,
                           "device": str(device), "levels": len(plan)}
    if len(plan) > 1:
        out["level_steps"] = [level.steps for level in plan]
    return out


def _plan(domain: Domain, extents: tuple[int, ...], exemplars: Sequence[torch.Tensor], *,
          levels: int | None, steps: int | None,
          level_steps: Sequence[int] | None) -> list[Level]:
    """The coarse-to-fine levels of a run (one level for a single-scale run)."""
    if levels is None:
        levels = len(level_steps) if level_steps is not None else 1
    if levels == 0:
        if level_steps is not None:
            levels = len(level_steps)
        else:
            coarsest = int(domain.defaults().get("coarsest", COARSEST_EXTENT))
            levels = auto_levels(extents, [tuple(e.shape[2:]) for e in exemplars],
                                 coarsest=max(coarsest, domain.min_extent()))
    plan = plan_levels(extents, levels=int(levels), steps=_steps(steps, domain),
                       level_steps=level_steps)
    low = domain.min_extent()
    coarse = plan[0]
    smallest = min(min(e.shape[2:]) for e in exemplars) * coarse.scale
    if min(coarse.extents) < low or smallest < low:
        raise UsageError(
            f"{len(plan)} levels make the coarsest level {coarse.scale:g} of the full size: "
            f"{domain.describe_size(coarse.extents)} for the output and an exemplar "
            f"extent of {smallest:.0f}, below the domain's minimum of {low}; use fewer "
            "levels", parameter="levels")
    return plan


@dataclass
class _Problem:
    """What a run matches, at full resolution; :meth:`objective` builds any level's."""

    features: Features
    exemplars: list[torch.Tensor]
    content: torch.Tensor | None
    style_weight: float
    content_weight: float
    manager: PluginManager | None
    extents: tuple[int, ...] = ()
    applied: Applied | None = None

    def at(self, signal: torch.Tensor, scale: float) -> torch.Tensor:
        """``signal`` resampled by ``scale`` (itself at 1), clamped to the value range."""
        if scale == 1.0:
            return signal
        dom = self.features.domain
        return dom.clamp(dom.resample(signal, level_extents(signal.shape[2:], scale)))

    def objective(self, scale: float) -> TextureObjective:
        """The objective of the level at ``scale`` against exemplars and content
        resampled by it."""
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
            manager=self.manager, guidance=guidance,
            exemplar_weights=None if applied is None else applied.exemplar_weights)


def _run_levels(problem: _Problem, plan: Sequence[Level], finest: TextureObjective,
                memory: MemoryPlan, init: str | torch.Tensor | os.PathLike[str], seed: int,
                settings: dict[str, Any], *, optimizer: OptimizerName, lr: float | None,
                progress: bool, callback: StepCallback | None, save_every: int,
                output: str | os.PathLike[str] | None, block: int | None,
                memory_check: bool,
                finish: Callable[[torch.Tensor], torch.Tensor] | None = None
                ) -> OptimizationResult:
    """Optimise level by level, coarsest first, each level starting from the previous
    level's result resampled up; ``finest`` is the objective of the last level, planned
    as ``memory`` (coarser levels are planned here, with ``block`` and ``memory_check``)."""
    feats, dom = problem.features, problem.features.domain
    extents = plan[-1].extents
    shape = (1, problem.exemplars[0].shape[1], *extents)
    total = sum(level.steps for level in plan)
    saver = _checkpoint_saver(dom, save_every, total, output, settings, callback, finish)
    guidance = None if problem.applied is None else problem.applied.guidance
    if isinstance(init, str) and init == "noise" and guidance is not None:
        start = region_noise(dom, guidance, problem.exemplars, (*shape[:2], *plan[0].extents),
                             seed=seed)
    else:
        start = _init_signal(init, dom, shape, content=problem.content,
                             exemplar=problem.exemplars[0], seed=seed, level=plan[0])
    losses: list[float] = []
    result: OptimizationResult | None = None
    for level in plan:
        if result is not None:
            start = dom.clamp(dom.resample(result.signal, level.extents))
        if level.scale == 1.0:
            objective, level_memory = finest, memory
        else:
            objective = problem.objective(level.scale)
            level_memory = plan_memory(objective, dom, (*shape[:2], *level.extents),
                                       feats.device, block=block, check=memory_check,
                                       what=f"level {level.index + 1} at "
                                            f"{dom.describe_size(level.extents)}")
        result = _optimize(dom, objective, start.to(feats.device), level.extents, settings,
                           steps=level.steps, optimizer=optimizer, lr=lr, progress=progress,
                           callbacks=saver, offset=len(losses), level=level,
                           levels=len(plan), history=level_memory.history)
        losses.extend(result.losses)
        del objective
    assert result is not None
    settings["final_loss"] = losses[-1] if losses else math.nan
    return OptimizationResult(signal=result.signal, losses=losses, settings=settings)


def synthesize(
    exemplar: SignalSource | Sequence[SignalSource],
    *,
    features: FeatureSpec | None = None,
    domain: Domain | str | None = None,
    size: tuple[int, ...] | None = None,
    steps: int | None = None,
    levels: int | None = None,
    level_steps: Sequence[int] | None = None,
    optimizer: OptimizerName = "lbfgs",
    lr: float | None = None,
    init: str | torch.Tensor | os.PathLike[str] = "noise",
    seed: int | None = None,
    device: str | torch.device | None = "auto",
    progress: bool = True,
    callback: StepCallback | None = None,
    save_every: int = 0,
    output: str | os.PathLike[str] | None = None,
    memory_check: bool = True,
    block: int | None = None,
    exemplar_weights: Sequence[float] | None = None,
    guide: GuideSource | None = None,
    exemplar_guides: Sequence[GuideSource] | None = None,
    exemplar_scale: float = 1.0,
    manager: PluginManager | None = None,
    **options: Unpack[FeatureOptions],
) -> OptimizationResult:
    """Synthesise a new texture of any size from one or more exemplars.

    Args:
        exemplar: a signal ``(1, C, *spatial)``, a file path, or a list of them.
        features: what to match (extractor, layers, loss); default: the domain's default
            extractor with its default layers and Gram matrices.
        domain: domain object or name; by default picked from the exemplar's file suffix.
        size: output extents in tensor order (``(H, W)`` for images); default: the
            exemplar's.
        steps: loss evaluations at the output size (default: the domain's, see
            :meth:`Domain.defaults`, else 300).
        levels: coarse-to-fine levels (:mod:`texsynth.optim.levels`): ``1`` optimises at the
            output size only; ``N`` starts at ``1 / 2**(N-1)`` of every extent (output
            and exemplars), each level's result resampled up to start the next; ``0``:
            as many as keep the coarsest output and exemplars at the domain's
            ``"coarsest"`` extent (64) or more. Default (``None``): as many as
            ``level_steps`` has entries, else 1 (what the quality benchmark favours).
        level_steps: evaluations per level, coarsest first; default: ``steps`` at the
            finest level and ``COARSE_STEPS_FACTOR · steps`` at each coarser one.
        optimizer: ``"lbfgs"`` or ``"adam"``.
        lr: learning rate (L-BFGS default 1, Adam default 0.02).
        init: ``"noise"``, a signal tensor or a file to start from.
        seed: seed for noise and random weights; drawn at random when ``None``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
        progress: show a tqdm bar with the loss.
        callback: ``callback(step, loss, signal)`` after each evaluation (the variable of
            the domain's representation instead of the signal when it has one).
        save_every: with ``output``, save ``<stem>_stepNNNNN<suffix>`` every N steps.
        output: final output path (used for intermediate names only; nothing is written
            here unless ``save_every`` is set; use ``domain.save`` for the result).
        memory_check: estimate the memory needed first and refuse (with
            :class:`~texsynth.ResourceError`) what cannot fit.
        block: evaluate the loss block by block, ``block`` positions per axis
            (:mod:`texsynth.stats.blockwise`; exact, in the memory of one block); ``None``
            (default): when a whole evaluation would need more than
            :data:`texsynth.optim.fitting.BLOCK_ABOVE` and the extractor can, with a block size
            chosen for :data:`texsynth.optim.fitting.BLOCK_BYTES`; ``0``: never.
        exemplar_weights: blend the exemplars' statistics with these weights, one per
            exemplar (normalised to sum 1; :mod:`texsynth.controls.run`); ``None``: pool them.
        guide: regions of the output (:mod:`texsynth.controls.guidance`): a file the domain reads
            (a doodle), a domain's text (sound: boundaries in seconds, ``"5"``), or a map
            ``(V, *spatial)``; every distinct value is a region, which takes the
            texture of its exemplar (one per region, darkest first) or of its regions
            in ``exemplar_guides``.
        exemplar_guides: one guide per exemplar, with the output guide's values.
        exemplar_scale: the exemplars' elements come out this many times as large:
            above 1 the exemplars are rescaled (:meth:`Domain.rescale`) first; below 1,
            where the domain allows (:attr:`Domain.scale_by_canvas`), the synthesis runs
            on a canvas ``1 / S`` times as large against the exemplars as they are and
            is resampled down (``1 / S²`` times the work; ``save_every`` snapshots are
            at the canvas size), so none of an exemplar's pixels is lost.
        manager: plugin manager (default: the process-wide one).
        **options: fields of :class:`~texsynth.stats.features.FeatureSpec` overriding ``features``
            (``extractor="vgg19"``, ``layers=[...]``, ``layer_weights={...}``,
            ``extractor_options={...}``, ``weights=FILE``, ``texture_loss``,
            ``normalize``).

    Returns:
        :class:`OptimizationResult` with the signal ``(1, C, *size)`` on the CPU.
    """
    items = signal_sources(exemplar)
    if not items:
        raise UsageError("at least one exemplar is needed")
    feats, used_seed = _setup(_resolve_features(features, options), domain, items[0],
                              seed=seed, device=device, stylising=False, manager=manager)
    dom, dev = feats.domain, feats.device
    controls = Controls(exemplar_weights=exemplar_weights, guide=guide,
                        exemplar_guides=None if exemplar_guides is None
                        else tuple(exemplar_guides), exemplar_scale=exemplar_scale)
    loaded = [as_signal(item, dom) for item in items]
    channels = loaded[0].shape[1]
    wanted = tuple(size) if size is not None else tuple(loaded[0].shape[2:])
    dom.check_size(wanted)
    extents = controls.canvas(dom, wanted)
    if extents != wanted:
        if not (isinstance(init, str) and init == "noise"):
            raise UsageError("an exemplar scale below 1 synthesises a larger canvas and "
                             "resamples it down, so it starts from noise; drop --init",
                             parameter="init")
        dom.check_size(extents, what="canvas size")
    applied = controls.apply(dom, loaded, extents, canvas=extents != wanted)
    signals = applied.exemplars
    shape = (1, channels, *extents)
    if memory_check:
        check_signal_fits(shape, dev, what=f"synthesis at {dom.describe_size(extents)}")
    plan = _plan(dom, extents, signals, levels=levels, steps=steps, level_steps=level_steps)
    problem = _Problem(feats, signals, None, 1.0, 1.0, manager, extents, applied)
    objective = problem.objective(1.0)
    memory = plan_memory(objective, dom, shape, dev, block=block, check=memory_check,
                         what=f"synthesis at {dom.describe_size(extents)}")
    settings = {"command": "synthesize", "domain": dom.name,
                "exemplars": [describe_source(i) for i in items],
                "size": dom.describe_size(wanted), **feats.settings(),
                **controls.settings(applied),
                **({"canvas": dom.describe_size(extents)} if extents != wanted else {}),
                **_run_settings(plan, optimizer, lr, init, used_seed, dev), **memory.settings()}
    result = _run_levels(problem, plan, objective, memory, init, used_seed, settings,
                         optimizer=optimizer, lr=lr, progress=progress, callback=callback,
                         save_every=save_every, output=output, block=block,
                         memory_check=memory_check)
    if extents != wanted:
        result.signal = dom.clamp(dom.resample(result.signal, wanted))
    return result


def stylize(
    content: SignalSource,
    style: SignalSource | Sequence[SignalSource],
    *,
    features: FeatureSpec | None = None,
    domain: Domain | str | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    steps: int | None = None,
    levels: int | None = None,
    level_steps: Sequence[int] | None = None,
    optimizer: OptimizerName = "lbfgs",
    lr: float | None = None,
    init: str | torch.Tensor | os.PathLike[str] = "content",
    seed: int | None = None,
    device: str | torch.device | None = "auto",
    progress: bool = True,
    callback: StepCallback | None = None,
    save_every: int = 0,
    output: str | os.PathLike[str] | None = None,
    memory_check: bool = True,
    block: int | None = None,
    preserve_color: str | None = None,
    exemplar_weights: Sequence[float] | None = None,
    guide: GuideSource | None = None,
    exemplar_guides: Sequence[GuideSource] | None = None,
    exemplar_scale: float = 1.0,
    manager: PluginManager | None = None,
    **options: Unpack[FeatureOptions],
) -> OptimizationResult:
    """Repaint ``content`` with the texture of ``style``: minimise α·L_texture + β·L_content.

    ``style_weight`` is α and ``content_weight`` is β (defaults: the domain's, see
    :meth:`Domain.defaults`, else 1000 and 1); the output has the content's size.
    ``features`` may name ``content_layers`` (default: the extractor's). Other arguments
    are as for :func:`synthesize`; ``init`` defaults to ``"content"``; a ``guide`` has
    the content's extents; an ``exemplar_scale`` always rescales the styles (the content
    keeps its size).

    ``preserve_color`` keeps the content's colours, in one of the domain's ways
    (:meth:`Domain.color_modes`; pictures: ``"luminance"``, stylise the luminance only
    and keep the content's chrominance, or ``"histogram"``, give the style the
    content's colour distribution first; Gatys et al. 2016).
    """
    styles = signal_sources(style)
    feats, used_seed = _setup(_resolve_features(features, options), domain, content,
                              seed=seed, device=device, stylising=True, manager=manager)
    dom, dev = feats.domain, feats.device
    preferred = dom.defaults()
    style_weight = float(style_weight if style_weight is not None
                         else preferred.get("style_weight", 1000.0))
    content_weight = float(content_weight if content_weight is not None
                           else preferred.get("content_weight", 1.0))
    controls = Controls(exemplar_weights=exemplar_weights, guide=guide,
                        exemplar_guides=None if exemplar_guides is None
                        else tuple(exemplar_guides), exemplar_scale=exemplar_scale,
                        preserve_color=preserve_color)
    content_signal = as_signal(content, dom)
    style_signals = [as_signal(item, dom) for item in styles]
    if content_signal.shape[1] != style_signals[0].shape[1]:
        raise UsageError(f"content has {content_signal.shape[1]} channels but the style has "
                         f"{style_signals[0].shape[1]}")
    finish = None
    if preserve_color is not None:
        kept = dom.preserve_color(preserve_color, content_signal, style_signals)
        content_signal, style_signals, finish = kept.content, kept.styles, kept.finish
    extents = tuple(content_signal.shape[2:])
    applied = controls.apply(dom, style_signals, extents)
    style_signals = applied.exemplars
    shape = tuple(content_signal.shape)
    dom.check_size(extents, what="content size")
    if memory_check:
        check_signal_fits(shape, dev, what=f"stylisation at {dom.describe_size(extents)}")
    plan = _plan(dom, extents, style_signals, levels=levels, steps=steps,
                 level_steps=level_steps)
    problem = _Problem(feats, style_signals, content_signal, style_weight, content_weight,
                       manager, extents, applied)
    objective = problem.objective(1.0)
    memory = plan_memory(objective, dom, shape, dev, block=block, check=memory_check,
                         what=f"stylisation at {dom.describe_size(extents)}")
    settings = {"command": "stylize", "domain": dom.name, "content": describe_source(content),
                "styles": [describe_source(i) for i in styles],
                "size": dom.describe_size(extents), **feats.settings(),
                "content_weight": content_weight, "style_weight": style_weight,
                **controls.settings(applied),
                **_run_settings(plan, optimizer, lr, init, used_seed, dev), **memory.settings()}
    result = _run_levels(problem, plan, objective, memory, init, used_seed, settings,
                         optimizer=optimizer, lr=lr, progress=progress, callback=callback,
                         save_every=save_every, output=output, block=block,
                         memory_check=memory_check, finish=finish)
    if finish is not None:
        result.signal = finish(result.signal)
    return result
