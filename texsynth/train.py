"""Training feed-forward texture and stylisation networks (Ulyanov et al. 2016).

A generator ``g`` (by default the ``pyramid`` network of :mod:`texsynth.pyramid`) maps
noise ``z`` (and, for stylisation, a content signal ``y``) to signals. It is trained with
Adam on batches of fresh noise to minimise the loss of optimisation-based synthesis,

``L = α · L_texture(g(z, y)) + β · L_content(g(z, y), y)``

(:class:`~texsynth.optimize.TextureObjective`): the Gram matrices of every generated
sample are matched to the exemplar's, computed once; for stylisation ``y`` are random
crops of a set of content signals and the content loss compares feature maps of output
and input. Once trained, the generator makes new samples of any size in one forward pass
(:func:`texsynth.checkpoint.sample`).

Runs are checkpointed (:mod:`texsynth.checkpoint`) every ``checkpoint_every`` steps, at
the end, and when interrupted by Ctrl-C or SIGTERM; ``resume=True`` continues a run from
its checkpoint with the same optimiser, schedule and random streams, so the loss curve
goes on as if the run had never stopped.

Under ``torchrun`` the same call trains data-parallel over the processes
(:mod:`texsynth.distributed`): ``batch_size`` is the global batch, split evenly, and the
run computes what one process would with that batch.
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import torch
from tqdm.auto import tqdm

from . import distributed
from ._io import remove_stale_temps
from .checkpoint import (
    Checkpoint,
    build_generator,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .domain import Domain
from .errors import InputError, UsageError
from .features import ExtractorConfig
from .generators import Generator, GeneratorConfig
from .losses import GramNormalization
from .optimize import TextureObjective, _as_signal, _prepare, _resolve_domain
from .plugins import PluginManager, get_plugin_manager

__all__ = ["TrainCallback", "TrainResult", "train_generator"]

#: ``callback(step, loss, generator)`` after every training step (the generator is in
#: train mode; switch to eval and back to sample a preview).
TrainCallback = Callable[[int, float, Generator], None]

#: Defaults of the settings that define a run (``None`` in the signature means these).
DEFAULTS: dict[str, Any] = {
    "batch_size": 4,      # paper: 16; 4 keeps CPU steps affordable
    "lr": 0.01,           # Adam; see train_generator's docstring
    "lr_step": 1000,      # decay every 1000 steps ...
    "lr_decay": 0.7,      # ... by ×0.7 (Ulyanov et al.)
    "style_weight": 1.0,
    "content_weight": 1.0,
    "texture_loss": "gram",
    "normalize": "chw",
    "batch_gram": False,
}


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


# -- content data ---------------------------------------------------------------------------
class _ContentSet:
    """Content signals for stylisation: random crops of the training size, drawn in batches.

    Files are loaded through the domain when first drawn and kept in a small cache.
    """

    CACHE = 64

    def __init__(self, source: str | os.PathLike[str] | torch.Tensor
                 | Sequence[str | os.PathLike[str] | torch.Tensor], domain: Domain) -> None:
        self.domain = domain
        self.items: list[Path | torch.Tensor] = []
        if isinstance(source, torch.Tensor):
            signal_ = _as_signal(source, domain)
            self.items = [signal_[i:i + 1] for i in range(signal_.shape[0])]
        elif isinstance(source, (str, os.PathLike)):
            folder = Path(source)
            if folder.is_dir():
                self.items = [p for p in sorted(folder.iterdir())
                              if p.is_file() and p.suffix.lower() in domain.suffixes]
                if not self.items:
                    raise InputError(folder, f"no {domain.name} files "
                                             f"({', '.join(domain.suffixes)}) in this folder")
            else:
                self.items = [folder]
        else:
            for item in source:
                self.items.append(_as_signal(item, domain) if isinstance(item, torch.Tensor)
                                  else Path(item))
        if not self.items:
            raise UsageError("the content set is empty")
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def describe(self) -> list[str]:
        return [os.fspath(i) if isinstance(i, Path) else "<tensor>" for i in self.items]

    def _signal(self, index: int) -> torch.Tensor:
        item = self.items[index]
        if isinstance(item, torch.Tensor):
            return item
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        loaded = self.domain.load(item)
        self._cache[index] = loaded
        if len(self._cache) > self.CACHE:
            self._cache.popitem(last=False)
        return loaded

    def batch(self, count: int, size: tuple[int, ...], rng: torch.Generator) -> torch.Tensor:
        """``(count, C, *size)`` random crops of random items."""
        crops = []
        for _ in range(count):
            index = int(torch.randint(len(self.items), (1,), generator=rng))
            signal_ = self._signal(index)
            extents = tuple(signal_.shape[2:])
            if any(e < s for e, s in zip(extents, size, strict=True)):
                where = self.items[index]
                raise InputError(
                    where if isinstance(where, Path) else "<content tensor>",
                    f"content of size {self.domain.describe_size(extents)} is smaller than "
                    f"the training size {self.domain.describe_size(size)}; use a smaller "
                    "size or remove it"
                )
            starts = [int(torch.randint(e - s + 1, (1,), generator=rng))
                      for e, s in zip(extents, size, strict=True)]
            index_tuple = (slice(None), slice(None),
                           *(slice(a, a + s) for a, s in zip(starts, size, strict=True)))
            crops.append(signal_[index_tuple])
        return torch.cat(crops, dim=0)


# -- interruption ----------------------------------------------------------------------------
class _DeferredSignals:
    """Hold SIGINT/SIGTERM until the current step is done, then let the loop checkpoint.

    Installed only in the main thread. A second Ctrl-C while one is pending raises
    :class:`KeyboardInterrupt` at once (no checkpoint: the step may be half done).
    After the loop has saved, :meth:`deliver` re-raises the signal with the handler that
    was in place before, so Ctrl-C ends as :class:`KeyboardInterrupt` and SIGTERM as the
    process's own SIGTERM handling.
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.pending: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _DeferredSignals:
        if self.enabled:
            for name in self.SIGNALS:
                signum = getattr(signal, name, None)
                if signum is None:
                    continue
                previous = signal.getsignal(signum)
                if previous is None or previous is signal.SIG_IGN:
                    continue  # ignored, or installed outside Python: leave it alone
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.pending is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.pending = signum
        print(f"\ntexsynth: {signal.Signals(signum).name} received; saving a checkpoint "
              "after this step (Ctrl-C again to abort without saving)", file=sys.stderr)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.restore()

    def deliver(self) -> None:
        """Restore the old handlers and raise the pending signal with them."""
        signum, self.pending = self.pending, None
        self.restore()
        if signum is not None:
            signal.raise_signal(signum)


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
        if _jsonable(value) != have.get(name):
            clashes.append(f"{name}={have.get(name)!r} (given {_jsonable(value)!r})")
    if clashes:
        raise UsageError(f"{path}: cannot resume with different settings; the checkpoint "
                         f"has {'; '.join(clashes)}. Pass the same settings, or "
                         "resume=False to start over")


def _default_size(domain: Domain, exemplar: torch.Tensor) -> tuple[int, ...]:
    """The exemplar's extents, capped per axis by the domain's preferred crop size."""
    extents = tuple(int(e) for e in exemplar.shape[2:])
    crop = domain.defaults().get("train_size")
    if crop is None:
        return extents
    return tuple(min(e, int(c)) for e, c in zip(extents, crop, strict=True))


def train_generator(
    exemplar: torch.Tensor | str | os.PathLike[str]
    | Sequence[torch.Tensor | str | os.PathLike[str]],
    *,
    domain: Domain | str | None = None,
    extractor: str | ExtractorConfig | None = None,
    weights: str | os.PathLike[str] | None = None,
    extractor_options: Mapping[str, Any] | None = None,
    layers: Sequence[str] | None = None,
    layer_weights: Mapping[str, float] | None = None,
    texture_loss: str | None = None,
    normalize: GramNormalization | None = None,
    batch_gram: bool | None = None,
    content: str | os.PathLike[str] | torch.Tensor
    | Sequence[str | os.PathLike[str] | torch.Tensor] | None = None,
    content_layers: Sequence[str] | None = None,
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
) -> TrainResult:
    """Train a feed-forward texture (or stylisation) generator on an exemplar.

    Args:
        exemplar: texture exemplar: a signal ``(1, C, *spatial)``, a file, or a list
            (their Gram matrices are averaged).
        domain: domain object or name; default: from the exemplar's file suffix.
        extractor: extractor name or config; default: the domain's default extractor
            (random weights are seeded with ``seed``).
        weights: local weights file for the extractor.
        extractor_options: extractor-specific options.
        layers: texture layers; default: the extractor's.
        layer_weights: ``{layer: weight}`` for the texture loss.
        texture_loss: registered texture loss (default ``"gram"``).
        normalize: Gram normalisation (default ``"chw"``, as Ulyanov et al.).
        batch_gram: match the Gram of the whole batch instead of every sample's (see
            :class:`~texsynth.optimize.TextureObjective`; default ``False``).
        content: stylisation content: a folder of the domain's files, a file, a signal
            batch ``(N, C, *spatial)`` or a list; each training batch holds random crops of
            ``size`` from random items. ``None`` trains a texture generator.
        content_layers: content layers; default: the extractor's.
        content_weight: β, weight of the content loss (default 1).
        style_weight: α, weight of the texture loss (default 1).
        generator: registered architecture; default ``"pyramid"`` (``"pyramid-stylize"``
            with content).
        generator_options: architecture options (see :data:`texsynth.pyramid.DEFAULT_OPTIONS`;
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

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the run is data-parallel: see
    :mod:`texsynth.distributed` (``batch_size`` must be a multiple of the number of
    processes; only rank 0 writes the checkpoint and shows progress).

    Returns:
        :class:`TrainResult`; its generator is in eval mode.

    Raises:
        KeyboardInterrupt: after Ctrl-C, once the checkpoint is saved (SIGTERM is handed to
            the previous SIGTERM handler, by default ending the process).
    """
    manager = manager or get_plugin_manager()
    if iterations < 0:
        raise UsageError(f"iterations must be at least 0, got {iterations}")
    if checkpoint_every < 0:
        raise UsageError(f"checkpoint_every must be at least 0, got {checkpoint_every}")
    items: list[torch.Tensor | str | os.PathLike[str]] = (
        [exemplar] if isinstance(exemplar, (torch.Tensor, str, os.PathLike))
        else list(exemplar))
    if not items:
        raise UsageError("at least one exemplar is needed")
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    stylising = content is not None
    dist = distributed.setup(device)  # does nothing outside torchrun
    device = dist.device or device
    given = {
        "training.size": list(size) if size is not None else None,
        "training.batch_size": batch_size, "training.lr": lr, "training.lr_step": lr_step,
        "training.lr_decay": lr_decay, "seed": seed, "texture_layers": layers,
        "content_layers": content_layers, "loss.texture_loss": texture_loss,
        "loss.normalize": normalize, "loss.layer_weights": layer_weights,
        "loss.batch_gram": batch_gram,
        "loss.style_weight": style_weight, "loss.content_weight": content_weight,
        "extractor.name": extractor.name if isinstance(extractor, ExtractorConfig)
        else extractor,
        "extractor.options": extractor_options,
        "extractor.weights": os.fspath(weights) if weights is not None else None,
        "generator.name": generator,
    }

    previous: Checkpoint | None = None
    if resume and ckpt_path is not None and ckpt_path.exists():
        hint = items[0] if not isinstance(items[0], torch.Tensor) else None
        dom = _resolve_domain(domain, manager, hint)
        previous = load_checkpoint(ckpt_path, domain=dom.name)
        stored = previous.settings
        _check_resume(ckpt_path, stored, given)
        if generator_options:
            for key, value in generator_options.items():
                if _jsonable(value) != stored["generator"]["options"].get(key):
                    raise UsageError(f"{ckpt_path}: cannot resume with generator option "
                                     f"{key}={value!r}; the checkpoint has "
                                     f"{stored['generator']['options'].get(key)!r}")
        if bool(stored["content_layers"]) != stylising:
            raise UsageError(f"{ckpt_path}: the checkpoint is a "
                             f"{'stylisation' if stored['content_layers'] else 'texture'} "
                             "run; give content exactly when resuming a stylisation run")
        run = dict(stored)
        dom, net, ext_config, tex, con, used_seed, dev = _prepare(
            domain=dom, path_hint=None, extractor=ExtractorConfig.from_dict(run["extractor"]),
            texture_layers=run["texture_layers"], content_layers=run["content_layers"],
            stylising=stylising, seed=int(run["seed"]), device=device, weights=None,
            extractor_options=None, manager=manager)
        training = dict(run["training"])
        loss_settings = dict(run["loss"])
    else:
        dom, net, ext_config, tex, con, used_seed, dev = _prepare(
            domain=domain, path_hint=items[0], extractor=extractor, texture_layers=layers,
            content_layers=content_layers, stylising=stylising, seed=dist.agree_seed(seed),
            device=device,
            weights=weights, extractor_options=extractor_options, manager=manager)
        training = {
            "batch_size": batch_size or DEFAULTS["batch_size"],
            "lr": lr if lr is not None else DEFAULTS["lr"],
            "lr_step": lr_step or DEFAULTS["lr_step"],
            "lr_decay": lr_decay if lr_decay is not None else DEFAULTS["lr_decay"],
        }
        loss_settings = {
            "texture_loss": texture_loss or DEFAULTS["texture_loss"],
            "normalize": normalize or DEFAULTS["normalize"],
            "batch_gram": bool(batch_gram if batch_gram is not None
                               else DEFAULTS["batch_gram"]),
            "layer_weights": dict(layer_weights or {}),
            "style_weight": float(style_weight if style_weight is not None
                                  else DEFAULTS["style_weight"]),
            "content_weight": float(content_weight if content_weight is not None
                                    else DEFAULTS["content_weight"]) if stylising else 0.0,
        }

    signals = [_as_signal(item, dom) for item in items]
    channels = signals[0].shape[1]
    digests = [_digest_signal(s) for s in signals]
    if previous is not None and previous.settings["training"]["exemplar_sha256"] != digests:
        raise UsageError(f"{ckpt_path}: the checkpoint was trained on a different exemplar; "
                         "pass the same exemplar, or resume=False to start over")
    if previous is None:
        extents = tuple(size) if size is not None else _default_size(dom, signals[0])
        training["size"] = list(extents)
    extents = tuple(int(e) for e in training["size"])
    dom.check_size(extents, what="training size")
    if training["batch_size"] < 1:
        raise UsageError(f"batch_size must be at least 1, got {training['batch_size']}")
    dist.shard(int(training["batch_size"]))  # the global batch must split evenly
    contents = _ContentSet(content, dom) if content is not None else None

    # The generator: rebuilt from the checkpoint, or new with weights drawn from the seed.
    if previous is not None:
        gen = build_generator(previous, ckpt_path or "", manager=manager)
    else:
        options = {"value_range": list(dom.value_range),
                   **dict(dom.defaults().get("generator_options", {})),
                   **dict(generator_options or {})}
        gen_config = GeneratorConfig(
            name=generator or ("pyramid-stylize" if stylising else "pyramid"),
            spatial_dims=dom.spatial_dims, out_channels=channels,
            content_channels=channels if stylising else 0, options=options)
        torch.manual_seed(used_seed)
        gen = manager.create_generator(gen_config)
    gen.to(dev).train()
    model = dist.wrap(gen)  # DistributedDataParallel under torchrun, else gen itself

    objective = TextureObjective(
        dom, net, signals, texture_layers=tex, layer_weights=loss_settings["layer_weights"],
        texture_loss=loss_settings["texture_loss"], normalize=loss_settings["normalize"],
        content_layers=con, style_weight=loss_settings["style_weight"],
        content_weight=loss_settings["content_weight"],
        batch_gram=bool(loss_settings.get("batch_gram", False)), manager=manager)
    optimizer = torch.optim.Adam(gen.parameters(), lr=float(training["lr"]))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(training["lr_step"]),
                                                gamma=float(training["lr_decay"]))
    rng = torch.Generator().manual_seed(used_seed)
    losses: list[float] = []
    step = 0
    if previous is not None:
        if previous.optimizer_state is not None:
            optimizer.load_state_dict(previous.optimizer_state)
        if previous.scheduler_state is not None:
            scheduler.load_state_dict(previous.scheduler_state)
        state = previous.rng_state or {}
        restore_rng_state(state)
        if "stream" in state:
            rng.set_state(state["stream"])
        losses = list(previous.losses)
        step = previous.step

    training.update({
        "iterations": iterations,
        "exemplars": [os.fspath(i) if not isinstance(i, torch.Tensor) else "<tensor>"
                      for i in items],
        "exemplar_sha256": digests,
        "content": contents.describe() if contents is not None else None,
        "device": str(dev),
        "processes": dist.world_size,
    })
    settings: dict[str, Any] = {
        "command": "train",
        "domain": dom.name,
        "domain_config": _jsonable(dom.config()),
        "seed": used_seed,
        "extractor": ext_config.to_dict(),
        "texture_layers": list(tex),
        "content_layers": list(con),
        "loss": loss_settings,
        "generator": gen.config.to_dict(),
        "training": training,
    }

    def save() -> None:
        if ckpt_path is None or not dist.is_main:
            return
        rng_state = capture_rng_state(cuda=dev.type == "cuda")
        rng_state["stream"] = rng.get_state()
        save_checkpoint(ckpt_path, Checkpoint(
            settings=settings, step=step, generator_state=gen.state_dict(), losses=losses,
            optimizer_state=optimizer.state_dict(), scheduler_state=scheduler.state_dict(),
            rng_state=rng_state))

    if ckpt_path is not None and dist.is_main:
        # this run owns the checkpoint: partial files of a killed earlier run can go
        remove_stale_temps(ckpt_path)
    bar = tqdm(total=iterations, initial=min(step, iterations), desc="train", unit="step",
               disable=not progress or not dist.is_main, dynamic_ncols=True, leave=False)
    saved_at = step if previous is not None else -1
    in_step = False
    try:
        with _DeferredSignals(ckpt_path is not None) as deferred:
            while step < iterations:
                in_step = True
                # Every rank draws the global batch from the same stream and keeps its slice.
                batch = int(training["batch_size"])
                noise = dist.local(gen.make_noise(batch, extents, generator=rng, device=dev),
                                   batch)
                batch_content = (dist.local(contents.batch(batch, extents, rng), batch)
                                 .to(dev) if contents is not None else None)
                loss = objective(model(noise, batch_content), batch_content)
                value = dist.mean(loss)  # the global batch's loss, on every rank
                if not math.isfinite(value):
                    raise UsageError(f"the loss became {value} at step {step + 1}; "
                                     "lower the learning rate or the loss weights")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                losses.append(value)
                in_step = False
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4g}")
                if callback is not None:
                    callback(step, value, gen)
                if checkpoint_every and step % checkpoint_every == 0:
                    save()
                    saved_at = step
                if deferred.enabled:  # every rank stops after the same step
                    deferred.pending = dist.agree_signal(deferred.pending)
                if deferred.pending is not None:
                    save()
                    saved_at = step
                    deferred.deliver()
            if saved_at != step:
                save()
    except KeyboardInterrupt:
        if not in_step and saved_at != step:
            save()
        raise
    finally:
        bar.close()
        dist.unwrap(gen)
        dist.close()

    gen.eval()
    settings["step"] = step
    settings["final_loss"] = losses[-1] if losses else math.nan
    return TrainResult(generator=gen, losses=losses, settings=settings, checkpoint=ckpt_path)
