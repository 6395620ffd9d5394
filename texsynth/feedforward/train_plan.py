"""Planning a training run before anything is trained: the caller's :class:`TrainRequest`,
checked, and the :class:`RunPlan` resolved from it (:func:`plan_run`), new or from the
checkpoint being resumed.

A new run takes the request's settings and :data:`~texsynth.feedforward.train_settings.DEFAULTS`.
A resumed run takes the checkpoint's; what the request gives must equal them (a feature
setting is given when it is a keyword option or a field of ``features`` other than
:class:`~texsynth.stats.features.FeatureSpec`'s defaults), and the exemplars must be the
same signals (their digests are stored). :func:`plan_run` also starts the run's
:class:`~texsynth.runtime.context.RunContext`, seeding every random stream once the seed
is known: the stored one when resuming, else the given one (or one drawn, agreed by all
processes of a distributed run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ..controls.doodles import BlendSet, DoodleSet
from ..controls.regions import GuideSource, Regions, exemplar_regions
from ..domain import Domain
from ..errors import InputError, UsageError
from ..extractor import ExtractorConfig
from ..generator import GeneratorConfig
from ..plugins import PluginManager
from ..runtime.context import RunContext
from ..stats.features import (
    Features,
    FeatureSpec,
    SignalSource,
    also_summary,
    as_signal,
    describe_source,
    prepare,
    resolve_domain,
    signal_sources,
    spec_from_defaults,
)
from .batches import BatchSource, ContentSet, ContentSource
from .checkpoint import Checkpoint, load_checkpoint
from .distributed import DistributedContext
from .train_settings import (
    DEFAULTS,
    LossSettings,
    RegionSettings,
    Schedule,
    TrainingSettings,
    TrainSettings,
    jsonable,
)

__all__ = ["RunPlan", "TrainRequest", "plan_run"]


@dataclass(frozen=True, kw_only=True)
class TrainRequest:
    """What the caller of :func:`~texsynth.feedforward.training.train_generator` asked for,
    checked on construction (its arguments of the same names; ``None``: the default, or
    as stored when resuming). ``manager`` is resolved, ``options`` are the
    :class:`~texsynth.stats.features.FeatureSpec` fields given as keywords.

    Raises:
        UsageError: negative counts, no exemplar, or conditioning that does not fit.
    """

    exemplar: SignalSource | Sequence[SignalSource]
    manager: PluginManager
    features: FeatureSpec | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    domain: Domain | str | None = None
    content: ContentSource | None = None
    content_weight: float | None = None
    style_weight: float | None = None
    generator: str | None = None
    generator_options: Mapping[str, Any] | None = None
    size: tuple[int, ...] | None = None
    batch_size: int | None = None
    iterations: int = 2000
    lr: float | None = None
    lr_step: int | None = None
    lr_decay: float | None = None
    seed: int | None = None
    device: str | torch.device | None = "auto"
    checkpoint: str | os.PathLike[str] | None = None
    checkpoint_every: int = 100
    resume: bool = False
    progress: bool = True
    memory_check: bool = True
    norm_batches: int | None = None
    doodles: bool = False
    exemplar_guides: Sequence[GuideSource] | None = None
    blends: bool = False

    def __post_init__(self) -> None:
        for name in ("iterations", "checkpoint_every", "norm_batches"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"{name} must be at least 0, got {value}", parameter=name)
        if not self.sources:
            raise UsageError("at least one exemplar is needed")
        if (self.doodles or self.blends) and self.content is not None:
            raise UsageError("a doodle or blend generator takes region masks, not content",
                             parameter="doodles" if self.doodles else "blends")
        if self.doodles and self.blends:
            raise UsageError("a generator takes doodles or blends, not both",
                             parameter="blends")
        if self.exemplar_guides and not self.doodles:
            raise UsageError("exemplar guides are for a doodle-conditioned generator "
                             "(doodles=True, --doodles)", parameter="doodles")

    @cached_property
    def sources(self) -> list[SignalSource]:
        """The exemplars as a list."""
        return signal_sources(self.exemplar)

    @property
    def stylising(self) -> bool:
        """Whether this trains a stylisation generator (content is given)."""
        return self.content is not None

    @property
    def conditioning(self) -> str | None:
        """``"doodles"`` or ``"blends"`` for a generator conditioned on regions, else
        ``None``."""
        return "doodles" if self.doodles else "blends" if self.blends else None

    @property
    def checkpoint_path(self) -> Path | None:
        """The checkpoint file, if any."""
        return Path(self.checkpoint) if self.checkpoint is not None else None


@dataclass(frozen=True)
class RunPlan:
    """A training run's settings and inputs, resolved before anything is trained.

    Attributes:
        features: the prepared features (domain, extractor, layers, loss settings).
        schedule: how the generator is trained.
        loss: the texture loss and the weights of the objective's terms.
        exemplars: the exemplar signals ``(1, C, *spatial)``.
        sources: the exemplars as given (paths or tensors).
        digests: a digest of every exemplar signal.
        contents: where each batch's second input comes from (content crops, random
            doodles or blends), or ``None`` for a texture generator.
        previous: the checkpoint being resumed, or ``None`` for a new run.
        conditioning: ``"doodles"`` or ``"blends"`` for a generator conditioned on
            regions, else ``None``.
        regions: the exemplars' regions of such a generator, else ``None``.
    """

    features: Features
    schedule: Schedule
    loss: LossSettings
    exemplars: list[torch.Tensor]
    sources: list[SignalSource]
    digests: list[str]
    contents: BatchSource | None = None
    previous: Checkpoint | None = None
    conditioning: str | None = None
    regions: Regions | None = None

    @property
    def extents(self) -> tuple[int, ...]:
        """The training size (tensor order)."""
        return self.schedule.extents

    def settings(self, context: RunContext, generator: GeneratorConfig, *, iterations: int,
                 processes: int) -> TrainSettings:
        """The settings the run stores: this plan's, with the ``generator`` it trains
        for ``iterations`` steps in ``processes`` processes."""
        feats = self.features
        stored = self.previous.settings if self.previous is not None else {}
        regions = None
        if self.conditioning is not None and self.regions is not None:
            regions = RegionSettings.of(self.conditioning, self.regions)
        training = TrainingSettings(
            schedule=self.schedule, exemplar_sha256=self.digests, regions=regions,
            iterations=iterations, exemplars=[describe_source(i) for i in self.sources],
            content=self.contents.describe() if self.contents is not None else None,
            device=str(feats.device), processes=processes,
            stored=dict(stored.get("training", {})))
        return TrainSettings(
            domain=feats.domain.name, domain_config=jsonable(feats.domain.config()),
            seed=context.seed, extractor=feats.config.to_dict(),
            texture_layers=tuple(feats.texture_layers),
            content_layers=tuple(feats.content_layers),
            also=feats.also_settings() if feats.also else [], loss=self.loss,
            generator=generator.to_dict(), training=training)


def plan_run(request: TrainRequest, dist: DistributedContext
             ) -> tuple[RunContext, RunPlan]:
    """Start the run ``request`` asks for: its context, seeded with the run's seed, and
    its plan, from the checkpoint when resuming (what is given must match it), else from
    the request and :data:`~texsynth.feedforward.train_settings.DEFAULTS`.

    Raises:
        UsageError: the request clashes with the checkpoint being resumed, or its sizes
            do not fit the domain or the processes.
        InputError: the checkpoint cannot be resumed (corrupt or tampered).
    """
    sources = request.sources
    dom = resolve_domain(request.domain, sources[0], manager=request.manager)
    given = _given_settings(request)
    path = request.checkpoint_path
    previous: Checkpoint | None = None
    seed: int | None  # None: the context draws one
    if request.resume and path is not None and path.exists():
        previous = _resumed(path, dom, given, request.generator_options, request.stylising)
        spec: FeatureSpec | None = FeatureSpec.from_settings(previous.settings)
        seed = int(previous.settings["seed"])
    else:
        spec, seed = None, dist.agree_seed(request.seed)
    # the device a distributed run chose for this process, else the request's
    context = RunContext.start(seed=seed, device=dist.device or request.device,
                               manager=request.manager, progress=request.progress)
    signals = [as_signal(item, dom) for item in sources]
    digests = [_digest_signal(s) for s in signals]
    if previous is not None and previous.settings["training"]["exemplar_sha256"] != digests:
        raise UsageError(f"{path}: the checkpoint was trained on a different "
                         "exemplar; pass the same exemplar, or resume=False to start over",
                         parameter="resume=False")
    schedule = _schedule(request, previous, dom, signals[0])
    dom.check_size(schedule.extents, what="training size")
    if spec is None:
        spec = _default_spec(request, dom, schedule.extents).replace(**request.options)
    feats = prepare(spec, dom, seed=context.seed, stylising=request.stylising,
                    device=context.device, manager=context.manager)
    if int(schedule.batch_size) < 1:
        raise UsageError(f"batch_size must be at least 1, got {schedule.batch_size}",
                         parameter="batch_size")
    dist.shard(int(schedule.batch_size))  # the global batch must split evenly
    contents: BatchSource | None = None
    if request.content is not None:
        contents = ContentSet(request.content, dom)
    regions = _plan_regions(request, previous, dom, signals)
    if regions is not None:
        count = len(regions.exemplars)
        contents = DoodleSet(count) if request.doodles else BlendSet(count)
    loss = (LossSettings.from_json(dict(previous.settings["loss"])) if previous is not None
            else LossSettings.new(spec, stylising=request.stylising,
                                  style_weight=request.style_weight,
                                  content_weight=request.content_weight))
    return context, RunPlan(
        features=feats, schedule=schedule, loss=loss, exemplars=signals, sources=sources,
        digests=digests, contents=contents, previous=previous,
        conditioning=request.conditioning, regions=regions)


#: Feature settings that say which statistics a run matches: a caller who gives one of
#: them chooses the statistics, and the domain's training defaults are not used.
_STATISTICS = ("extractor", "weights", "extractor_options", "layers", "layer_weights",
               "texture_loss", "also")


def _default_spec(request: TrainRequest, domain: Domain, extents: Sequence[int]
                  ) -> FeatureSpec:
    """``request.features``, else the statistics the domain trains texture generators
    on crops of ``extents`` with (:meth:`~texsynth.domain.Domain.train_features`) when
    the request names none and trains a plain texture generator (no content, doodles or
    blends), else the domain's default extractor with Gram matrices."""
    if request.features is not None:
        return request.features
    plain = request.content is None and not (request.doodles or request.blends)
    named = any(request.options.get(name) is not None for name in _STATISTICS)
    values = domain.train_features(tuple(extents)) if plain and not named else None
    return spec_from_defaults(values) if values else FeatureSpec()


def _digest_signal(signal_: torch.Tensor) -> str:
    data = signal_.detach().cpu().float().contiguous()
    return hashlib.sha256(data.numpy().tobytes()).hexdigest()[:16]


def _default_size(domain: Domain, exemplar: torch.Tensor) -> tuple[int, ...]:
    """The exemplar's extents, capped per axis by the domain's preferred crop size."""
    extents = tuple(int(e) for e in exemplar.shape[2:])
    crop = domain.defaults().get("train_size")
    if crop is None:
        return extents
    return tuple(min(e, int(c)) for e, c in zip(extents, crop, strict=True))


def _schedule(request: TrainRequest, previous: Checkpoint | None, domain: Domain,
              exemplar: torch.Tensor) -> Schedule:
    """The run's schedule: as stored when resuming, else as requested (defaults filled
    in; the size by default the ``exemplar``'s, capped by the domain's crop size). The
    requested ``norm_batches`` applies to a resumed run too."""
    if previous is not None:
        stored = previous.settings["training"]
        size, batch_size, lr = stored["size"], stored["batch_size"], stored["lr"]
        lr_step, lr_decay = stored["lr_step"], stored["lr_decay"]
        norm_batches = stored.get("norm_batches", DEFAULTS["norm_batches"])
    else:
        size = list(tuple(request.size) if request.size is not None
                    else _default_size(domain, exemplar))
        batch_size = request.batch_size or DEFAULTS["batch_size"]
        lr = request.lr if request.lr is not None else DEFAULTS["lr"]
        lr_step = request.lr_step or DEFAULTS["lr_step"]
        lr_decay = request.lr_decay if request.lr_decay is not None else DEFAULTS["lr_decay"]
        norm_batches = DEFAULTS["norm_batches"]
    if request.norm_batches is not None:
        norm_batches = request.norm_batches
    return Schedule(size=size, batch_size=batch_size, lr=lr, lr_step=lr_step,
                    lr_decay=lr_decay, norm_batches=int(norm_batches))


# -- resuming --------------------------------------------------------------------------------
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


def _given_settings(request: TrainRequest) -> dict[str, Any]:
    """The settings ``request`` gives, keyed as in a checkpoint (``"section.name"``;
    ``None``: not given)."""
    return {"training.batch_size": request.batch_size, "training.lr": request.lr,
            "training.lr_step": request.lr_step, "training.lr_decay": request.lr_decay,
            "loss.style_weight": request.style_weight,
            "loss.content_weight": request.content_weight,
            "training.size": list(request.size) if request.size is not None else None,
            "seed": request.seed, "generator.name": request.generator,
            **_given_features(request.features, request.options)}


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
        if jsonable(value) != have.get(name):
            clashes.append(f"{name}={have.get(name)!r} (given {jsonable(value)!r})")
    if clashes:
        raise UsageError(f"{path}: cannot resume with different settings; the checkpoint "
                         f"has {'; '.join(clashes)}. Pass the same settings, or "
                         "resume=False to start over", parameter="resume=False")


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
        if jsonable(value) != stored["generator"]["options"].get(key):
            raise UsageError(f"{path}: cannot resume with generator option "
                             f"{key}={value!r}; the checkpoint has "
                             f"{stored['generator']['options'].get(key)!r}")
    if bool(stored["content_layers"]) != stylising:
        raise UsageError(f"{path}: the checkpoint is a "
                         f"{'stylisation' if stored['content_layers'] else 'texture'} "
                         "run; give content exactly when resuming a stylisation run")
    return previous


# -- regions of a conditioned generator ------------------------------------------------------
#: What a run conditioned on regions is called in messages.
_KINDS = {None: "plain", "doodles": "doodle-conditioned", "blends": "blend"}


def _plan_regions(request: TrainRequest, previous: Checkpoint | None, domain: Domain,
                  exemplars: Sequence[torch.Tensor]) -> Regions | None:
    """The regions of a doodle-conditioned or blend run (``None`` for another run),
    checked against a resumed run's kind and palette."""
    kind, path = request.conditioning, request.checkpoint_path
    stored = previous.settings["training"] if previous is not None else {}
    if previous is not None:
        stored_kind = next((k for k in ("doodles", "blends") if stored.get(k)), None)
        if stored_kind != kind:
            flag = f"--{stored_kind}" if stored_kind else "neither --doodles nor --blends"
            raise UsageError(f"{path}: the checkpoint is a "
                             f"{_KINDS[stored_kind]} run; pass {flag} to resume it",
                             parameter=kind or stored_kind or "doodles")
    if kind is None:
        return None
    regions = exemplar_regions(domain, [tuple(s.shape[2:]) for s in exemplars],
                               request.exemplar_guides)
    if kind == "blends" and len(regions.exemplars) < 2:
        raise UsageError("a blend generator needs at least two exemplars",
                         parameter="blends")
    palette = RegionSettings.of(kind, regions).palette
    entry = stored.get(kind)
    if entry is not None and entry.get("palette") != palette:
        raise UsageError(f"{path}: the checkpoint was trained with other exemplar "
                         "guides", parameter="exemplar_guides")
    return regions
