"""Training feed-forward texture and stylisation networks (Ulyanov et al. 2016).

A generator ``g`` (by default the ``pyramid`` network of :mod:`texsynth.feedforward.pyramid`) maps
noise ``z`` (and, for stylisation, a content signal ``y``) to signals. It is trained with
Adam on batches of fresh noise to minimise the loss of optimisation-based synthesis,

``L = α · L_texture(g(z, y)) + β · L_content(g(z, y), y)``

(:class:`~texsynth.stats.objective.TextureObjective`, from the same
:class:`~texsynth.stats.features.FeatureSpec` as optimisation): the Gram matrices of every generated
sample are matched to the exemplar's, computed once; for stylisation ``y`` are random
crops of a set of content signals (:class:`~texsynth.feedforward.batches.ContentSet`) and the content
loss compares feature maps of output and input. Once trained, the generator makes new
samples of any size in one forward pass (:func:`texsynth.feedforward.sampling.sample`).

:func:`train_generator` runs in named steps: resolve the run's settings (new, or from the
checkpoint being resumed: :func:`plan_run`), build the generator, restore optimiser,
schedule and random streams when resuming, and loop (:class:`_Trainer`). Runs are
checkpointed (:mod:`texsynth.feedforward.checkpoint`) every ``checkpoint_every`` steps, at the end,
and when interrupted by Ctrl-C or SIGTERM (:class:`~texsynth.runtime.interrupts.DeferredSignals`);
``resume=True`` continues a run from its checkpoint with the same optimiser, schedule and
random streams, so the loss curve goes on as if the run had never stopped.

Under ``torchrun`` the same call trains data-parallel over the processes
(:mod:`texsynth.feedforward.distributed`): ``batch_size`` is the global batch, split evenly, and the
run computes what one process would with that batch.

**Memory guard.** Before the loop, a run that cannot fit is refused with a one-line
:class:`~texsynth.errors.ResourceError` naming the estimate (``memory_check=False`` or
``TEXSYNTH_MEMORY_CHECK=0`` skips it): first, with the generator built on the ``meta``
device (no memory), its weights, gradients and Adam's two moments plus a lower bound of
the activations (the widest layer's maps and their gradients for the local batch); then
one forward and backward pass of a copy of the generator and the loss on one sample of
at most :data:`PROBE_EXTENT` per axis, whose saved tensors
(:func:`texsynth.memory.saved_bytes`, weights left out) are scaled by the local batch
and the positions of the training size and by :data:`BACKWARD_FACTOR`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from typing_extensions import Unpack

from ..atomic import remove_stale_temps
from ..controls.doodles import BlendSet, DoodleSet
from ..controls.regions import (
    Guidance,
    GuideSource,
    Regions,
    RegionWeighting,
    exemplar_regions,
)
from ..domain import Domain
from ..errors import InputError, UsageError
from ..extractor import ExtractorConfig
from ..generator import Generator, GeneratorConfig
from ..memory import check_fits, memory_check_enabled, saved_bytes
from ..plugins import PluginManager, get_plugin_manager
from ..runtime.interrupts import DeferredSignals
from ..runtime.rng import capture_rng_state, restore_rng_state, seed_everything
from ..stats.features import (
    FeatureOptions,
    Features,
    FeatureSpec,
    SignalSource,
    also_summary,
    as_signal,
    describe_source,
    prepare,
    resolve_domain,
    signal_sources,
)
from ..stats.objective import TextureObjective
from . import distributed
from .batches import BatchSource, ContentSet, ContentSource
from .checkpoint import Checkpoint, build_generator, load_checkpoint, save_checkpoint

__all__ = ["BACKWARD_FACTOR", "DEFAULTS", "PROBE_EXTENT", "RunPlan", "TrainCallback",
           "TrainResult", "plan_run", "recalibrate_batch_norm", "train_generator"]

#: ``callback(step, loss, generator)`` after every training step (the generator is in
#: train mode; switch to eval and back to sample a preview).
TrainCallback = Callable[[int, float, Generator], None]

#: Extent per axis of the training step the memory estimate measures (at least the
#: domain's and the generator's smallest extent, at most the training size).
PROBE_EXTENT = 64
#: Factor on the bytes a step saves for backward, for what the count does not see (the
#: gradients of activations during the backward pass, kernel workspaces). Measured on the
#: CPU (default pyramid, random-multiscale extractor, 128² to 256², batch 4 to 16): peak
#: resident memory grows 1.3 to 1.4 times as fast as the saved bytes.
BACKWARD_FACTOR = 1.4
#: What a run refused for its batch and size can do instead, and the parameters named.
_ADVICE = "use a smaller batch_size or size, or set TEXSYNTH_MEMORY_CHECK=0 to try anyway"
_ADVICE_NAMES = ("batch_size", "size")

#: Defaults of the settings that define a run (``None`` in the signature means these).
DEFAULTS: dict[str, Any] = {
    "batch_size": 4,      # paper: 16; 4 keeps CPU steps affordable
    "lr": 0.01,           # Adam; see train_generator's docstring
    "lr_step": 1000,      # decay every 1000 steps ...
    "lr_decay": 0.7,      # ... by ×0.7 (Ulyanov et al.)
    "style_weight": 1.0,
    "content_weight": 1.0,
    "norm_batches": 32,   # batches that set batch norm's statistics after training
}


def recalibrate_batch_norm(generator: Generator, batches: int, batch_size: int,
                           extents: Sequence[int], *, seed: int,
                           contents: BatchSource | None = None,
                           device: torch.device | str = "cpu") -> bool:
    """Set every batch-norm layer's running mean and variance to their averages over
    ``batches`` batches of fresh noise (``batch_size`` samples of ``extents``, and content
    crops for a stylisation generator), with the weights as they are now.

    During training the running statistics are an exponential average over the last
    steps' batches, made while the weights were still changing, so in eval mode (when
    sampling) they no longer match what the final weights produce, and samples shift in
    colour and contrast. Recomputing them once at the end ("precise BN"; Wu & Johnson
    2021, "Rethinking 'Batch' in BatchNorm") removes that gap: on the CPU recipe's bark
    generator the colour distance of samples fell from 0.030 to 0.006.

    The noise comes from its own stream seeded with ``seed``, so the result depends only
    on the weights. The generator is left in eval mode.

    Returns:
        whether the generator has batch-norm layers (nothing is done otherwise).
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or batches <= 0:
        generator.eval()
        return bool(norms)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    rng = torch.Generator().manual_seed(int(seed))
    generator.train()
    try:
        with torch.no_grad():
            for _ in range(batches):
                noise = generator.make_noise(batch_size, tuple(extents), generator=rng,
                                             device=device)
                content = (contents.batch(batch_size, tuple(extents), rng).to(device)
                           if contents is not None else None)
                generator(noise, content)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        generator.eval()
    return True


@dataclass
class TrainResult:
    """What :func:`train_generator` returns.

    Attributes:
        generator: the trained generator, in eval mode, on the training device.
        losses: total loss of every step of the run (including steps done before a resume).
        settings: resolved run settings (JSON-serialisable): domain, seed, extractor,
            layers, loss, generator config, training settings, ``step``, ``final_loss``.
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


# -- settings --------------------------------------------------------------------------------
def _digest_signal(signal_: torch.Tensor) -> str:
    data = signal_.detach().cpu().float().contiguous()
    return hashlib.sha256(data.numpy().tobytes()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _check_resume(path: Path, stored: dict[str, Any], given: dict[str, Any]) -> None:
    """Given settings must equal the checkpoint's (``None`` means "as stored")."""
    clashes = []
    for key, value in given.items():
        if value is None:
            continue
        section, _, name = key.rpartition(".")
        have = stored.get(section, {}) if section else stored
        if key == "also":
            have = {"also": also_summary(stored.get("also"))}
        if _jsonable(value) != have.get(name):
            clashes.append(f"{name}={have.get(name)!r} (given {_jsonable(value)!r})")
    if clashes:
        raise UsageError(f"{path}: cannot resume with different settings; the checkpoint "
                         f"has {'; '.join(clashes)}. Pass the same settings, or "
                         "resume=False to start over", parameter="resume=False")


def _default_size(domain: Domain, exemplar: torch.Tensor) -> tuple[int, ...]:
    """The exemplar's extents, capped per axis by the domain's preferred crop size."""
    extents = tuple(int(e) for e in exemplar.shape[2:])
    crop = domain.defaults().get("train_size")
    if crop is None:
        return extents
    return tuple(min(e, int(c)) for e, c in zip(extents, crop, strict=True))


#: Where each :class:`FeatureSpec` field is stored in a checkpoint's settings.
_SPEC_KEYS = {
    "extractor": "extractor.name", "extractor_options": "extractor.options",
    "weights": "extractor.weights", "layers": "texture_layers",
    "content_layers": "content_layers", "layer_weights": "loss.layer_weights",
    "texture_loss": "loss.texture_loss", "normalize": "loss.normalize",
    "batch_gram": "loss.batch_gram", "value_weight": "loss.value_weight",
    "also": "also",
}


def _given_features(features: FeatureSpec | None, options: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """Feature settings the caller gave, keyed as in a checkpoint: keyword ``options``
    that are not ``None``, and fields of ``features`` other than the defaults."""
    FeatureSpec().replace(**options)  # refuses unknown names, as synthesize does
    given: dict[str, Any] = {}
    if features is not None:
        blank = FeatureSpec()
        given = {f.name: getattr(features, f.name) for f in dataclasses.fields(features)
                 if getattr(features, f.name) != getattr(blank, f.name)}
    given.update({k: v for k, v in options.items() if v is not None})
    out = {}
    for name, value in given.items():
        if name == "extractor" and isinstance(value, ExtractorConfig):
            value = value.name
        elif name == "weights":
            value = os.fspath(value)
        elif name == "also":
            value = also_summary(value)
        out[_SPEC_KEYS[name]] = value
    return out


@dataclass
class RunPlan:
    """A training run's settings, resolved before anything is built.

    Attributes:
        features: the prepared features (domain, extractor, layers, loss settings).
        seed: the run's seed.
        training: ``size``, ``batch_size``, ``lr``, ``lr_step``, ``lr_decay`` (and, once
            the run is set up, ``iterations``, ``exemplars`` ...), as stored.
        loss: texture loss, normalisation, ``batch_gram``, layer, style and content
            weights, as stored.
        exemplars: the exemplar signals ``(1, C, *spatial)``.
        sources: the exemplars as given (paths or tensors).
        previous: the checkpoint being resumed, or ``None`` for a new run.
        regions: the exemplars' regions of a doodle-conditioned generator, else ``None``.
    """

    features: Features
    seed: int
    training: dict[str, Any]
    loss: dict[str, Any]
    exemplars: list[torch.Tensor]
    sources: list[SignalSource]
    previous: Checkpoint | None = None
    regions: Regions | None = None

    @property
    def extents(self) -> tuple[int, ...]:
        """The training size (tensor order)."""
        return tuple(int(e) for e in self.training["size"])


def _new_settings(spec: FeatureSpec, stylising: bool, batch_size: int | None,
                  lr: float | None, lr_step: int | None, lr_decay: float | None,
                  style_weight: float | None, content_weight: float | None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(training, loss)`` settings of a new run, defaults filled in."""
    training = {
        "batch_size": batch_size or DEFAULTS["batch_size"],
        "lr": lr if lr is not None else DEFAULTS["lr"],
        "lr_step": lr_step or DEFAULTS["lr_step"],
        "lr_decay": lr_decay if lr_decay is not None else DEFAULTS["lr_decay"],
    }
    loss = {
        "texture_loss": spec.texture_loss,
        "normalize": spec.normalize,
        "batch_gram": bool(spec.batch_gram),
        "value_weight": float(spec.value_weight),
        "layer_weights": dict(spec.layer_weights),
        "style_weight": float(style_weight if style_weight is not None
                              else DEFAULTS["style_weight"]),
        "content_weight": float(content_weight if content_weight is not None
                                else DEFAULTS["content_weight"]) if stylising else 0.0,
    }
    return training, loss


#: Settings a resumed run reads from its checkpoint (section -> keys; "" is the top).
_RESUMED_KEYS = {"": ("seed", "extractor", "content_layers", "training", "loss"),
                 "training": ("size", "batch_size", "lr", "lr_step", "lr_decay",
                              "exemplar_sha256"),
                 "loss": ("texture_loss", "normalize", "layer_weights", "style_weight",
                          "content_weight")}


def _check_resumable(path: Path, stored: Mapping[str, Any]) -> None:
    """Refuse a checkpoint that lacks a setting resuming reads (types and bounds are
    checked on load, :func:`texsynth.feedforward.checkpoint.check_settings`)."""
    for section, keys in _RESUMED_KEYS.items():
        where = stored.get(section) if section else stored
        for key in keys:
            if not isinstance(where, Mapping) or key not in where:
                name = f"{section}.{key}" if section else key
                raise InputError(path, f"corrupt or tampered checkpoint: {name} is missing, "
                                       "so the run cannot be resumed")


def _resumed(path: Path, domain: Domain, given: dict[str, Any],
             generator_options: Mapping[str, Any] | None, stylising: bool) -> Checkpoint:
    """The checkpoint at ``path``, checked against what the caller gave."""
    previous = load_checkpoint(path, domain=domain.name)
    stored = previous.settings
    _check_resumable(path, stored)
    _check_resume(path, stored, given)
    for key, value in (generator_options or {}).items():
        if _jsonable(value) != stored["generator"]["options"].get(key):
            raise UsageError(f"{path}: cannot resume with generator option "
                             f"{key}={value!r}; the checkpoint has "
                             f"{stored['generator']['options'].get(key)!r}")
    if bool(stored["content_layers"]) != stylising:
        raise UsageError(f"{path}: the checkpoint is a "
                         f"{'stylisation' if stored['content_layers'] else 'texture'} "
                         "run; give content exactly when resuming a stylisation run")
    return previous


def plan_run(sources: Sequence[SignalSource], *, features: FeatureSpec | None,
             options: Mapping[str, Any], domain: Domain | str | None, stylising: bool,
             size: tuple[int, ...] | None, training: Mapping[str, Any],
             seed: int | None, device: str | torch.device | None,
             checkpoint: Path | None, resume: bool,
             generator_options: Mapping[str, Any] | None,
             manager: PluginManager, dist: distributed.DistributedContext) -> RunPlan:
    """Resolve a run's settings: from the checkpoint when resuming (what is given must
    match it), else from the arguments and defaults. ``training`` holds the
    ``batch_size``, ``lr``, ``lr_step``, ``lr_decay``, ``style_weight`` and
    ``content_weight`` arguments (``None``: default, or as stored)."""
    items = list(sources)
    dom = resolve_domain(domain, items[0], manager=manager)
    given = {**{f"training.{k}": v for k, v in training.items()
                if k not in ("style_weight", "content_weight")},
             "loss.style_weight": training.get("style_weight"),
             "loss.content_weight": training.get("content_weight"),
             "training.size": list(size) if size is not None else None, "seed": seed,
             "generator.name": training.get("generator"),
             **_given_features(features, options)}
    given.pop("training.generator", None)
    previous = None
    if resume and checkpoint is not None and checkpoint.exists():
        previous = _resumed(checkpoint, dom, given, generator_options, stylising)
        run = previous.settings
        spec, used_seed = FeatureSpec.from_settings(run), seed_everything(int(run["seed"]))
        run_training, loss = dict(run["training"]), dict(run["loss"])
    else:
        spec = (features or FeatureSpec()).replace(**options)
        used_seed = seed_everything(dist.agree_seed(seed))
        run_training, loss = _new_settings(
            spec, stylising, training.get("batch_size"), training.get("lr"),
            training.get("lr_step"), training.get("lr_decay"),
            training.get("style_weight"), training.get("content_weight"))
    feats = prepare(spec, dom, seed=used_seed, stylising=stylising, device=device,
                    manager=manager)
    signals = [as_signal(item, dom) for item in items]
    digests = [_digest_signal(s) for s in signals]
    if previous is not None and previous.settings["training"]["exemplar_sha256"] != digests:
        raise UsageError(f"{checkpoint}: the checkpoint was trained on a different "
                         "exemplar; pass the same exemplar, or resume=False to start over",
                         parameter="resume=False")
    if previous is None:
        run_training["size"] = list(tuple(size) if size is not None
                                    else _default_size(dom, signals[0]))
    run_training["exemplar_sha256"] = digests
    plan = RunPlan(features=feats, seed=used_seed, training=run_training, loss=loss,
                   exemplars=signals, sources=items, previous=previous)
    dom.check_size(plan.extents, what="training size")
    if int(run_training["batch_size"]) < 1:
        raise UsageError(f"batch_size must be at least 1, got {run_training['batch_size']}",
                         parameter="batch_size")
    dist.shard(int(run_training["batch_size"]))  # the global batch must split evenly
    return plan


def _local_batch(plan: RunPlan, dist: distributed.DistributedContext) -> int:
    """Samples per step on this process (the global batch split over the processes)."""
    return max(1, int(plan.training["batch_size"]) // max(1, dist.world_size))


def _check_weights_fit(config: GeneratorConfig, plan: RunPlan, batch: int,
                       manager: PluginManager) -> None:
    """Build ``config`` on the ``meta`` device (no memory) and refuse a run whose weights,
    gradients and Adam moments (4 copies), plus the widest layer's maps and their
    gradients for ``batch`` samples of the training size, cannot fit."""
    try:
        with torch.device("meta"):
            shaped = manager.create_generator(config)
    except (RuntimeError, NotImplementedError):
        return  # cannot be built without memory; the measured check follows
    device = plan.features.device
    weights = sum(p.numel() * p.element_size() for p in shaped.parameters())
    count = sum(p.numel() for p in shaped.parameters())
    check_fits(4 * weights, device,
               what=f"training generator {config.name!r} ({count:.3g} weights)",
               advice="use fewer channels or scales (generator_options), or set "
                      "TEXSYNTH_MEMORY_CHECK=0 to try anyway", parameter=())
    widest = max([int(w) for m in shaped.modules()
                  if isinstance(w := getattr(m, "out_channels", None), int)],
                 default=config.out_channels)
    maps = 4 * batch * math.prod(plan.extents) * (2 * widest + config.out_channels)
    check_fits(4 * weights + maps, device,
               what=f"training with batch {batch} at "
                    f"{plan.features.domain.describe_size(plan.extents)}",
               advice=_ADVICE, parameter=_ADVICE_NAMES)


def _build_generator(plan: RunPlan, name: str | None, options: Mapping[str, Any] | None,
                     checkpoint: Path | None, manager: PluginManager, *,
                     batch: int = 1, memory_check: bool = True) -> Generator:
    """The generator: rebuilt from the checkpoint, or new with weights drawn from the seed
    (in train mode, on the CPU). With ``memory_check``, a new generator whose training
    cannot fit (:func:`_check_weights_fit`, ``batch`` samples per step) is refused before
    it is built."""
    if plan.previous is not None:
        return build_generator(plan.previous, checkpoint or "", manager=manager)
    dom = plan.features.domain
    stylising = bool(plan.features.content_layers)
    channels = plan.exemplars[0].shape[1]
    inputs = channels if stylising else 0
    if plan.regions is not None:  # a doodle's region masks
        inputs = len(plan.regions.exemplars)
    config = GeneratorConfig(
        name=name or ("pyramid-stylize" if stylising else "pyramid"),
        spatial_dims=dom.spatial_dims, out_channels=channels, content_channels=inputs,
        options={"value_range": list(dom.value_range),
                 **dict(dom.defaults().get("generator_options", {})),
                 **dict(options or {})})
    if memory_check and memory_check_enabled():
        _check_weights_fit(config, plan, batch, manager)
    torch.manual_seed(plan.seed)
    return manager.create_generator(config)


def _check_step_fits(plan: RunPlan, gen: Generator, objective: TextureObjective,
                     batch: int) -> None:
    """Measure one training step (forward and backward of a copy of ``gen`` and the loss)
    on one sample of at most :data:`PROBE_EXTENT` per axis and refuse the run if that,
    scaled to ``batch`` samples of the training size, plus the weights' gradients and
    Adam moments cannot fit. Nothing of the run changes: the copy takes the step, with
    its own noise."""
    extents, dom, device = plan.extents, plan.features.domain, plan.features.device
    low = max(PROBE_EXTENT, dom.min_extent(), gen.min_extent())
    probe = tuple(min(e, low) for e in extents)
    if batch == 1 and probe == extents:
        return  # the first step is the cheapest measurement
    rng = torch.Generator().manual_seed(0)
    twin = copy.deepcopy(gen).to(device).train()
    content = None
    if twin.config.content_channels:
        lo, hi = dom.value_range
        content = (lo + (hi - lo) * torch.rand(1, twin.config.content_channels, *probe,
                                               generator=rng)).to(device)
    fixed = [*twin.parameters(), *twin.buffers(), *objective.parameters(),
             *objective.buffers()]
    try:
        noise = twin.make_noise(1, probe, generator=rng, device=device)
        with objective.probing():  # leaves random loss streams where they were
            measured = saved_bytes(lambda: batch_loss(objective, twin(noise, content),
                                                      content), exclude=fixed)
    except UsageError:
        return  # the probe is too small for this extractor; the run reports its own errors
    weights = sum(p.numel() * p.element_size() for p in gen.parameters())
    scale = batch * math.prod(extents) / math.prod(probe)
    estimate = int(measured * scale * BACKWARD_FACTOR) + 4 * weights
    check_fits(estimate, device, what=f"training with batch {batch} at "
                                      f"{dom.describe_size(extents)}",
               advice=_ADVICE, parameter=_ADVICE_NAMES)


def _plan_regions(plan: RunPlan, kind: str | None,
                  exemplar_guides: Sequence[GuideSource] | None, checkpoint: Path | None
                  ) -> None:
    """Set the regions of a doodle-conditioned or blend run (``training[kind]``: their
    number, names and palette), checked against a resumed run's."""
    if plan.previous is not None:
        stored_kind = next((k for k in ("doodles", "blends") if plan.training.get(k)), None)
        if stored_kind != kind:
            flag = f"--{stored_kind}" if stored_kind else "neither --doodles nor --blends"
            raise UsageError(f"{checkpoint}: the checkpoint is a "
                             f"{_KINDS[stored_kind]} run; pass {flag} to resume it",
                             parameter=kind or stored_kind or "doodles")
    if kind is None:
        return
    dom = plan.features.domain
    regions = exemplar_regions(dom, [tuple(s.shape[2:]) for s in plan.exemplars],
                               exemplar_guides)
    if kind == "blends" and len(regions.exemplars) < 2:
        raise UsageError("a blend generator needs at least two exemplars",
                         parameter="blends")
    palette = None if regions.palette is None else regions.palette.tolist()
    stored = plan.training.get(kind) if plan.previous is not None else None
    if stored is not None and stored.get("palette") != palette:
        raise UsageError(f"{checkpoint}: the checkpoint was trained with other exemplar "
                         "guides", parameter="exemplar_guides")
    plan.training[kind] = {"regions": len(regions.exemplars), "names": list(regions.names),
                           "palette": palette}
    plan.regions = regions


#: What a run conditioned on regions is called in messages.
_KINDS = {None: "plain", "doodles": "doodle-conditioned", "blends": "blend"}


def _objective(plan: RunPlan, manager: PluginManager) -> TextureObjective:
    loss = plan.loss
    spec = dataclasses.replace(plan.features.spec, layer_weights=loss["layer_weights"],
                               texture_loss=loss["texture_loss"],
                               normalize=loss["normalize"],
                               batch_gram=bool(loss.get("batch_gram", False)),
                               value_weight=float(loss.get("value_weight", 0.0)))
    features = dataclasses.replace(plan.features, spec=spec)
    guidance = None
    if plan.regions is not None:
        weighting: RegionWeighting = "area" if plan.training.get("blends") else "equal"
        guidance = Guidance(None, plan.regions.exemplars, plan.regions.names, weighting)
    return features.objective(plan.exemplars, style_weight=loss["style_weight"],
                              content_weight=loss["content_weight"], manager=manager,
                              guidance=guidance)


def batch_loss(objective: TextureObjective, signal: torch.Tensor,
               inputs: torch.Tensor | None) -> torch.Tensor:
    """The loss of a generated batch given the generator's second input: the content it
    repainted, or (a guided objective) the doodle whose region masks it followed."""
    if objective.guided:
        return objective(signal, masks=inputs)
    return objective(signal, inputs)


class _Trainer:
    """The optimisation state of one run and its loop (Adam, step schedule, noise stream,
    checkpoints, signal handling)."""

    def __init__(self, plan: RunPlan, gen: Generator, objective: TextureObjective,
                 contents: BatchSource | None, dist: distributed.DistributedContext,
                 checkpoint: Path | None) -> None:
        self.plan, self.gen, self.objective = plan, gen, objective
        self.contents, self.dist, self.path = contents, dist, checkpoint
        self.device = plan.features.device
        gen.to(self.device).train()
        self.model = dist.wrap(gen)  # DistributedDataParallel under torchrun, else gen
        training = plan.training
        self.optimizer = torch.optim.Adam(gen.parameters(), lr=float(training["lr"]))
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=int(training["lr_step"]),
            gamma=float(training["lr_decay"]))
        self.rng = torch.Generator().manual_seed(plan.seed)
        self.losses: list[float] = []
        self.step = 0
        self.settings: dict[str, Any] = {}

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
            settings=self.settings, step=self.step, generator_state=self.gen.state_dict(),
            losses=self.losses, optimizer_state=self.optimizer.state_dict(),
            scheduler_state=self.scheduler.state_dict(), rng_state=rng_state))

    def train_step(self) -> float:
        """One Adam step on a fresh global batch; returns the batch's loss."""
        batch, extents, dev = int(self.plan.training["batch_size"]), self.plan.extents, \
            self.device
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
        (:func:`recalibrate_batch_norm`, ``training["norm_batches"]`` batches); whether
        they changed. The generator goes back to training mode."""
        batches = int(self.plan.training.get("norm_batches", 0))
        if batches <= 0:
            return False
        changed = recalibrate_batch_norm(
            self.gen, batches, int(self.plan.training["batch_size"]), self.plan.extents,
            seed=(self.plan.seed + 1) % 2**63, contents=self.contents, device=self.device)
        self.gen.train()
        return changed

    def loop(self, iterations: int, checkpoint_every: int, progress: bool,
             callback: TrainCallback | None) -> None:
        """Train up to ``iterations`` steps, checkpointing as documented."""
        if self.path is not None and self.dist.is_main:
            # this run owns the checkpoint: partial files of a killed earlier run can go
            remove_stale_temps(self.path)
        bar = tqdm(total=iterations, initial=min(self.step, iterations), desc="train",
                   unit="step", disable=not progress or not self.dist.is_main,
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


def _run_settings(plan: RunPlan, gen: Generator, contents: BatchSource | None,
                  iterations: int, world_size: int) -> dict[str, Any]:
    """The settings stored in the checkpoint and returned in :class:`TrainResult`."""
    feats = plan.features
    plan.training.update({
        "iterations": iterations,
        "exemplars": [describe_source(i) for i in plan.sources],
        "content": contents.describe() if contents is not None else None,
        "device": str(feats.device),
        "processes": world_size,
    })
    return {
        "command": "train",
        "domain": feats.domain.name,
        "domain_config": _jsonable(feats.domain.config()),
        "seed": plan.seed,
        "extractor": feats.config.to_dict(),
        "texture_layers": list(feats.texture_layers),
        "content_layers": list(feats.content_layers),
        **({"also": feats.also_settings()} if feats.also else {}),
        "loss": plan.loss,
        "generator": gen.config.to_dict(),
        "training": plan.training,
    }


def train_generator(
    exemplar: SignalSource | Sequence[SignalSource],
    *,
    features: FeatureSpec | None = None,
    domain: Domain | str | None = None,
    content: ContentSource | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    generator: str | None = None,
    generator_options: Mapping[str, Any] | None = None,
    size: tuple[int, ...] | None = None,
    batch_size: int | None = None,
    iterations: int = 2000,
    lr: float | None = None,
    lr_step: int | None = None,
    lr_decay: float | None = None,
    seed: int | None = None,
    device: str | torch.device | None = "auto",
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    progress: bool = True,
    callback: TrainCallback | None = None,
    manager: PluginManager | None = None,
    memory_check: bool = True,
    norm_batches: int | None = None,
    doodles: bool = False,
    exemplar_guides: Sequence[GuideSource] | None = None,
    blends: bool = False,
    **options: Unpack[FeatureOptions],
) -> TrainResult:
    """Train a feed-forward texture (or stylisation) generator on an exemplar.

    Args:
        exemplar: texture exemplar: a signal ``(1, C, *spatial)``, a file, or a list
            (their Gram matrices are averaged).
        domain: domain object or name; default: from the exemplar's file suffix.
        features: what to match (extractor, layers, loss; see
            :class:`~texsynth.stats.features.FeatureSpec`); default: the domain's default extractor
            (random weights are seeded with ``seed``), its layers, Gram matrices with
            ``"chw"`` normalisation (as Ulyanov et al.).
        content: stylisation content: a folder of the domain's files, a file, a signal
            batch ``(N, C, *spatial)`` or a list; each training batch holds random crops of
            ``size`` from random items. ``None`` trains a texture generator.
        content_weight: β, weight of the content loss (default 1).
        style_weight: α, weight of the texture loss (default 1).
        generator: registered architecture; default ``"pyramid"`` (``"pyramid-stylize"``
            with content).
        generator_options: architecture options (see :data:`texsynth.feedforward.pyramid.DEFAULT_OPTIONS`;
            ``value_range`` and the domain's ``generator_options`` from
            :meth:`Domain.defaults` fill in what is not given).
        size: training extents in tensor order; default: the exemplar's, capped by the
            domain's ``train_size`` (:meth:`Domain.defaults`).
        batch_size: samples per step (default 4; the paper used 16).
        iterations: total steps of the run (a resumed run continues up to this number).
        lr: Adam learning rate. Default 0.01: Ulyanov et al. used 0.1, but with the
            sigmoid output here 0.01 reached the lowest loss fastest for both norms when
            we compared 0.1, 0.01 and 0.001 (300 steps, 64² crops, 5 scales); 0.1 ended
            4–8× higher.
        lr_step: multiply the learning rate by ``lr_decay`` every ``lr_step`` steps
            (defaults 1000 and 0.7, following Ulyanov et al.).
        lr_decay: see ``lr_step``.
        seed: seed of the generator's initial weights, the noise, the content crops and
            random extractor weights; drawn at random when ``None`` (and stored).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
        checkpoint: checkpoint file; written every ``checkpoint_every`` steps, at the end
            and on Ctrl-C/SIGTERM. ``None`` writes nothing.
        checkpoint_every: steps between checkpoints (0: only at the end and on interrupt).
        resume: continue the run stored in ``checkpoint`` if that file exists (its
            settings are used; settings given here must match them). Without ``resume``
            an existing file is overwritten by the new run.
        progress: show a tqdm bar with the loss.
        callback: ``callback(step, loss, generator)`` after every step.
        manager: plugin manager (default: the process-wide one).
        memory_check: estimate the memory of a training step first and refuse with
            :class:`~texsynth.errors.ResourceError` when it cannot fit (see the module
            docstring; ``TEXSYNTH_MEMORY_CHECK=0`` also skips it).
        **options: fields of :class:`~texsynth.stats.features.FeatureSpec` overriding ``features``
            (``extractor``, ``weights``, ``extractor_options``, ``layers``,
            ``content_layers``, ``layer_weights``, ``texture_loss``, ``normalize``,
            ``batch_gram``: match the Gram of the whole batch instead of every sample's,
            see :class:`~texsynth.stats.objective.TextureObjective`).
        norm_batches: after the last step, batches of fresh noise whose statistics
            replace batch norm's running averages (:func:`recalibrate_batch_norm`;
            default 32, or as stored when resuming; 0 keeps the running averages).
        doodles: train a doodle-conditioned generator (Champandard 2016, feed-forward as
            in Ulyanov et al.'s demo): its second input is the region masks
            ``(N, K, *size)`` of a guide, and every region takes its exemplar's texture.
            Each batch draws new random doodles (:func:`texsynth.controls.doodles.random_doodles`)
            and the loss is the guided Gram loss
            (:class:`~texsynth.stats.guided.GuidedTextureLoss`) on their masks. Paint a doodle
            and :func:`texsynth.apply` it. Region ``k`` is exemplar ``k`` (a doodle's
            colours are then taken darkest first) unless ``exemplar_guides`` are given.
        exemplar_guides: with ``doodles``, one guide per exemplar whose values (colours)
            name the regions; a doodle's colours then pick them.
        blends: train a blend generator, conditioned on a texture code: its second input
            is ``K`` constant maps, the blend weights of the ``K`` exemplars (uniform on
            the simplex each sample, :class:`~texsynth.controls.doodles.BlendSet`), and the loss
            is ``Σ_k w_k ‖G(x) − G_k‖²``, minimal at the blended statistics. Sampling it
            with weights (:func:`texsynth.sample`'s ``blend``) moves from one texture to
            another like a slider.

    On resume, feature settings that are given (keyword options, or fields of
    ``features`` other than :class:`~texsynth.stats.features.FeatureSpec`'s defaults) must equal
    the checkpoint's; the rest are taken from it.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the run is data-parallel: see
    :mod:`texsynth.feedforward.distributed` (``batch_size`` must be a multiple of the number of
    processes; only rank 0 writes the checkpoint and shows progress).

    Returns:
        :class:`TrainResult`; its generator is in eval mode.

    Raises:
        ResourceError: the run will not fit in memory (see ``memory_check``).
        KeyboardInterrupt: after Ctrl-C, once the checkpoint is saved (SIGTERM is handed to
            the previous SIGTERM handler, by default ending the process).
    """
    manager = manager or get_plugin_manager()
    if iterations < 0:
        raise UsageError(f"iterations must be at least 0, got {iterations}",
                         parameter="iterations")
    if checkpoint_every < 0:
        raise UsageError(f"checkpoint_every must be at least 0, got {checkpoint_every}",
                         parameter="checkpoint_every")
    if norm_batches is not None and norm_batches < 0:
        raise UsageError(f"norm_batches must be at least 0, got {norm_batches}",
                         parameter="norm_batches")
    items = signal_sources(exemplar)
    if not items:
        raise UsageError("at least one exemplar is needed")
    if (doodles or blends) and content is not None:
        raise UsageError("a doodle or blend generator takes region masks, not content",
                         parameter="doodles" if doodles else "blends")
    if doodles and blends:
        raise UsageError("a generator takes doodles or blends, not both", parameter="blends")
    if exemplar_guides and not doodles:
        raise UsageError("exemplar guides are for a doodle-conditioned generator "
                         "(doodles=True, --doodles)", parameter="doodles")
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    dist = distributed.setup(device)  # does nothing outside torchrun
    gen: Generator | None = None
    try:
        plan = plan_run(
            items, features=features, options=dict(options), domain=domain,
            stylising=content is not None, size=size,
            training={"batch_size": batch_size, "lr": lr, "lr_step": lr_step,
                      "lr_decay": lr_decay, "style_weight": style_weight,
                      "content_weight": content_weight, "generator": generator},
            seed=seed, device=dist.device or device, checkpoint=ckpt_path, resume=resume,
            generator_options=generator_options, manager=manager, dist=dist)
        plan.training["norm_batches"] = int(
            norm_batches if norm_batches is not None
            else plan.training.get("norm_batches", DEFAULTS["norm_batches"]))
        contents: BatchSource | None = None
        if content is not None:
            contents = ContentSet(content, plan.features.domain)
        kind = "doodles" if doodles else "blends" if blends else None
        _plan_regions(plan, kind, exemplar_guides, ckpt_path)
        if plan.regions is not None:
            regions = len(plan.regions.exemplars)
            contents = DoodleSet(regions) if doodles else BlendSet(regions)
        checking = memory_check and memory_check_enabled()
        batch = _local_batch(plan, dist)
        gen = _build_generator(plan, generator, generator_options, ckpt_path, manager,
                               batch=batch, memory_check=checking)
        objective = _objective(plan, manager)
        if checking:
            _check_step_fits(plan, gen, objective, batch)
        trainer = _Trainer(plan, gen, objective, contents, dist, ckpt_path)
        trainer.restore()
        trainer.settings = _run_settings(plan, gen, contents, iterations, dist.world_size)
        trainer.loop(iterations, checkpoint_every, progress, callback)
    finally:
        if gen is not None:
            dist.unwrap(gen)
        dist.close()
    gen.eval()
    settings = {**trainer.settings, "step": trainer.step,
                "final_loss": trainer.losses[-1] if trainer.losses else math.nan}
    return TrainResult(generator=gen, losses=trainer.losses, settings=settings,
                       checkpoint=ckpt_path)
