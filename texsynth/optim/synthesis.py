"""Texture synthesis and stylisation by optimisation (Gatys et al. 2015, 2016): the public
:func:`synthesize` and :func:`stylize`, each turning its arguments into a task that
:func:`texsynth.optim.runner.run_task` runs.

The signal itself is the variable: it starts from noise (or the content, or a file;
:mod:`texsynth.optim.start`) and is updated by L-BFGS (default) or Adam
(:mod:`texsynth.optim.loop`) to minimise

``L = α · L_texture(x) + β · L_content(x)``

(:class:`~texsynth.stats.objective.TextureObjective`, built from a
:class:`~texsynth.stats.features.FeatureSpec` by :func:`~texsynth.stats.features.prepare`)
with the texture loss against the exemplar's Gram matrices (computed once) and, for
stylisation, the content loss against the content's feature maps. After every step the
signal is projected back onto the domain's value range, so every intermediate result is
a valid signal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial

import torch
from typing_extensions import Unpack

from ..controls.regions import GuideSource
from ..controls.run import Controls
from ..domain import Domain
from ..errors import UsageError
from ..plugins import PluginManager
from ..stats.features import (
    FeatureOptions,
    Features,
    FeatureSpec,
    SignalSource,
    as_signal,
    describe_source,
    signal_sources,
)
from .loop import OptimizationResult, OptimizerName, StepCallback
from .runner import run_task
from .start import AUTO_INIT, NOISE_STARTS, InitSource
from .task import Problem, RunOptions, Task

__all__ = ["stylize", "synthesize"]


def synthesize(
    exemplar: SignalSource | Sequence[SignalSource], *, features: FeatureSpec | None = None,
    domain: Domain | str | None = None, size: tuple[int, ...] | None = None,
    steps: int | None = None, levels: int | None = None,
    level_steps: Sequence[int] | None = None, optimizer: OptimizerName = "lbfgs",
    lr: float | None = None, init: InitSource = AUTO_INIT, seed: int | None = None,
    device: str | torch.device | None = "auto", progress: bool = True,
    callback: StepCallback | None = None, save_every: int = 0,
    output: str | os.PathLike[str] | None = None, memory_check: bool = True,
    block: int | None = None, exemplar_weights: Sequence[float] | None = None,
    guide: GuideSource | None = None, exemplar_guides: Sequence[GuideSource] | None = None,
    exemplar_scale: float = 1.0, manager: PluginManager | None = None,
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
        levels: coarse-to-fine levels (:func:`texsynth.optim.levels.plan_run`): ``1``
            optimises at the output size only; ``N`` starts at ``1 / 2**(N-1)`` of every
            extent, each level's result resampled up to start the next; ``0``: as many
            as the domain's ``"coarsest"`` extent (64) allows; default: as many as
            ``level_steps`` has entries, else 1.
        level_steps: evaluations per level, coarsest first; default: ``steps`` at the
            finest level and ``COARSE_STEPS_FACTOR · steps`` at each coarser one.
        optimizer: ``"lbfgs"`` or ``"adam"``.
        lr: learning rate (L-BFGS default 1, Adam default 0.02).
        init: what to start from: ``"auto"`` (the domain's choice, ``"init"`` in
            :meth:`Domain.defaults`, else ``"noise"``; pictures: ``"spot"``),
            ``"noise"`` (the domain's noise around the exemplar's mean), ``"spot"``
            (spot noise: a Gaussian texture with the exemplar's power spectrum,
            :mod:`texsynth.optim.spot`), a signal tensor or a file.
        seed: seed for noise and random weights; drawn at random when ``None``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``; ``progress``: a tqdm bar.
        callback: ``callback(step, loss, signal)`` after each evaluation (the variable of
            the domain's representation instead of the signal when it has one).
        save_every: with ``output``, save ``<stem>_stepNNNNN<suffix>`` every N steps
            (``output`` only names them: save the result with ``domain.save``).
        memory_check: estimate the memory needed first and refuse (with
            :class:`~texsynth.ResourceError`) what cannot fit.
        block: evaluate the loss block by block, ``block`` positions per axis (exact, in
            the memory of one block); ``None``: when a whole evaluation would not fit
            (:func:`texsynth.optim.fitting.plan_memory`); ``0``: never.
        exemplar_weights: blend the exemplars' statistics with these weights, one per
            exemplar (normalised to sum 1; :mod:`texsynth.controls.run`); ``None``: pool them.
        guide: regions of the output (:mod:`texsynth.controls.regions`): a file the domain
            reads (a doodle), a domain's text (sound: boundaries in seconds, ``"5"``), or
            a map ``(V, *spatial)``; every distinct value is a region, which takes the
            texture of its exemplar (one per region, darkest first) or of its regions in
            ``exemplar_guides``.
        exemplar_guides: one guide per exemplar, with the output guide's values.
        exemplar_scale: the exemplars' elements come out this many times as large: above
            1 the exemplars are rescaled (:meth:`Domain.rescale`); below 1, where the
            domain allows, a canvas ``1 / S`` times as large is synthesised and resampled
            down (:meth:`texsynth.controls.run.Controls.canvas`; snapshots at its size).
        manager: plugin manager (default: the process-wide one).
        **options: fields of :class:`~texsynth.stats.features.FeatureSpec` overriding
            ``features`` (``extractor="vgg19"``, ``layers=[...]``, ``layer_weights={...}``,
            ``extractor_options={...}``, ``weights=FILE``, ``texture_loss``, ``normalize``).

    Returns:
        :class:`OptimizationResult` with the signal ``(1, C, *size)`` on the CPU.
    """
    items = signal_sources(exemplar)
    if not items:
        raise UsageError("at least one exemplar is needed")
    controls = partial(Controls, exemplar_weights=exemplar_weights, guide=guide,
                       exemplar_guides=exemplar_guides, exemplar_scale=exemplar_scale)
    run = RunOptions(steps=steps, levels=levels, level_steps=level_steps, optimizer=optimizer,
                     lr=lr, init=init, callback=callback, save_every=save_every,
                     output=output, memory_check=memory_check, block=block)
    return run_task(partial(_synthesis_task, items=items, size=size, init=init,
                            controls=controls),
                    (features or FeatureSpec()).replace(**options), domain, items[0], run,
                    stylising=False, seed=seed, device=device, manager=manager,
                    progress=progress)


def stylize(
    content: SignalSource, style: SignalSource | Sequence[SignalSource], *,
    features: FeatureSpec | None = None, domain: Domain | str | None = None,
    content_weight: float | None = None, style_weight: float | None = None,
    steps: int | None = None, levels: int | None = None,
    level_steps: Sequence[int] | None = None, optimizer: OptimizerName = "lbfgs",
    lr: float | None = None, init: InitSource = "content", seed: int | None = None,
    device: str | torch.device | None = "auto", progress: bool = True,
    callback: StepCallback | None = None, save_every: int = 0,
    output: str | os.PathLike[str] | None = None, memory_check: bool = True,
    block: int | None = None, preserve_color: str | None = None,
    exemplar_weights: Sequence[float] | None = None, guide: GuideSource | None = None,
    exemplar_guides: Sequence[GuideSource] | None = None, exemplar_scale: float = 1.0,
    manager: PluginManager | None = None, **options: Unpack[FeatureOptions],
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
    controls = partial(Controls, exemplar_weights=exemplar_weights, guide=guide,
                       exemplar_guides=exemplar_guides, exemplar_scale=exemplar_scale,
                       preserve_color=preserve_color)
    run = RunOptions(steps=steps, levels=levels, level_steps=level_steps, optimizer=optimizer,
                     lr=lr, init=init, callback=callback, save_every=save_every,
                     output=output, memory_check=memory_check, block=block)
    return run_task(partial(_stylisation_task, content=content, styles=styles,
                            style_weight=style_weight, content_weight=content_weight,
                            controls=controls),
                    (features or FeatureSpec()).replace(**options), domain, content, run,
                    stylising=True, seed=seed, device=device, manager=manager,
                    progress=progress)


def _synthesis_task(features: Features, *, items: Sequence[SignalSource],
                    size: tuple[int, ...] | None, init: InitSource,
                    controls: Callable[[], Controls]) -> Task:
    """The task of :func:`synthesize`: the exemplars loaded and put through the
    ``controls``, the output size checked, and the canvas an exemplar scale below 1
    optimises instead (which must start from noise)."""
    dom = features.domain
    chosen = controls()
    loaded = [as_signal(item, dom) for item in items]
    channels = loaded[0].shape[1]
    wanted = tuple(size) if size is not None else tuple(loaded[0].shape[2:])
    dom.check_size(wanted)
    extents = chosen.canvas(dom, wanted)
    if extents != wanted:
        if not (isinstance(init, str) and init in (*NOISE_STARTS, AUTO_INIT)):
            raise UsageError("an exemplar scale below 1 synthesises a larger canvas and "
                             "resamples it down, so it starts from noise; drop --init",
                             parameter="init")
        dom.check_size(extents, what="canvas size")
    applied = chosen.apply(dom, loaded, extents, canvas=extents != wanted)
    problem = Problem(features, applied.exemplars, None, 1.0, 1.0, extents, applied)
    return Task("synthesize", "synthesis", problem, shape=(1, channels, *extents),
                size=wanted, sources={"exemplars": [describe_source(i) for i in items]},
                controls=chosen.settings(applied))


def _stylisation_task(features: Features, *, content: SignalSource,
                      styles: Sequence[SignalSource], style_weight: float | None,
                      content_weight: float | None,
                      controls: Callable[[], Controls]) -> Task:
    """The task of :func:`stylize`: the loss weights (the domain's by default), content
    and styles loaded (with the same number of channels), colour preservation and the
    other ``controls`` applied, the content's size checked."""
    dom = features.domain
    preferred = dom.defaults()
    alpha = float(style_weight if style_weight is not None
                  else preferred.get("style_weight", 1000.0))
    beta = float(content_weight if content_weight is not None
                 else preferred.get("content_weight", 1.0))
    chosen = controls()
    content_signal = as_signal(content, dom)
    style_signals = [as_signal(item, dom) for item in styles]
    if content_signal.shape[1] != style_signals[0].shape[1]:
        raise UsageError(f"content has {content_signal.shape[1]} channels but the style has "
                         f"{style_signals[0].shape[1]}")
    finish = None
    if chosen.preserve_color is not None:
        kept = dom.preserve_color(chosen.preserve_color, content_signal, style_signals)
        content_signal, style_signals, finish = kept.content, kept.styles, kept.finish
    extents = tuple(content_signal.shape[2:])
    applied = chosen.apply(dom, style_signals, extents)
    dom.check_size(extents, what="content size")
    problem = Problem(features, applied.exemplars, content_signal, alpha, beta, extents,
                      applied)
    return Task("stylize", "stylisation", problem, shape=tuple(content_signal.shape),
                size=extents, sources={"content": describe_source(content),
                                       "styles": [describe_source(i) for i in styles]},
                weights={"content_weight": beta, "style_weight": alpha},
                controls=chosen.settings(applied), finish=finish)
