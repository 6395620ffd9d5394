"""What a run measures, and building it: FeatureSpec -> prepare() -> Features.

Optimisation (:func:`texsynth.synthesize`, :func:`texsynth.stylize`), training
(:func:`texsynth.train_generator`) and refinement (:func:`texsynth.refine`) all describe
their statistics the same way, with one :class:`FeatureSpec`: which extractor (name,
weights, options), which layers, which texture loss and Gram normalisation. :func:`prepare`
turns a spec into a :class:`Features` object for a domain: the extractor built once (on
its defaults, then trimmed to the layers in use), the resolved layers, and the settings
to record. :meth:`Features.objective` then makes the loss to minimise.

>>> spec = FeatureSpec(extractor="random-multiscale", layers=("k3", "k5"))  # doctest: +SKIP
>>> features = prepare(spec, domain, seed=0)                                # doctest: +SKIP
>>> objective = features.objective([exemplar])                              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch

from ..controls.regions import Guidance
from ..domain import Domain
from ..errors import UsageError
from ..extractor import ExtractorConfig, FeatureExtractor
from ..plugins import PluginManager, get_plugin_manager
from ..runtime.device import resolve_device
from .losses import DEFAULT_TEXTURE_LOSS, GramNormalization
from .objective import TextureObjective

__all__ = [
    "FeatureOptions",
    "FeatureSpec",
    "Features",
    "SignalSource",
    "also_summary",
    "as_signal",
    "describe_source",
    "parse_also",
    "prepare",
    "resolve_domain",
    "signal_sources",
    "spec_from_defaults",
]

#: A signal tensor ``(1, C, *spatial)`` or a file to load one from.
SignalSource = torch.Tensor | str | os.PathLike[str]


@dataclass(frozen=True)
class FeatureSpec:
    """The statistics a run matches: extractor, layers and texture loss.

    Attributes:
        extractor: registry name (``"vgg19"``, ``"random-multiscale"`` ...) or a full
            :class:`ExtractorConfig` (whose own seed, weights and options are then used,
            e.g. the one stored with a trained generator); ``None``: the domain's default.
        weights: local weights file for a named extractor (e.g. a VGG19 state dict).
        extractor_options: extractor-specific options for a named extractor
            (``{"pooling": "avg"}``; see ``texsynth plugins``).
        layers: texture layers; ``None``: the extractor's defaults.
        content_layers: content layers (stylisation only); ``None``: the extractor's.
        layer_weights: ``{layer: weight}`` of the texture loss (missing layers weigh 1).
        texture_loss: registered texture-loss name (``"gram"``, ``"sw"``), or a weighted
            sum of them on the same features (``"gram+0.5*sw"``).
        normalize: Gram normalisation, ``"hw"``, ``"chw"`` or ``"none"``
            (see :func:`texsynth.gram_matrix`).
        batch_gram: match the Gram of a whole batch instead of each sample's (training;
            see :class:`~texsynth.stats.objective.TextureObjective`).
        value_weight: weight of the value term, a sliced Wasserstein distance between
            the signal's own value distributions (colours of a picture), which zero-mean
            filters cannot see (see :class:`~texsynth.stats.objective.TextureObjective`);
            ``0``: none.
        also: further statistics added to the texture loss, ``((spec, weight), ...)``:
            each ``spec`` names another extractor (its layers, loss, normalisation) whose
            texture loss, times ``weight``, joins this one's, e.g. the Gram matrices of
            random filters (elongated structure) next to the sliced Wasserstein distance
            of patches (no grain, true colours). Its extractor gets the run's seed when
            named; its content layers are not used (content is matched by this spec).
            See :func:`parse_also` for the command line's form.
    """

    extractor: str | ExtractorConfig | None = None
    weights: str | None = None
    extractor_options: Mapping[str, Any] = field(default_factory=dict)
    layers: tuple[str, ...] | None = None
    content_layers: tuple[str, ...] | None = None
    layer_weights: Mapping[str, float] = field(default_factory=dict)
    texture_loss: str = DEFAULT_TEXTURE_LOSS
    normalize: GramNormalization = "chw"
    batch_gram: bool = False
    value_weight: float = 0.0
    also: tuple[tuple[FeatureSpec, float], ...] = ()

    def __post_init__(self) -> None:
        # Normalise containers so that specs compare and serialise predictably.
        set_ = object.__setattr__
        set_(self, "also", _checked_also(self.also))
        if self.weights is not None:
            set_(self, "weights", os.fspath(self.weights))
        set_(self, "extractor_options", dict(self.extractor_options or {}))
        set_(self, "layer_weights", dict(self.layer_weights or {}))
        for name in ("layers", "content_layers"):
            value = getattr(self, name)
            set_(self, name, tuple(value) if value else None)

    def replace(self, **changes: Any) -> FeatureSpec:
        """A copy with ``changes`` (fields of this class) applied; ``None`` values in
        ``changes`` are ignored, so optional keyword arguments can be passed through."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise UsageError(f"unknown feature setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given) if given else self

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> FeatureSpec:
        """The spec recorded in a result's or checkpoint's settings (the inverse of
        :meth:`Features.settings`), with the stored extractor config (seed included)."""
        loss = dict(settings.get("loss") or {})  # checkpoints keep loss settings apart
        merged = {**settings, **loss}
        return cls(
            extractor=ExtractorConfig.from_dict(settings["extractor"]),
            layers=tuple(merged.get("texture_layers") or ()) or None,
            content_layers=tuple(merged.get("content_layers") or ()) or None,
            layer_weights=dict(merged.get("layer_weights") or {}),
            texture_loss=str(merged.get("texture_loss", DEFAULT_TEXTURE_LOSS)),
            normalize=merged.get("normalize", "chw"),
            batch_gram=bool(merged.get("batch_gram", False)),
            value_weight=float(merged.get("value_weight", 0.0)),
            also=tuple((cls.from_settings(entry), float(entry["weight"]))
                       for entry in settings.get("also") or ()),
        )


def _checked_also(also: Any) -> tuple[tuple[FeatureSpec, float], ...]:
    """``FeatureSpec.also`` as a tuple of ``(spec, weight)`` pairs, checked."""
    out = []
    for item in also or ():
        try:
            sub, weight = item
        except (TypeError, ValueError):
            raise UsageError(f"each also entry must be a (FeatureSpec, weight) pair, got "
                             f"{item!r}", parameter="also") from None
        if not isinstance(sub, FeatureSpec):
            raise UsageError(f"also: {sub!r} is not a FeatureSpec", parameter="also")
        if sub.also:
            raise UsageError("also: further statistics cannot have further statistics of "
                             "their own", parameter="also")
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            raise UsageError(f"also: the weight of {sub.extractor or 'the default'} "
                             f"statistics must be a non-negative number, got {item[1]!r}",
                             parameter="also")
        out.append((sub, weight))
    return tuple(out)


def parse_also(text: str) -> tuple[FeatureSpec, float]:
    """One ``also`` entry from ``EXTRACTOR[:LOSS[:WEIGHT]]`` (the command line's
    ``--also``): the extractor with its default layers and options, the registered texture
    loss ``LOSS`` (default ``gram``, sums such as ``gram+0.5*sw`` allowed) and ``WEIGHT``
    (default 1).

    >>> parse_also("random-multiscale:gram:0.5")
    (FeatureSpec(extractor='random-multiscale', ...), 0.5)  # doctest: +SKIP

    Raises:
        UsageError: one line naming the text and what is wrong with it.
    """
    parts = [part.strip() for part in text.split(":")]
    if not parts[0] or len(parts) > 3 or any(not part for part in parts[1:]):
        raise UsageError(f"also {text!r}: expected EXTRACTOR[:LOSS[:WEIGHT]], e.g. "
                         "random-multiscale:gram:1", parameter="also")
    weight = 1.0
    if len(parts) == 3:
        try:
            weight = float(parts[2])
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            raise UsageError(f"also {text!r}: the weight {parts[2]!r} must be a "
                             "non-negative number", parameter="also")
    loss = parts[1] if len(parts) > 1 else DEFAULT_TEXTURE_LOSS
    return FeatureSpec(extractor=parts[0], texture_loss=loss), weight


def spec_from_defaults(values: Mapping[str, Any]) -> FeatureSpec:
    """The spec a domain's defaults describe (``"train_features"`` in
    :meth:`texsynth.Domain.defaults`): :class:`FeatureSpec` fields by name, with
    ``also`` as ``EXTRACTOR[:LOSS[:WEIGHT]]`` texts (:func:`parse_also`).

    Raises:
        UsageError: an unknown field or a malformed ``also`` text.
    """
    fields = dict(values)
    also = tuple(parse_also(str(text)) for text in fields.pop("also", ()) or ())
    return FeatureSpec().replace(**fields, also=also or None)


def also_summary(entries: Any) -> list[dict[str, Any]]:
    """What two runs' further statistics must share to be the same run: ``[{"extractor":
    name, "texture_loss": ..., "weight": ...}]`` from ``FeatureSpec.also`` pairs or from
    stored settings entries (resumed training compares the two)."""
    out = []
    for entry in entries or ():
        if isinstance(entry, Mapping):
            extractor = entry.get("extractor")
            name = extractor.get("name") if isinstance(extractor, Mapping) else extractor
            out.append({"extractor": name,
                        "texture_loss": entry.get("texture_loss", DEFAULT_TEXTURE_LOSS),
                        "weight": entry.get("weight")})
        else:
            sub, weight = entry
            name = (sub.extractor.name if isinstance(sub.extractor, ExtractorConfig)
                    else sub.extractor)
            out.append({"extractor": name, "texture_loss": sub.texture_loss,
                        "weight": float(weight)})
    return out


class FeatureOptions(TypedDict, total=False):
    """The fields of :class:`FeatureSpec` as keyword arguments (``synthesize(...,
    layers=[...])``); see :class:`FeatureSpec` for their meaning."""

    extractor: str | ExtractorConfig | None
    weights: str | os.PathLike[str] | None
    extractor_options: Mapping[str, Any] | None
    layers: Sequence[str] | None
    content_layers: Sequence[str] | None
    layer_weights: Mapping[str, float] | None
    texture_loss: str | None
    normalize: GramNormalization | None
    batch_gram: bool | None
    value_weight: float | None
    also: Sequence[tuple[FeatureSpec, float]] | None


@dataclass(frozen=True)
class Features:
    """A :class:`FeatureSpec` resolved for one domain: the built extractor and its layers.

    Attributes:
        domain: the domain signals come from.
        extractor: the frozen extractor, on :attr:`device`, computing exactly the layers
            in use.
        config: the config that rebuilds :attr:`extractor` (``layers`` = every layer in
            use, ``seed`` = the weights' seed).
        spec: the spec with ``layers`` (and for stylisation ``content_layers``) filled in.
        device: where the extractor lives.
        also: the spec's further statistics, prepared, with their weights.
    """

    domain: Domain
    extractor: FeatureExtractor
    config: ExtractorConfig
    spec: FeatureSpec
    device: torch.device
    also: tuple[tuple[Features, float], ...] = ()

    @property
    def texture_layers(self) -> tuple[str, ...]:
        """Layers whose statistics are matched."""
        return self.spec.layers or ()

    @property
    def content_layers(self) -> tuple[str, ...]:
        """Layers matched to the content (empty unless stylising)."""
        return self.spec.content_layers or ()

    def objective(self, exemplars: Sequence[torch.Tensor], *,
                  content: torch.Tensor | None = None, style_weight: float = 1.0,
                  content_weight: float = 1.0, manager: PluginManager | None = None,
                  exemplar_weights: Sequence[float] | None = None,
                  guidance: Guidance | None = None) -> TextureObjective:
        """``α · L_texture + β · L_content`` against ``exemplars`` (each ``(1, C, *spatial)``)
        and, for stylisation, a fixed ``content`` ``(1, C, *spatial)`` (feed-forward
        stylisation passes content per batch instead, see :meth:`TextureObjective.terms`);
        ``exemplar_weights`` blend the exemplars and ``guidance`` gives regions their own
        (see :class:`~texsynth.stats.objective.TextureObjective`)."""
        spec = self.spec
        return TextureObjective(
            self.domain, self.extractor, exemplars, texture_layers=self.texture_layers,
            layer_weights=spec.layer_weights, texture_loss=spec.texture_loss,
            normalize=spec.normalize, content=content, content_layers=self.content_layers,
            style_weight=style_weight, content_weight=content_weight,
            batch_gram=spec.batch_gram, seed=self.config.seed, manager=manager,
            value_weight=spec.value_weight, exemplar_weights=exemplar_weights,
            guidance=guidance,
            also=[(sub.objective(exemplars, manager=manager,
                                 exemplar_weights=exemplar_weights), weight)
                  for sub, weight in self.also])

    def settings(self) -> dict[str, Any]:
        """What results record of the features (JSON-serialisable): ``extractor`` (the
        config), ``texture_layers``, ``content_layers`` when stylising, ``layer_weights``,
        ``texture_loss``, ``normalize`` (and ``value_weight`` when not 0; ``also``, the
        further statistics' settings each with its ``weight``, when there are any)."""
        out: dict[str, Any] = {"extractor": self.config.to_dict(),
                               "texture_layers": list(self.texture_layers)}
        if self.content_layers:
            out["content_layers"] = list(self.content_layers)
        out.update({"layer_weights": dict(self.spec.layer_weights),
                    "texture_loss": self.spec.texture_loss,
                    "normalize": self.spec.normalize})
        if self.spec.value_weight:
            out["value_weight"] = float(self.spec.value_weight)
        if self.also:
            out["also"] = self.also_settings()
        return out

    def also_settings(self) -> list[dict[str, Any]]:
        """The further statistics' :meth:`settings`, each with its ``weight`` and
        ``batch_gram`` (what :meth:`FeatureSpec.from_settings` rebuilds them from)."""
        return [{**sub.settings(), "batch_gram": bool(sub.spec.batch_gram),
                 "weight": float(weight)} for sub, weight in self.also]


def _extractor_config(spec: FeatureSpec, domain: Domain, seed: int) -> ExtractorConfig:
    """The config to build first: the spec's own config (copied), or one for its name."""
    if isinstance(spec.extractor, ExtractorConfig):
        return dataclasses.replace(spec.extractor,
                                   options=dict(spec.extractor.options))
    name = spec.extractor or domain.default_extractor
    if not name:
        raise UsageError(f"domain {domain.name!r} has no default extractor; "
                         "name one (extractor)")
    return ExtractorConfig(name=name, seed=seed, weights=spec.weights,
                           options=dict(spec.extractor_options))


def prepare(spec: FeatureSpec, domain: Domain, *, seed: int, stylising: bool = False,
            device: str | torch.device | None = "auto",
            manager: PluginManager | None = None) -> Features:
    """Build the extractor of ``spec`` for ``domain`` and resolve its layers.

    The extractor is built once with the layers the spec names (or its defaults), its
    default texture/content layers fill what the spec leaves open, and it is then
    trimmed to the layers in use (:meth:`FeatureExtractor.trim`). It is rebuilt only
    when a layer in use lies outside what that first build covers (a named content layer
    deeper than the default texture layers, say). Nothing passed in is modified.

    Args:
        spec: the statistics to match.
        domain: the domain of the signals.
        seed: seed of random extractor weights (when ``spec.extractor`` is a name).
        stylising: resolve content layers too.
        device: where to put the extractor.
        manager: plugin manager (default: the process-wide one).
    """
    manager = manager or get_plugin_manager()
    dev = resolve_device(device)
    config = _extractor_config(spec, domain, seed)
    given = tuple(dict.fromkeys((spec.layers or ()) + ((spec.content_layers or ())
                                                       if stylising else ())))
    complete = bool(spec.layers) and (bool(spec.content_layers) or not stylising)
    first = dataclasses.replace(config, layers=given if complete else config.layers)
    net = manager.create_extractor(first, domain)
    tex = spec.layers or net.default_texture_layers
    con = (spec.content_layers or net.default_content_layers) if stylising else ()
    net.check_layers(tex)
    if con:
        net.check_layers(con)
    wanted = tuple(dict.fromkeys(tex + con))
    if net.covers(wanted):
        net.trim(wanted)
    else:
        net = manager.create_extractor(dataclasses.replace(config, layers=wanted), domain)
    resolved = dataclasses.replace(spec, layers=tex, content_layers=con or None)
    also = tuple((prepare(sub, domain, seed=seed, device=dev, manager=manager), weight)
                 for sub, weight in spec.also)
    return Features(domain=domain, extractor=net.to(dev),
                    config=dataclasses.replace(config, layers=net.layers),
                    spec=resolved, device=dev, also=also)


def resolve_domain(domain: Domain | str | None, source: Any = None, *,
                   manager: PluginManager | None = None) -> Domain:
    """``domain`` itself, the registered domain of that name, or the domain of a file
    path's suffix (``source``; tensors carry no suffix, so then a domain is needed)."""
    if isinstance(domain, Domain):
        return domain
    manager = manager or get_plugin_manager()
    if domain is not None:
        return manager.get_domain(domain)
    if not isinstance(source, (str, os.PathLike)):
        raise UsageError("a domain is needed: pass domain=... or a file path")
    return manager.domain_for_path(source)


def signal_sources(value: SignalSource | Sequence[SignalSource]) -> list[SignalSource]:
    """One source or a sequence of them, as a list."""
    if isinstance(value, (torch.Tensor, str, os.PathLike)):
        return [value]
    return list(value)


def describe_source(source: SignalSource) -> str:
    """How a signal source is recorded in settings: its path, or ``"<tensor>"``."""
    return "<tensor>" if isinstance(source, torch.Tensor) else os.fspath(source)


def as_signal(item: SignalSource, domain: Domain) -> torch.Tensor:
    """A signal ``(N, C, *spatial)`` (float, detached) from a tensor (a missing batch axis
    is added) or a file, loaded by ``domain``."""
    if isinstance(item, torch.Tensor):
        signal = item
        if signal.dim() == domain.spatial_dims + 1:
            signal = signal.unsqueeze(0)
        if signal.dim() != domain.spatial_dims + 2:
            raise UsageError(f"expected a signal of {domain.spatial_dims + 2} dims "
                             f"(N, C, *spatial), got shape {tuple(signal.shape)}")
        return signal.detach().float()
    return domain.load(Path(item))
