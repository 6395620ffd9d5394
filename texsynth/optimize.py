"""Texture synthesis and stylisation by optimisation (Gatys et al. 2015, 2016).

The signal itself is the variable: it starts from noise (or the content, or a file) and
is updated by L-BFGS (default) or Adam to minimise

``L = α · L_texture(x) + β · L_content(x)``

with the texture loss against the exemplar's Gram matrices (computed once) and, for
stylisation, the content loss against the content's feature maps. After every step the
signal is projected back onto the domain's value range, so every intermediate result is a
valid signal.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from .domain import Domain
from .errors import UsageError
from .features import ExtractorConfig, FeatureExtractor
from .losses import ContentLoss, GramNormalization, content_loss
from .plugins import PluginManager, get_plugin_manager
from .resources import check_fits, check_signal_fits, estimate_optimization_bytes
from .runtime import resolve_device, seed_everything

__all__ = [
    "OptimizationResult",
    "StepCallback",
    "TextureObjective",
    "run_optimization",
    "stylize",
    "synthesize",
]

OptimizerName = Literal["lbfgs", "adam"]
#: A signal tensor ``(1, C, *spatial)`` or a file to load one from.
SignalSource = torch.Tensor | str | os.PathLike[str]
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


def _resolve_domain(domain: Domain | str | None, manager: PluginManager,
                    path: str | os.PathLike[str] | None) -> Domain:
    if isinstance(domain, Domain):
        return domain
    if domain is not None:
        return manager.get_domain(domain)
    if path is None:
        raise UsageError("a domain is needed: pass domain=... or a file path")
    return manager.domain_for_path(path)


def _sources(value: SignalSource | Sequence[SignalSource]) -> list[SignalSource]:
    if isinstance(value, (torch.Tensor, str, os.PathLike)):
        return [value]
    return list(value)


def _describe(source: SignalSource) -> str:
    """How a signal source is recorded in settings: its path, or ``"<tensor>"``."""
    return "<tensor>" if isinstance(source, torch.Tensor) else os.fspath(source)


def _as_signal(item: torch.Tensor | str | os.PathLike[str], domain: Domain) -> torch.Tensor:
    if isinstance(item, torch.Tensor):
        signal = item
        if signal.dim() == domain.spatial_dims + 1:
            signal = signal.unsqueeze(0)
        if signal.dim() != domain.spatial_dims + 2:
            raise UsageError(f"expected a signal of {domain.spatial_dims + 2} dims "
                             f"(N, C, *spatial), got shape {tuple(signal.shape)}")
        return signal.detach().float()
    return domain.load(Path(item))


class TextureObjective(nn.Module):
    """``α · L_texture + β · L_content`` on top of a frozen extractor.

    Args:
        domain: maps signals to extractor input.
        extractor: frozen feature extractor, built with every layer used below.
        exemplars: one or more exemplar signals ``(1, C, *spatial)``; their Grams are
            averaged (so several photos of one texture can be combined).
        texture_layers: layers whose Gram matrices are matched.
        layer_weights: per-layer texture weights.
        texture_loss: registry name of the texture loss (``"gram"``).
        normalize: Gram normalisation (see :func:`texsynth.gram_matrix`).
        content: content signal ``(1, C, *spatial)`` for stylisation, or ``None``.
        content_layers: layers whose maps are matched to the content (the fixed one, or a
            batch passed to :meth:`terms`).
        style_weight: α, weight of the texture loss.
        content_weight: β, weight of the content loss.
        batch_gram: match the Gram matrix of the whole batch (all samples' positions
            together, i.e. the mean of their Grams) instead of every sample's. The loss
            per sample, ``E‖G(x) − T‖² = ‖E G(x) − T‖² + Var G(x)``, also penalises how
            much a sample's Gram varies, which pushes feed-forward generators towards
            fine-grained textures whose Grams vary least; over a batch of ``B`` that
            term shrinks ``B``-fold.
    """

    def __init__(self, domain: Domain, extractor: FeatureExtractor,
                 exemplars: Sequence[torch.Tensor], *, texture_layers: Sequence[str],
                 layer_weights: Mapping[str, float] | None = None,
                 texture_loss: str = "gram", normalize: GramNormalization = "chw",
                 content: torch.Tensor | None = None,
                 content_layers: Sequence[str] = (), style_weight: float = 1.0,
                 content_weight: float = 1.0, batch_gram: bool = False,
                 manager: PluginManager | None = None) -> None:
        super().__init__()
        manager = manager or get_plugin_manager()
        self.domain = domain
        self.extractor = extractor
        self.texture_layers = tuple(texture_layers)
        self.content_layers = tuple(content_layers)
        self.style_weight = float(style_weight)
        self.content_weight = float(content_weight)
        self.batch_gram = bool(batch_gram)
        dev = module_device(extractor)
        with torch.no_grad():
            maps: dict[str, list[torch.Tensor]] = {name: [] for name in self.texture_layers}
            for exemplar in exemplars:
                feats = extractor(domain.to_features_input(exemplar.to(dev)),
                                  layers=self.texture_layers)
                for name in self.texture_layers:
                    maps[name].append(feats[name])
            pooled = _pool_exemplar_maps(maps)
        factory = manager.get_loss(texture_loss).factory
        self.texture = factory(pooled, layer_weights=layer_weights, normalize=normalize)
        self.content: ContentLoss | None = None
        if content is not None:
            if not self.content_layers:
                raise UsageError("stylisation needs at least one content layer")
            with torch.no_grad():
                feats = extractor(domain.to_features_input(content.to(dev)),
                                  layers=self.content_layers)
            self.content = ContentLoss({k: feats[k] for k in self.content_layers})
        self._all_layers = tuple(dict.fromkeys(self.texture_layers + self.content_layers))

    def terms(self, signal: torch.Tensor, content: torch.Tensor | None = None
              ) -> dict[str, torch.Tensor]:
        """``{"texture": ..., "content": ..., "total": ...}`` for a signal batch.

        ``content`` (``(N or 1, C, *spatial)``, optional) is matched instead of the fixed
        content given at construction: feed-forward stylisation has new content each batch.
        """
        return self.input_terms(self.domain.to_features_input(signal), content)

    def input_terms(self, model_input: torch.Tensor, content: torch.Tensor | None = None
                    ) -> dict[str, torch.Tensor]:
        """:meth:`terms` from extractor input (what :meth:`Domain.to_features_input` or a
        :class:`~texsynth.domain.Representation` gives) instead of a signal."""
        feats = self.extractor(model_input, layers=self._all_layers)
        if self.batch_gram and model_input.shape[0] > 1:
            # (N, C, *spatial) -> (1, C, *spatial[:-1], N·last): one Gram over all positions
            texture = self.texture({name: torch.cat(feats[name].unbind(0), dim=-1)[None]
                                    for name in self.texture_layers})
        else:
            texture = self.texture(feats)
        out = {"texture": texture, "total": self.style_weight * texture}
        term: torch.Tensor | None = None
        if content is not None:
            if not self.content_layers:
                raise UsageError("a content batch needs content layers")
            with torch.no_grad():
                targets = self.extractor(self.domain.to_features_input(content),
                                         layers=self.content_layers)
            term = content_loss(feats, targets)
        elif self.content is not None:
            term = self.content(feats)
        if term is not None:
            out["content"] = term
            out["total"] = out["total"] + self.content_weight * term
        return out

    def forward(self, signal: torch.Tensor, content: torch.Tensor | None = None
                ) -> torch.Tensor:
        """The weighted total loss (a scalar); ``content`` as for :meth:`terms`."""
        return self.terms(signal, content)["total"]


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU if it has none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _pool_exemplar_maps(maps: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack exemplar maps along N; maps of different sizes are flattened and joined."""
    pooled = {}
    for name, items in maps.items():
        if all(item.shape == items[0].shape for item in items):
            pooled[name] = torch.cat(items, dim=0)
        else:  # different exemplar sizes: Gram of the concatenated positions
            flat = [item.reshape(item.shape[0], item.shape[1], -1) for item in items]
            pooled[name] = torch.cat(flat, dim=2)
    return pooled


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
) -> tuple[torch.Tensor, list[float]]:
    """Minimise ``loss_fn(signal)`` over the signal; return the result and loss history.

    ``steps`` counts loss evaluations (one forward and backward pass each), for both
    optimisers, so runs of the same ``steps`` cost the same. The signal with the lowest
    loss seen is returned (the last iterate can be worse after a bad line-search step).
    L-BFGS uses a strong-Wolfe line search: without one, PyTorch's L-BFGS takes tiny
    first steps and skips history updates when the loss is small, and stalls.
    ``project`` maps the variable back onto valid signals after each update.
    """
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    x = signal.detach().clone().requires_grad_(True)
    losses: list[float] = []
    best: list[Any] = [math.inf, None]
    bar = tqdm(total=steps, desc=description, disable=not progress, unit="step",
               dynamic_ncols=True, leave=False)

    def evaluate() -> torch.Tensor:
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
                history_size=50, tolerance_grad=1e-30, tolerance_change=1e-30,
                line_search_fn="strong_wolfe",
            )
            # L-BFGS may stop early on a flat loss; keep going until the budget is spent.
            while len(losses) < steps:
                before = len(losses)
                for group in opt.param_groups:
                    group["max_iter"] = group["max_eval"] = steps - len(losses)
                opt.step(evaluate)  # type: ignore[arg-type]
                if len(losses) == before:
                    break
        elif optimizer == "adam":
            opt = torch.optim.Adam([x], lr=0.02 if lr is None else lr)
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                evaluate()
                opt.step()
        else:
            raise UsageError(f"unknown optimizer {optimizer!r}; use lbfgs or adam")
    finally:
        bar.close()
    final = best[1] if best[1] is not None else x.detach()
    with torch.no_grad():
        result = project(final) if project is not None else final
    return result.detach(), losses[:steps]


def _resolve_extractor(extractor: str | ExtractorConfig | None, domain: Domain,
                       layers: set[str], seed: int, weights: str | os.PathLike[str] | None,
                       options: Mapping[str, Any] | None
                       ) -> ExtractorConfig:
    if isinstance(extractor, ExtractorConfig):
        config = extractor
    else:
        name = extractor or domain.default_extractor
        if not name:
            raise UsageError(f"domain {domain.name!r} has no default extractor; "
                             "pass --extractor")
        config = ExtractorConfig(name=name, seed=seed,
                                 weights=os.fspath(weights) if weights else None,
                                 options=dict(options or {}))
    config.layers = tuple(sorted(layers)) if layers else config.layers
    return config


def _prepare(
    *, domain: Domain | str | None, path_hint: Any, extractor: str | ExtractorConfig | None,
    texture_layers: Sequence[str] | None, content_layers: Sequence[str] | None,
    stylising: bool, seed: int | None, device: str | torch.device | None,
    weights: str | os.PathLike[str] | None, extractor_options: Mapping[str, Any] | None,
    manager: PluginManager | None,
) -> tuple[Domain, FeatureExtractor, ExtractorConfig, tuple[str, ...], tuple[str, ...], int,
           torch.device]:
    manager = manager or get_plugin_manager()
    hint = path_hint if isinstance(path_hint, (str, os.PathLike)) else None
    dom = _resolve_domain(domain, manager, hint)
    used_seed = seed_everything(seed)
    dev = resolve_device(device)
    # Build once with defaults to learn the layer names, then rebuild trimmed if needed.
    config = _resolve_extractor(extractor, dom, set(), used_seed, weights, extractor_options)
    net = manager.create_extractor(config, dom)
    tex = tuple(texture_layers) if texture_layers else net.default_texture_layers
    con = (tuple(content_layers) if content_layers else net.default_content_layers) \
        if stylising else ()
    net.check_layers(tex)
    if con:
        net.check_layers(con)
    wanted = tuple(dict.fromkeys(tex + con))
    if set(wanted) != set(net.layers):
        config.layers = wanted
        net = manager.create_extractor(config, dom)
    else:
        config.layers = net.layers
    return dom, net.to(dev), config, tex, con, used_seed, dev


def _steps(steps: int | None, domain: Domain) -> int:
    """``steps``, or the domain's preferred number of steps, or 300."""
    return int(steps if steps is not None else domain.defaults().get("steps", 300))


def _init_signal(init: str | torch.Tensor | os.PathLike[str], domain: Domain,
                 shape: tuple[int, ...], *, content: torch.Tensor | None,
                 exemplar: torch.Tensor, seed: int) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        start = _as_signal(init, domain)
    elif isinstance(init, str) and init == "noise":
        gen = torch.Generator().manual_seed(seed)
        return domain.noise(shape, generator=gen, like=exemplar)
    elif isinstance(init, str) and init == "content":
        if content is None:
            raise UsageError("--init content needs a content input (stylize)")
        start = content
    else:
        start = domain.load(Path(init))
    if tuple(start.shape[2:]) != shape[2:]:
        raise UsageError(
            f"init signal size {domain.describe_size(tuple(start.shape[2:]))} differs from "
            f"the output size {domain.describe_size(shape[2:])}"
        )
    if start.shape[1] != shape[1]:
        raise UsageError(f"init signal has {start.shape[1]} channels, expected {shape[1]}")
    return start.clone()


def _check_memory(objective: TextureObjective, domain: Domain, shape: tuple[int, ...],
                  device: torch.device) -> None:
    """Measure one evaluation on a small probe and refuse runs that cannot fit."""
    probe_extent = max(128, 4 * domain.min_extent())
    if all(e <= probe_extent for e in shape[2:]):
        return  # small enough that the run itself is the cheapest check
    try:
        estimate = estimate_optimization_bytes(objective, shape, probe_extent=probe_extent,
                                               device=device)
    except UsageError:
        return  # the probe is too small for this extractor; the run reports its own errors
    check_fits(estimate, device, what=f"optimisation at {domain.describe_size(shape[2:])}")


def _checkpoint_saver(domain: Domain, every: int, out: str | os.PathLike[str] | None,
                      settings: dict[str, Any], user: StepCallback | None,
                      decode: Callable[[torch.Tensor], torch.Tensor] | None = None
                      ) -> StepCallback | None:
    if not every or out is None:
        return user
    if every < 0:
        raise UsageError(f"--save-every must be positive, got {every}")
    target = Path(out)

    def save(step: int, loss: float, signal: torch.Tensor) -> None:
        if step % every == 0:
            path = target.with_name(f"{target.stem}_step{step:05d}{target.suffix}")
            current = decode(signal) if decode is not None else signal
            domain.save(domain.clamp(current.cpu()), path,
                        metadata={**settings, "step": step, "loss": loss})
        if user is not None:
            user(step, loss, signal)
    return save


def _optimize(domain: Domain, objective: TextureObjective, start: torch.Tensor,
              extents: tuple[int, ...], settings: dict[str, Any], *, steps: int,
              optimizer: OptimizerName, lr: float | None, progress: bool,
              callback: StepCallback | None, save_every: int,
              output: str | os.PathLike[str] | None) -> OptimizationResult:
    """Run the optimisation of ``synthesize``/``stylize`` from the signal ``start``, on the
    signal or on the domain's :class:`~texsynth.domain.Representation`."""
    description = str(settings["command"])
    rep = domain.representation()
    if rep is None:
        result, losses = run_optimization(
            start, objective, steps=steps, optimizer=optimizer, lr=lr, project=domain.clamp,
            progress=progress, description=description,
            callback=_checkpoint_saver(domain, save_every, output, settings, callback))
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
            callback=_checkpoint_saver(domain, save_every, output, settings, callback,
                                       decode))
        result = decode(found)
    settings["final_loss"] = losses[-1] if losses else math.nan
    return OptimizationResult(signal=result.detach().cpu(), losses=losses, settings=settings)


def synthesize(
    exemplar: SignalSource | Sequence[SignalSource],
    *,
    domain: Domain | str | None = None,
    size: tuple[int, ...] | None = None,
    extractor: str | ExtractorConfig | None = None,
    weights: str | os.PathLike[str] | None = None,
    extractor_options: Mapping[str, Any] | None = None,
    layers: Sequence[str] | None = None,
    layer_weights: Mapping[str, float] | None = None,
    texture_loss: str = "gram",
    normalize: GramNormalization = "chw",
    steps: int | None = None,
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
    manager: PluginManager | None = None,
) -> OptimizationResult:
    """Synthesise a new texture of any size from one or more exemplars.

    Args:
        exemplar: a signal ``(1, C, *spatial)``, a file path, or a list of them.
        domain: domain object or name; by default picked from the exemplar's file suffix.
        size: output extents in tensor order (``(H, W)`` for images); default: the
            exemplar's.
        extractor: extractor name or config; default: the domain's default extractor.
        weights: local weights file for the extractor (e.g. a VGG19 state dict).
        extractor_options: extractor-specific options (``{"pooling": "avg"}``).
        layers: texture layers; default: the extractor's.
        layer_weights: ``{layer: weight}``.
        texture_loss: registered texture-loss name.
        normalize: Gram normalisation (``"hw"``, ``"chw"``, ``"none"``).
        steps: loss evaluations (default: the domain's, see :meth:`Domain.defaults`, else
            300).
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
        manager: plugin manager (default: the process-wide one).

    Returns:
        :class:`OptimizationResult` with the signal ``(1, C, *size)`` on the CPU.
    """
    items = _sources(exemplar)
    if not items:
        raise UsageError("at least one exemplar is needed")
    dom, net, config, tex, _, used_seed, dev = _prepare(
        domain=domain, path_hint=items[0], extractor=extractor, texture_layers=layers,
        content_layers=None, stylising=False, seed=seed, device=device, weights=weights,
        extractor_options=extractor_options, manager=manager)
    steps = _steps(steps, dom)
    signals = [_as_signal(item, dom) for item in items]
    channels = signals[0].shape[1]
    extents = tuple(size) if size is not None else tuple(signals[0].shape[2:])
    dom.check_size(extents)
    shape = (1, channels, *extents)
    if memory_check:
        check_signal_fits(shape, dev, what=f"synthesis at {dom.describe_size(extents)}")
    objective = TextureObjective(dom, net, signals, texture_layers=tex,
                                 layer_weights=layer_weights, texture_loss=texture_loss,
                                 normalize=normalize, manager=manager)
    if memory_check:
        _check_memory(objective, dom, shape, dev)
    start = _init_signal(init, dom, (1, channels, *extents), content=None,
                         exemplar=signals[0], seed=used_seed).to(dev)
    settings = {
        "command": "synthesize",
        "domain": dom.name,
        "exemplars": [_describe(i) for i in items],
        "size": dom.describe_size(extents),
        "extractor": config.to_dict(),
        "texture_layers": list(tex),
        "layer_weights": dict(layer_weights or {}),
        "texture_loss": texture_loss,
        "normalize": normalize,
        "steps": steps,
        "optimizer": optimizer,
        "lr": lr,
        "init": _describe(init),
        "seed": used_seed,
        "device": str(dev),
    }
    return _optimize(dom, objective, start, extents, settings, steps=steps,
                     optimizer=optimizer, lr=lr, progress=progress, callback=callback,
                     save_every=save_every, output=output)


def stylize(
    content: SignalSource,
    style: SignalSource | Sequence[SignalSource],
    *,
    domain: Domain | str | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    extractor: str | ExtractorConfig | None = None,
    weights: str | os.PathLike[str] | None = None,
    extractor_options: Mapping[str, Any] | None = None,
    layers: Sequence[str] | None = None,
    content_layers: Sequence[str] | None = None,
    layer_weights: Mapping[str, float] | None = None,
    texture_loss: str = "gram",
    normalize: GramNormalization = "chw",
    steps: int | None = None,
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
    manager: PluginManager | None = None,
) -> OptimizationResult:
    """Repaint ``content`` with the texture of ``style``: minimise α·L_texture + β·L_content.

    ``style_weight`` is α and ``content_weight`` is β (defaults: the domain's, see
    :meth:`Domain.defaults`, else 1000 and 1); the output has the content's size. Other
    arguments are as for :func:`synthesize`; ``init`` defaults to ``"content"``.
    """
    styles = _sources(style)
    dom, net, config, tex, con, used_seed, dev = _prepare(
        domain=domain, path_hint=content, extractor=extractor, texture_layers=layers,
        content_layers=content_layers, stylising=True, seed=seed, device=device,
        weights=weights, extractor_options=extractor_options, manager=manager)
    steps = _steps(steps, dom)
    preferred = dom.defaults()
    style_weight = float(style_weight if style_weight is not None
                         else preferred.get("style_weight", 1000.0))
    content_weight = float(content_weight if content_weight is not None
                           else preferred.get("content_weight", 1.0))
    content_signal = _as_signal(content, dom)
    style_signals = [_as_signal(item, dom) for item in styles]
    if content_signal.shape[1] != style_signals[0].shape[1]:
        raise UsageError(f"content has {content_signal.shape[1]} channels but the style has "
                         f"{style_signals[0].shape[1]}")
    extents = tuple(content_signal.shape[2:])
    dom.check_size(extents, what="content size")
    if memory_check:
        check_signal_fits(tuple(content_signal.shape), dev,
                          what=f"stylisation at {dom.describe_size(extents)}")
    objective = TextureObjective(dom, net, style_signals, texture_layers=tex,
                                 layer_weights=layer_weights, texture_loss=texture_loss,
                                 normalize=normalize, content=content_signal,
                                 content_layers=con, style_weight=style_weight,
                                 content_weight=content_weight, manager=manager)
    if memory_check:
        _check_memory(objective, dom, tuple(content_signal.shape), dev)
    start = _init_signal(init, dom, tuple(content_signal.shape), content=content_signal,
                         exemplar=style_signals[0], seed=used_seed).to(dev)
    settings = {
        "command": "stylize",
        "domain": dom.name,
        "content": _describe(content),
        "styles": [_describe(i) for i in styles],
        "size": dom.describe_size(extents),
        "extractor": config.to_dict(),
        "texture_layers": list(tex),
        "content_layers": list(con),
        "layer_weights": dict(layer_weights or {}),
        "content_weight": content_weight,
        "style_weight": style_weight,
        "texture_loss": texture_loss,
        "normalize": normalize,
        "steps": steps,
        "optimizer": optimizer,
        "lr": lr,
        "init": _describe(init),
        "seed": used_seed,
        "device": str(dev),
    }
    return _optimize(dom, objective, start, extents, settings, steps=steps,
                     optimizer=optimizer, lr=lr, progress=progress, callback=callback,
                     save_every=save_every, output=output)
