"""Using trained generators: load, sample (in one piece or in tiles), refine, apply.

Everything ``texsynth sample`` and ``texsynth apply`` do is one call here:

* :func:`load_trained` reads a checkpoint into a :class:`TrainedGenerator` (generator,
  stored settings and the domain rebuilt from its stored config);
* :func:`sample` draws textures and returns them with the settings to store beside each
  (like :func:`texsynth.synthesize`), optionally refined by optimisation;
* :func:`refine` continues one sample by optimisation under the loss the generator was
  trained with (same extractor, seed, layers and Gram settings);
* :func:`sample_to_file` writes one sample tile by tile (streamed where the domain's
  writer can), so memory does not grow with the size; :func:`tile_extent` is the policy
  that decides when to tile;
* :func:`apply` runs a stylisation generator on a content signal;
* :func:`generate` is the low-level draw from a :class:`~texsynth.generators.Generator`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_generator
from .domain import Domain
from .errors import InputError, TexsynthError, UsageError
from .generators import Generator
from .optimize import OptimizationResult, synthesize
from .plugins import PluginManager, get_plugin_manager
from .runtime import resolve_device, seed_everything
from .spec import FeatureSpec
from .tiled import AUTO_TILE_POSITIONS, default_tile, sample_tiled, tiling_problem

__all__ = [
    "SampleResult",
    "TrainedGenerator",
    "apply",
    "generate",
    "load_trained",
    "refine",
    "refine_exemplars",
    "sample",
    "sample_to_file",
    "tile_extent",
]

#: A checkpoint file.
CheckpointPath = str | os.PathLike[str]


@dataclass
class TrainedGenerator:
    """A generator loaded from a checkpoint, with what it was trained with.

    Attributes:
        generator: the network, in eval mode.
        metadata: the run settings stored in the checkpoint, plus ``step`` and ``losses``.
        domain: the domain, rebuilt from the stored ``domain_config``.
        path: the checkpoint file.
    """

    generator: Generator
    metadata: dict[str, Any]
    domain: Domain
    path: Path

    @property
    def is_stylizer(self) -> bool:
        """Whether the generator takes a content signal (``texsynth apply``)."""
        return bool(self.generator.config.content_channels)

    @property
    def training_size(self) -> tuple[int, ...]:
        """The extents it was trained at (tensor order)."""
        return tuple(int(e) for e in self.metadata["training"]["size"])

    def with_domain_config(self, config: Mapping[str, Any]) -> TrainedGenerator:
        """A copy whose domain is rebuilt with ``config`` over the stored settings (e.g.
        another sample rate)."""
        stored = dict(self.metadata.get("domain_config") or {})
        domain = type(self.domain).from_config({**stored, **dict(config)})
        return dataclasses.replace(self, domain=domain)

    def readable_exemplars(self, limit: int = 2) -> list[tuple[str, torch.Tensor]]:
        """Up to ``limit`` training exemplars that can still be read from the stored paths,
        as ``(file name, signal)``, for previews; the others are skipped silently."""
        found = []
        for name in self.metadata.get("training", {}).get("exemplars", [])[:limit]:
            path = Path(name)
            if path.is_file():
                with contextlib.suppress(TexsynthError):
                    found.append((path.name, self.domain.load(path)))
        return found


@dataclass
class SampleResult:
    """What :func:`sample` and :func:`apply` return.

    Attributes:
        signals: ``(count, C, *size)`` on the CPU, within the domain's range.
        settings: per sample, the JSON-serialisable settings to store with it.
    """

    signals: torch.Tensor
    settings: list[dict[str, Any]] = field(default_factory=list)


def load_trained(path: str | os.PathLike[str], *, device: str | torch.device | None = "cpu",
                 domain_config: Mapping[str, Any] | None = None,
                 manager: PluginManager | None = None) -> TrainedGenerator:
    """Load a checkpoint for sampling.

    Args:
        path: a checkpoint written by :func:`texsynth.train_generator`.
        device: where to put the generator.
        domain_config: domain settings that override the stored ones (e.g. another
            sample rate); see :meth:`Domain.from_config`.
        manager: plugin manager (default: the process-wide one).

    Raises:
        InputError: the file is not a usable checkpoint.
        NotFoundError: its domain is not installed.
    """
    manager = manager or get_plugin_manager()
    generator, meta = load_generator(path, device=device, manager=manager)
    name = str(meta.get("domain"))
    info = manager.domains().get(name)
    if info is None:
        manager.get_domain(name)  # raises, listing the known domains
        raise AssertionError("unreachable")
    config = {**dict(meta.get("domain_config") or {}), **dict(domain_config or {})}
    domain = info.domain_class.from_config(config)
    return TrainedGenerator(generator=generator, metadata=meta, domain=domain, path=Path(path))


def generate(source: Generator | CheckpointPath, size: tuple[int, ...] | None = None, *,
             seed: int | None = 0, count: int = 1, content: torch.Tensor | None = None,
             device: str | torch.device | None = None,
             manager: PluginManager | None = None) -> torch.Tensor:
    """Draw ``count`` signals from a generator in one pass.

    Args:
        source: the network, or a checkpoint to load it from (a batch-norm generator runs
            in eval mode: running statistics; one passed in gets its previous mode back).
        size: spatial extents in tensor order (``(H, W)`` or ``(T,)``); default: the
            content's extents for stylisation generators.
        seed: seed of the noise (the same seed and size give the same signals); ``None``
            draws a fresh one.
        count: number of signals.
        content: ``(1 or count, C, *size)`` content signal for stylisation generators.
        device: device to run on (the generator is moved there); default: its own (the
            CPU for a checkpoint).
        manager: plugin manager used to build a generator from a checkpoint.

    Returns:
        ``(count, C, *size)`` on the CPU.
    """
    if isinstance(source, Generator):
        generator = source
    else:
        generator, _ = load_generator(source, device=device or "cpu", manager=manager)
    if device is not None:
        generator.to(resolve_device(device))
    if count < 1:
        raise UsageError(f"count must be at least 1, got {count}", parameter="count")
    if size is None:
        if content is None:
            raise UsageError("a size is needed to sample a texture generator",
                             parameter="size")
        size = tuple(content.shape[2:])
    rng = torch.Generator()
    if seed is None:
        rng.seed()
    else:
        rng.manual_seed(int(seed))
    dev = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            noise = generator.make_noise(count, tuple(size), generator=rng, device=dev)
            out = generator(noise, content.to(dev) if content is not None else None)
    finally:
        generator.train(was_training)
    return out.cpu()


def _trained(source: CheckpointPath | TrainedGenerator, device: str | torch.device | None,
             manager: PluginManager | None) -> TrainedGenerator:
    if isinstance(source, TrainedGenerator):
        if device is not None:
            source.generator.to(resolve_device(device))
        return source
    return load_trained(source, device=device or "cpu", manager=manager)


def _settings(trained: TrainedGenerator, command: str, seed: int, **extra: Any
              ) -> dict[str, Any]:
    return {"command": command, "checkpoint": str(trained.path), "seed": seed, **extra,
            "domain": trained.domain.name, "generator": trained.generator.config.to_dict(),
            "trained_steps": trained.metadata.get("step")}


def sample(source: CheckpointPath | TrainedGenerator, size: tuple[int, ...] | None = None, *,
           seed: int | None = None, count: int = 1, refine_steps: int = 0,
           exemplars: Sequence[str | os.PathLike[str]] | None = None,
           device: str | torch.device | None = None, progress: bool = False,
           manager: PluginManager | None = None) -> SampleResult:
    """Sample ``count`` textures from a trained texture generator, in memory.

    Args:
        source: a checkpoint path or a :func:`load_trained` result.
        size: extents in tensor order; default: the training size.
        seed: noise seed (also seeds the process's RNGs, as a run does); ``None`` draws
            one, recorded in the settings.
        count: number of samples.
        refine_steps: then optimise each sample this many steps (:func:`refine`).
        exemplars: exemplars for refinement (default: the training ones).
        device: where to run.
        progress: show progress bars (refinement).
        manager: plugin manager.

    Returns:
        :class:`SampleResult` with ``(count, C, *size)`` signals and, per sample,
        ``command``, ``checkpoint``, ``seed``, ``index``, ``size``, ``domain``,
        ``generator``, ``trained_steps`` (and ``refine_steps``).
    """
    trained = _trained(source, device, manager)
    if trained.is_stylizer:
        raise UsageError(f"{trained.path}: is a stylisation generator; apply it to content "
                         "(texsynth apply) instead of sampling it")
    extents = tuple(size) if size is not None else trained.training_size
    trained.domain.check_size(extents)
    paths = refine_exemplars(trained, exemplars) if refine_steps else []
    used = seed_everything(seed)
    signals = generate(trained.generator, extents, seed=used, count=count)
    if refine_steps:
        signals = torch.cat([refine(trained, signals[i:i + 1], steps=refine_steps,
                                    exemplars=paths, seed=used, device=device,
                                    progress=progress).signal for i in range(count)])
    describe = trained.domain.describe_size(extents)
    settings = [_settings(trained, "sample", used, index=i, size=describe)
                for i in range(count)]
    if refine_steps:
        for item in settings:
            item["refine_steps"] = refine_steps
    return SampleResult(signals=signals, settings=settings)


def refine_exemplars(trained: TrainedGenerator,
                     exemplars: Sequence[str | os.PathLike[str]] | None = None) -> list[Path]:
    """The exemplars refinement optimises towards: ``exemplars``, or the training ones
    found by the paths stored in the checkpoint.

    Raises:
        InputError: naming the checkpoint and the training exemplars that cannot be found.
    """
    if exemplars:
        return [Path(p) for p in exemplars]
    names = [str(n) for n in trained.metadata.get("training", {}).get("exemplars", [])]
    missing = [n for n in names if n == "<tensor>" or not Path(n).is_file()]
    if not names or missing:
        raise InputError(trained.path, f"refine_steps needs the training exemplar"
                                       f"{'s' if len(missing) > 1 else ''} "
                                       f"{', '.join(missing) or '(none recorded)'}, not "
                                       "found from here; pass exemplars",
                         parameter=("refine_steps", "exemplars"))
    return [Path(n) for n in names]


def refine(source: CheckpointPath | TrainedGenerator, start: torch.Tensor, *, steps: int,
           exemplars: Sequence[str | os.PathLike[str]] | None = None, seed: int | None = None,
           device: str | torch.device | None = "auto", progress: bool = False,
           manager: PluginManager | None = None) -> OptimizationResult:
    """Optimise a sample ``(1, C, *size)`` for ``steps`` steps under the loss the generator
    was trained with (same extractor and its seed, layers, layer weights and Gram
    settings), towards ``exemplars`` (default: the training ones, see
    :func:`refine_exemplars`). The sample keeps its layout and gains detail."""
    trained = _trained(source, None, manager)
    paths = refine_exemplars(trained, exemplars)
    spec = FeatureSpec.from_settings(trained.metadata)
    return synthesize([str(p) for p in paths], features=spec, domain=trained.domain,
                      size=tuple(start.shape[2:]), steps=steps, init=start, seed=seed,
                      device=device, progress=progress, memory_check=True,
                      manager=manager)


def tile_extent(generator: Generator, size: Sequence[int], tile: int | None = None) -> int:
    """How to make an output of ``size``: tiles of this extent per axis, or 0 for one piece.

    ``tile`` as asked (``0``: one piece; a positive extent is refused with the reason when
    the generator cannot work in windows); ``None``: one piece up to
    :data:`~texsynth.tiled.AUTO_TILE_POSITIONS` positions, tiles of
    :func:`~texsynth.tiled.default_tile` above (with a warning, and in one piece, when the
    generator cannot be tiled).
    """
    problem = tiling_problem(generator)
    if tile is not None:
        if tile and problem is not None:
            raise UsageError(f"tile: {problem}", parameter="tile")
        return int(tile)
    if math.prod(size) <= AUTO_TILE_POSITIONS:
        return 0
    if problem is not None:
        warnings.warn(f"sampling {'x'.join(map(str, reversed(tuple(size))))} in one piece, "
                      f"which may need much memory: {problem}", UserWarning, stacklevel=2)
        return 0
    return default_tile(len(size))


def sample_to_file(source: CheckpointPath | TrainedGenerator, path: str | os.PathLike[str],
                   size: tuple[int, ...], *, seed: int, index: int = 0, tile: int,
                   metadata: Mapping[str, Any] | None = None, progress: bool = False,
                   manager: PluginManager | None = None) -> dict[str, Any]:
    """Write sample ``index`` of ``seed`` (as :func:`sample` would draw it) to ``path`` in
    tiles of ``tile`` positions per axis, through the domain's streaming writer
    (:meth:`Domain.open_writer`). Returns the settings stored with it (``metadata``
    added)."""
    trained = _trained(source, None, manager)
    domain = trained.domain
    domain.check_size(size)
    settings = {**_settings(trained, "sample", seed, index=index,
                            size=domain.describe_size(size)), **dict(metadata or {}),
                "tile": tile}
    with domain.open_writer(Path(path), size, trained.generator.config.out_channels,
                            metadata=settings) as writer:
        sample_tiled(trained.generator, size, seed=seed, index=index, tile=tile,
                     sink=writer.write, progress=progress)
    return settings


def apply(source: CheckpointPath | TrainedGenerator, content: torch.Tensor | str | os.PathLike[str],
          *, seed: int | None = None, device: str | torch.device | None = None,
          manager: PluginManager | None = None) -> SampleResult:
    """Repaint ``content`` (a signal ``(1, C, *spatial)`` or a file) with a trained
    stylisation generator in one pass; the result has the content's size."""
    trained = _trained(source, device, manager)
    if not trained.is_stylizer:
        raise UsageError(f"{trained.path}: is a texture generator without content input; "
                         "sample it (texsynth sample) instead")
    described = "<tensor>" if isinstance(content, torch.Tensor) else os.fspath(content)
    signal = content if isinstance(content, torch.Tensor) \
        else trained.domain.load(Path(content))
    used = seed_everything(seed)
    out = generate(trained.generator, seed=used, content=signal)
    settings = _settings(trained, "apply", used, content=described)
    settings.pop("generator")
    return SampleResult(signals=out, settings=[settings])
