"""The settings a training run stores: one frozen :class:`TrainSettings`, built once when
the run is set up, that its checkpoint writes and
:class:`~texsynth.feedforward.training.TrainResult` returns (:meth:`TrainSettings.to_json`).

Its sections are typed (:class:`LossSettings`, :class:`TrainingSettings` with the run's
:class:`Schedule` and, for a conditioned generator, its :class:`RegionSettings`); the
extractor and generator are kept as their configs write them. A resumed run reads the
loss and schedule back from the checkpoint; what the stored sections hold beyond what
this version sets (settings of another texsynth version) is written back unchanged, so
resuming changes no stored key or value other than the run's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..controls.regions import Regions
from ..stats.features import FeatureSpec
from ..stats.losses import GramNormalization

__all__ = ["DEFAULTS", "LossSettings", "RegionSettings", "Schedule", "TrainSettings",
           "TrainingSettings", "jsonable"]

#: Defaults of the settings that define a run (``None`` in the signature means these).
#: ``lr``: Ulyanov et al. used 0.1, but with the sigmoid output here 0.01 reached the
#: lowest loss fastest for both norms when we compared 0.1, 0.01 and 0.001 (300 steps,
#: 64² crops, 5 scales); 0.1 ended 4–8× higher.
DEFAULTS: dict[str, Any] = {
    "batch_size": 4,      # paper: 16; 4 keeps CPU steps affordable
    "lr": 0.01,           # Adam; see above
    "lr_step": 1000,      # decay every 1000 steps ...
    "lr_decay": 0.7,      # ... by ×0.7 (Ulyanov et al.)
    "style_weight": 1.0,
    "content_weight": 1.0,
    "norm_batches": 32,   # batches that set batch norm's statistics after training
}


def jsonable(value: Any) -> Any:
    """``value`` with mappings as dicts of string keys and tuples as lists (how it reads
    back from JSON, so given and stored settings compare equal)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class LossSettings:
    """``settings["loss"]``: the texture loss and how the objective weighs its terms.

    Attributes:
        texture_loss: registered texture-loss name (or weighted sum of names).
        normalize: Gram normalisation.
        layer_weights: ``{layer: weight}`` of the texture loss (missing layers weigh 1).
        style_weight: α, the weight of the texture loss.
        content_weight: β, the weight of the content loss (0 for a texture generator).
        batch_gram: match the Gram matrix of the whole batch; ``None``: not stored (a
            checkpoint older than the setting), read as ``False``.
        value_weight: weight of the value term; ``None``: not stored, read as 0.
        stored: the loss settings of the checkpoint being resumed (``{}`` for a new run);
            what they hold beyond the fields above is written back unchanged.
    """

    texture_loss: str
    normalize: GramNormalization
    layer_weights: Mapping[str, float]
    style_weight: float
    content_weight: float
    batch_gram: bool | None = None
    value_weight: float | None = None
    stored: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, spec: FeatureSpec, *, stylising: bool, style_weight: float | None,
            content_weight: float | None) -> LossSettings:
        """A new run's: ``spec``'s loss, the given weights or :data:`DEFAULTS` (the
        content weight is 0 unless ``stylising``)."""
        return cls(
            texture_loss=spec.texture_loss, normalize=spec.normalize,
            batch_gram=bool(spec.batch_gram), value_weight=float(spec.value_weight),
            layer_weights=dict(spec.layer_weights),
            style_weight=float(style_weight if style_weight is not None
                               else DEFAULTS["style_weight"]),
            content_weight=float(content_weight if content_weight is not None
                                 else DEFAULTS["content_weight"]) if stylising else 0.0)

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> LossSettings:
        """The settings of a checkpoint's ``loss`` section (values as stored)."""
        return cls(texture_loss=stored["texture_loss"], normalize=stored["normalize"],
                   layer_weights=stored["layer_weights"],
                   style_weight=stored["style_weight"],
                   content_weight=stored["content_weight"],
                   batch_gram=stored.get("batch_gram"),
                   value_weight=stored.get("value_weight"), stored=stored)

    def to_json(self) -> dict[str, Any]:
        """The ``loss`` section as the checkpoint stores it."""
        own: dict[str, Any] = {"texture_loss": self.texture_loss,
                               "normalize": self.normalize}
        if self.batch_gram is not None:
            own["batch_gram"] = self.batch_gram
        if self.value_weight is not None:
            own["value_weight"] = self.value_weight
        own.update(layer_weights=self.layer_weights, style_weight=self.style_weight,
                   content_weight=self.content_weight)
        return {**self.stored, **own}


@dataclass(frozen=True)
class Schedule:
    """How the generator is trained: given (or :data:`DEFAULTS`) for a new run, as stored
    when resuming.

    Attributes:
        size: training extents in tensor order.
        batch_size: samples per step (the global batch of a distributed run).
        lr: Adam's learning rate ...
        lr_step: ... multiplied by ``lr_decay`` every ``lr_step`` steps.
        lr_decay: see ``lr_step``.
        norm_batches: batches of fresh noise that set batch norm's statistics after the
            last step (0: keep the running averages).
    """

    size: Sequence[int]
    batch_size: int
    lr: float
    lr_step: int
    lr_decay: float
    norm_batches: int

    @property
    def extents(self) -> tuple[int, ...]:
        """The training size (tensor order)."""
        return tuple(int(e) for e in self.size)


@dataclass(frozen=True)
class RegionSettings:
    """``settings["training"]["doodles"]`` (or ``["blends"]``): the regions a doodle-
    conditioned (blend) generator takes as its second input, one mask per region.

    Attributes:
        kind: ``"doodles"`` or ``"blends"``, the key they are stored under.
        regions: the number of regions (exemplars).
        names: the regions' names.
        palette: the value vector of every region ``(K, V)`` as nested lists, when the
            exemplars have guides; ``None``: region ``k`` is exemplar ``k``.
    """

    kind: str
    regions: int
    names: tuple[str, ...]
    palette: list[Any] | None

    @classmethod
    def of(cls, kind: str, regions: Regions) -> RegionSettings:
        """The settings of ``regions``."""
        palette = None if regions.palette is None else regions.palette.tolist()
        return cls(kind, len(regions.exemplars), tuple(regions.names), palette)

    def to_json(self) -> dict[str, Any]:
        """The entry as the checkpoint stores it."""
        return {"regions": self.regions, "names": list(self.names), "palette": self.palette}


@dataclass(frozen=True)
class TrainingSettings:
    """``settings["training"]``: the schedule and what the run trained on.

    Attributes:
        schedule: the run's :class:`Schedule`.
        exemplar_sha256: a digest of every exemplar signal (a resumed run must use the
            same exemplars).
        regions: a conditioned generator's regions, else ``None``.
        iterations: the run's total steps.
        exemplars: the exemplars as given: paths, or ``"<tensor>"``.
        content: the second input as its source describes it (content items, random
            doodles or blends), or ``None``.
        device: where the run trained.
        processes: the number of processes of a distributed run (1 otherwise).
        stored: the training settings of the checkpoint being resumed (``{}`` for a new
            run); what they hold beyond the fields above is written back unchanged.
    """

    schedule: Schedule
    exemplar_sha256: Sequence[str]
    regions: RegionSettings | None
    iterations: int
    exemplars: Sequence[str]
    content: list[str] | None
    device: str
    processes: int
    stored: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``training`` section as the checkpoint stores it."""
        plan = self.schedule
        own: dict[str, Any] = {
            "batch_size": plan.batch_size, "lr": plan.lr, "lr_step": plan.lr_step,
            "lr_decay": plan.lr_decay, "size": list(plan.size),
            "exemplar_sha256": list(self.exemplar_sha256), "norm_batches": plan.norm_batches,
        }
        if self.regions is not None:
            own[self.regions.kind] = self.regions.to_json()
        own.update(iterations=self.iterations, exemplars=list(self.exemplars),
                   content=self.content, device=self.device, processes=self.processes)
        return {**self.stored, **own}


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run stores: what rebuilds its features and generator, and how
    it was trained. JSON-serialisable through :meth:`to_json`.

    Attributes:
        domain: the domain's name.
        domain_config: the domain's settings (:meth:`~texsynth.domain.Domain.config`).
        seed: the run's seed.
        extractor: the extractor's config, as
            :meth:`~texsynth.extractor.ExtractorConfig.to_dict` writes it.
        texture_layers: the layers whose statistics are matched.
        content_layers: the layers matched to the content (empty for a texture generator).
        also: the further statistics' settings
            (:meth:`~texsynth.stats.features.Features.also_settings`; empty: none, and not
            written).
        loss: the :class:`LossSettings`.
        generator: the generator's config, as
            :meth:`~texsynth.generator.GeneratorConfig.to_dict` writes it.
        training: the :class:`TrainingSettings`.
    """

    domain: str
    domain_config: Mapping[str, Any]
    seed: int
    extractor: Mapping[str, Any]
    texture_layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    also: list[dict[str, Any]]
    loss: LossSettings
    generator: Mapping[str, Any]
    training: TrainingSettings

    def to_json(self) -> dict[str, Any]:
        """The settings as the checkpoint stores them (``command`` is ``"train"``)."""
        return {
            "command": "train",
            "domain": self.domain,
            "domain_config": self.domain_config,
            "seed": self.seed,
            "extractor": self.extractor,
            "texture_layers": list(self.texture_layers),
            "content_layers": list(self.content_layers),
            **({"also": self.also} if self.also else {}),
            "loss": self.loss.to_json(),
            "generator": self.generator,
            "training": self.training.to_json(),
        }
