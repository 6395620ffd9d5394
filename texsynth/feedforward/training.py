"""Training feed-forward texture and stylisation networks (Ulyanov et al. 2016).

A generator ``g`` (by default the ``pyramid`` network of :mod:`texsynth.feedforward.pyramid`) maps
noise ``z`` (and, for stylisation, a content signal ``y``) to signals. It is trained with
Adam on batches of fresh noise to minimise the loss of optimisation-based synthesis,

``L = α · L_texture(g(z, y)) + β · L_content(g(z, y), y)``

(:class:`~texsynth.stats.objective.TextureObjective`, from the same
:class:`~texsynth.stats.features.FeatureSpec` as optimisation): the Gram matrices of every
generated sample are matched to the exemplar's, computed once; for stylisation ``y`` are
random crops of a set of content signals (:class:`~texsynth.feedforward.batches.ContentSet`)
and the content loss compares feature maps of output and input. Once trained, the
generator makes new samples of any size in one forward pass
(:func:`texsynth.feedforward.sampling.sample`).

:func:`train_generator` runs in named steps: plan the run (its settings, new or from the
checkpoint being resumed, and its :class:`~texsynth.runtime.context.RunContext`:
:func:`~texsynth.feedforward.train_plan.plan_run`), check that it fits in memory
(:mod:`texsynth.feedforward.train_memory`), build the generator and the objective
(:mod:`texsynth.feedforward.train_objective`), restore optimiser, schedule and random streams when
resuming, and loop (:class:`_Trainer`). Runs are checkpointed
(:mod:`texsynth.feedforward.checkpoint`) every ``checkpoint_every`` steps, at the end, and when
interrupted by Ctrl-C or SIGTERM (:class:`~texsynth.runtime.interrupts.DeferredSignals`), with the
settings of :class:`~texsynth.feedforward.train_settings.TrainSettings`. ``resume=True`` continues a
run from its checkpoint with the same optimiser, schedule and random streams, so the loss
curve goes on as if the run had never stopped; settings given on resume must equal the
checkpoint's, the rest are taken from it. After the last step batch norm's statistics
are recomputed from the final weights
(:func:`~texsynth.feedforward.batch_norm.recalibrate_batch_norm`).

**Doodles.** A doodle-conditioned generator (Champandard 2016, feed-forward as in Ulyanov
et al.'s demo) takes as its second input the region masks ``(N, K, *size)`` of a guide,
and every region takes its exemplar's texture. Each batch draws new random doodles
(:func:`texsynth.controls.doodles.random_doodles`) and the loss is the guided Gram loss
(:class:`~texsynth.stats.guided.GuidedTextureLoss`) on their masks. Paint a doodle and
:func:`texsynth.apply` it. Region ``k`` is exemplar ``k`` (a doodle's colours are then
taken darkest first) unless exemplar guides name the regions by their colours.

**Blends.** A blend generator is conditioned on a texture code: its second input is
``K`` constant maps, the blend weights of the ``K`` exemplars (uniform on the simplex each
sample, :class:`~texsynth.controls.doodles.BlendSet`), and the loss is
``Σ_k w_k ‖G(x) − G_k‖²``, minimal at the blended statistics. Sampling it with weights
(:func:`texsynth.sample`'s ``blend``) moves from one texture to another like a slider.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the same call trains data-parallel over the
processes (:mod:`texsynth.feedforward.distributed`): ``batch_size`` is the global batch, split
evenly (it must be a multiple of the number of processes), and the run computes what one
process would with that batch; only rank 0 writes the checkpoint and shows progress.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from typing_extensions import Unpack

from ..atomic import remove_stale_temps
from ..controls.regions import GuideSource
from ..domain import Domain
from ..errors import InputError, UsageError
from ..generator import Generator, GeneratorConfig
from ..memory import memory_check_enabled
from ..plugins import PluginManager, get_plugin_manager
from ..runtime.context import RunContext
from ..runtime.interrupts import DeferredSignals
from ..runtime.rng import capture_rng_state, restore_rng_state
from ..stats.features import FeatureOptions, FeatureSpec, SignalSource
from ..stats.objective import TextureObjective
from . import distributed
from .batch_norm import recalibrate_batch_norm
from .batches import ContentSource
from .checkpoint import Checkpoint, build_generator, save_checkpoint
from .train_memory import check_step_fits, check_weights_fit, local_batch
from .train_objective import batch_loss, training_objective
from .train_plan import RunPlan, TrainRequest, plan_run
from .train_settings import TrainSettings

__all__ = ["TrainCallback", "TrainResult", "train_generator"]

#: ``callback(step, loss, generator)`` after every training step (the generator is in
#: train mode; switch to eval and back to sample a preview).
TrainCallback = Callable[[int, float, Generator], None]


@dataclass
class TrainResult:
    """What :func:`train_generator` returns.

    Attributes:
        generator: the trained generator, in eval mode, on the training device.
        losses: total loss of every step of the run (including steps done before a resume).
        settings: resolved run settings (JSON-serialisable): domain, seed, extractor,
            layers, loss, generator config, training settings, ``step``, ``final_loss``
            (:meth:`~texsynth.feedforward.train_settings.TrainSettings.to_json`).
        checkpoint: the checkpoint file written, if any.
    """

    generator: Generator
    losses: list[float]
    settings: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None

    @property
    def step(self) -> int:
        """Steps done."""
        return int(self.settings["step"])


def train_generator(
    exemplar: SignalSource | Sequence[SignalSource], *, features: FeatureSpec | None = None,
    domain: Domain | str | None = None, content: ContentSource | None = None,
    content_weight: float | None = None, style_weight: float | None = None,
    generator: str | None = None, generator_options: Mapping[str, Any] | None = None,
    size: tuple[int, ...] | None = None, batch_size: int | None = None,
    iterations: int = 2000, lr: float | None = None, lr_step: int | None = None,
    lr_decay: float | None = None, seed: int | None = None,
    device: str | torch.device | None = "auto",
    checkpoint: str | os.PathLike[str] | None = None, checkpoint_every: int = 100,
    resume: bool = False, progress: bool = True, callback: TrainCallback | None = None,
    manager: PluginManager | None = None, memory_check: bool = True,
    norm_batches: int | None = None, doodles: bool = False,
    exemplar_guides: Sequence[GuideSource] | None = None, blends: bool = False,
    **options: Unpack[FeatureOptions],
) -> TrainResult:
    """Train a feed-forward texture (or stylisation) generator on an exemplar (see the
    module docstring for resuming, doodles, blends and ``torchrun``).

    Args:
        exemplar: a signal ``(1, C, *spatial)``, a file, or a list (Gram matrices averaged).
        features: what to match (:class:`~texsynth.stats.features.FeatureSpec`; ``**options``
            override its fields); default: the domain's extractor (random weights seeded
            with ``seed``) and layers, Gram matrices with ``"chw"`` normalisation.
        domain: domain object or name; default: from the exemplar's file suffix.
        content: stylisation content (a folder of the domain's files, a file, a batch
            ``(N, C, *spatial)`` or a list): each batch holds random crops of ``size``.
            ``None`` trains a texture generator.
        content_weight: β, the weight of the content loss (default 1).
        style_weight: α, the weight of the texture loss (default 1).
        generator: architecture name (default ``"pyramid"``, with content ``"pyramid-stylize"``).
        generator_options: its options
            (:data:`texsynth.feedforward.pyramid_options.DEFAULT_OPTIONS`), over
            ``value_range`` and the domain's ``generator_options``.
        size: training extents in tensor order; default: the exemplar's, capped by the
            domain's ``train_size`` (:meth:`Domain.defaults`).
        batch_size: samples per step (default 4; the paper used 16).
        iterations: total steps of the run (a resumed run continues up to this number).
        lr: Adam's learning rate (default 0.01; Ulyanov et al.'s 0.1 ended 4–8× higher).
        lr_step: multiply the learning rate by ``lr_decay`` every ``lr_step`` steps.
        lr_decay: see ``lr_step`` (defaults 0.7 and 1000, following Ulyanov et al.).
        seed: seed of the initial weights, the noise, the content crops and random
            extractor weights; drawn at random when ``None`` (and stored).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
        checkpoint: file written every ``checkpoint_every`` steps (0: only at the end and
            on interrupt), at the end and on Ctrl-C/SIGTERM; ``None`` writes nothing.
        checkpoint_every: see ``checkpoint``.
        resume: continue the run stored in ``checkpoint`` if that file exists (settings
            given must match it); without it an existing file is overwritten.
        progress: show a tqdm bar with the loss.
        callback: ``callback(step, loss, generator)`` after every step.
        manager: plugin manager (default: the process-wide one).
        memory_check: refuse a run that cannot fit in memory before it starts
            (:mod:`texsynth.feedforward.train_memory`; ``TEXSYNTH_MEMORY_CHECK=0`` also skips it).
        norm_batches: batches of fresh noise that set batch norm's statistics after the
            last step (default 32, or as stored; 0 keeps the running averages).
        doodles: train a doodle-conditioned generator (region ``k`` is exemplar ``k``).
        exemplar_guides: with ``doodles``, a guide per exemplar whose colours name the regions.
        blends: train a blend generator, conditioned on the exemplars' blend weights.

    Returns:
        :class:`TrainResult`; its generator is in eval mode.

    Raises:
        ResourceError: the run will not fit in memory (see ``memory_check``).
        KeyboardInterrupt: after Ctrl-C, once the checkpoint is saved (SIGTERM is handed to
            the previous SIGTERM handler, by default ending the process).
    """
    request = TrainRequest(
        exemplar=exemplar, manager=manager or get_plugin_manager(), features=features,
        options=dict(options), domain=domain, content=content,
        content_weight=content_weight, style_weight=style_weight, generator=generator,
        generator_options=generator_options, size=size, batch_size=batch_size,
        iterations=iterations, lr=lr, lr_step=lr_step, lr_decay=lr_decay, seed=seed,
        device=device, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
        resume=resume, progress=progress, memory_check=memory_check,
        norm_batches=norm_batches, doodles=doodles, exemplar_guides=exemplar_guides,
        blends=blends)
    return _train(request, callback)


def _train(request: TrainRequest, callback: TrainCallback | None) -> TrainResult:
    """The steps of :func:`train_generator` for a checked ``request``: plan the run (its
    context seeded), check its memory, build the generator and the objective, restore a
    resumed run's state and loop; the generator is returned in eval mode."""
    dist = distributed.setup(request.device)  # does nothing outside torchrun
    gen: Generator | None = None
    try:
        context, plan = plan_run(request, dist)
        checking = request.memory_check and memory_check_enabled()
        batch = local_batch(plan, dist)
        gen = _build_generator(plan, context, request, batch=batch, memory_check=checking)
        objective = training_objective(plan, context)
        if checking:
            check_step_fits(plan, context, gen, objective, batch)
        settings = plan.settings(context, gen.config, iterations=request.iterations,
                                 processes=dist.world_size)
        trainer = _Trainer(plan, context, gen, objective, settings, dist,
                           request.checkpoint_path)
        trainer.restore()
        trainer.loop(request.iterations, request.checkpoint_every, callback)
    finally:
        if gen is not None:
            dist.unwrap(gen)
        dist.close()
    gen.eval()
    return trainer.result()


def _build_generator(plan: RunPlan, context: RunContext, request: TrainRequest, *,
                     batch: int, memory_check: bool) -> Generator:
    """The generator: rebuilt from the checkpoint, or new with weights drawn from the
    run's seed (in train mode, on the CPU). With ``memory_check``, a new generator whose
    training cannot fit (:func:`~texsynth.feedforward.train_memory.check_weights_fit`,
    ``batch`` samples per step) is refused before it is built."""
    if plan.previous is not None:
        return build_generator(plan.previous, request.checkpoint_path or "",
                               manager=context.manager)
    dom = plan.features.domain
    stylising = bool(plan.features.content_layers)
    channels = plan.exemplars[0].shape[1]
    inputs = channels if stylising else 0
    if plan.regions is not None:  # the region masks of doodles or blends
        inputs = len(plan.regions.exemplars)
    config = GeneratorConfig(
        name=request.generator or ("pyramid-stylize" if stylising else "pyramid"),
        spatial_dims=dom.spatial_dims, out_channels=channels, content_channels=inputs,
        options={"value_range": list(dom.value_range),
                 **dict(dom.defaults().get("generator_options", {})),
                 **dict(request.generator_options or {})})
    if memory_check:
        check_weights_fit(config, plan, context, batch)
    torch.manual_seed(context.seed)
    return context.manager.create_generator(config)


class _Trainer:
    """The optimisation state of one run and its loop (Adam, step schedule, noise stream,
    checkpoints, signal handling)."""

    def __init__(self, plan: RunPlan, context: RunContext, gen: Generator,
                 objective: TextureObjective, settings: TrainSettings,
                 dist: distributed.DistributedContext, checkpoint: Path | None) -> None:
        self.plan, self.context, self.gen, self.objective = plan, context, gen, objective
        self.settings, self.dist, self.path = settings, dist, checkpoint
        self.contents, self.device = plan.contents, context.device
        gen.to(self.device).train()
        self.model = dist.wrap(gen)  # DistributedDataParallel under torchrun, else gen
        schedule = plan.schedule
        self.optimizer = torch.optim.Adam(gen.parameters(), lr=float(schedule.lr))
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=int(schedule.lr_step), gamma=float(schedule.lr_decay))
        self.rng = torch.Generator().manual_seed(context.seed)
        self.losses: list[float] = []
        self.step = 0

    def restore(self) -> None:
        """Continue the checkpoint's optimiser, schedule, random streams and history.

        Raises:
            InputError: the stored states do not fit this run (a corrupt or tampered
                checkpoint).
        """
        previous = self.plan.previous
        if previous is None:
            return
        try:
            if previous.optimizer_state is not None:
                self.optimizer.load_state_dict(previous.optimizer_state)
            if previous.scheduler_state is not None:
                self.scheduler.load_state_dict(previous.scheduler_state)
            state = previous.rng_state or {}
            restore_rng_state(state)
            if "stream" in state:
                self.rng.set_state(state["stream"])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            text = str(exc).strip().splitlines()
            raise InputError(self.path or "<checkpoint>", "corrupt or tampered checkpoint: "
                             "the optimiser or random states do not fit the run "
                             f"({type(exc).__name__}: {text[0] if text else ''})") from None
        self.losses = list(previous.losses)
        self.step = previous.step
        self.objective.fast_forward(self.step)  # one evaluation per step

    def save(self) -> None:
        """Write the checkpoint (rank 0 only; nothing without a checkpoint path)."""
        if self.path is None or not self.dist.is_main:
            return
        rng_state = capture_rng_state(cuda=self.device.type == "cuda")
        rng_state["stream"] = self.rng.get_state()
        save_checkpoint(self.path, Checkpoint(
            settings=self.settings.to_json(), step=self.step, generator_state=self.gen.state_dict(),
            losses=self.losses, optimizer_state=self.optimizer.state_dict(),
            scheduler_state=self.scheduler.state_dict(), rng_state=rng_state))

    def train_step(self) -> float:
        """One Adam step on a fresh global batch; returns the batch's loss."""
        batch, extents = int(self.plan.schedule.batch_size), self.plan.extents
        dev = self.device
        # Every rank draws the global batch from the same stream and keeps its slice.
        noise = self.dist.local(self.gen.make_noise(batch, extents, generator=self.rng,
                                                    device=dev), batch)
        content = (self.dist.local(self.contents.batch(batch, extents, self.rng), batch)
                   .to(dev) if self.contents is not None else None)
        loss = batch_loss(self.objective, self.model(noise, content), content)
        value = self.dist.mean(loss)  # the global batch's loss, on every rank
        if not math.isfinite(value):
            raise UsageError(f"the loss became {value} at step {self.step + 1}; "
                             "lower the learning rate or the loss weights")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.losses.append(value)
        return value

    def finish(self) -> bool:
        """After the last step: batch norm's statistics from the final weights
        (:func:`~texsynth.feedforward.batch_norm.recalibrate_batch_norm`, the schedule's
        ``norm_batches`` batches); whether they changed. The generator goes back to
        training mode."""
        batches = int(self.plan.schedule.norm_batches)
        if batches <= 0:
            return False
        changed = recalibrate_batch_norm(
            self.gen, batches, int(self.plan.schedule.batch_size), self.plan.extents,
            seed=(self.context.seed + 1) % 2**63, contents=self.contents, device=self.device)
        self.gen.train()
        return changed

    def loop(self, iterations: int, checkpoint_every: int,
             callback: TrainCallback | None) -> None:
        """Train up to ``iterations`` steps, checkpointing as documented (a progress bar
        when the run's context asks for one, on rank 0)."""
        if self.path is not None and self.dist.is_main:
            # this run owns the checkpoint: partial files of a killed earlier run can go
            remove_stale_temps(self.path)
        bar = tqdm(total=iterations, initial=min(self.step, iterations), desc="train",
                   unit="step", disable=not self.context.progress or not self.dist.is_main,
                   dynamic_ncols=True, leave=False)
        saved_at = self.step if self.plan.previous is not None else -1
        in_step = False
        try:
            with DeferredSignals(self.path is not None) as deferred:
                while self.step < iterations:
                    in_step = True
                    value = self.train_step()
                    in_step = False
                    bar.update(1)
                    bar.set_postfix(loss=f"{value:.4g}")
                    if callback is not None:
                        callback(self.step, value, self.gen)
                    if deferred.enabled:  # every rank stops after the same step
                        deferred.pending = self.dist.agree_signal(deferred.pending)
                    due = bool(checkpoint_every) and self.step % checkpoint_every == 0
                    if due or deferred.pending is not None:
                        self.save()
                        saved_at = self.step
                    if deferred.pending is not None:
                        deferred.deliver()
                if self.finish() or saved_at != self.step:
                    self.save()
        except KeyboardInterrupt:
            if not in_step and saved_at != self.step:
                self.save()
            raise
        finally:
            bar.close()

    def result(self) -> TrainResult:
        """What :func:`train_generator` returns after the loop: the settings with the
        steps done and the last loss."""
        settings = {**self.settings.to_json(), "step": self.step,
                    "final_loss": self.losses[-1] if self.losses else math.nan}
        return TrainResult(generator=self.gen, losses=self.losses, settings=settings,
                           checkpoint=self.path)
