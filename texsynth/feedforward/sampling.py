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
* :func:`sample_stream` writes one sample as it is made, chunk by chunk along its first
  axis (sound to a player or a file, in real time), with or without an end;
* :func:`apply` runs a stylisation generator on a content signal;
* :func:`generate` is the low-level draw from a :class:`~texsynth.generator.Generator`;
* :func:`estimate_sample` says, before a run, about how long it will take, how much memory
  it needs and how large its output is (:class:`SampleEstimate`).

**Memory guard.** Before drawing, :func:`generate` (and so :func:`sample` and
:func:`apply`) estimates the memory of the pass and refuses with a one-line
:class:`~texsynth.errors.ResourceError` when it cannot fit; :func:`sample_to_file` does the
same for one tile. The estimate is measured: the peak of live tensors
(:func:`texsynth.memory.peak_live_bytes`) while one signal of a small probe size
(:data:`PROBE_EXTENT` per axis, at least the generator's ``min_extent``) is drawn, per
position, times the positions of the run and
:data:`~texsynth.memory.WORKSPACE_FACTOR`. A cheap lower bound (the widest layer's maps
at full size) is checked first, and is the only check for runs of at most
:data:`SMALL_RUN_POSITIONS` positions. ``memory_check=False`` or
``TEXSYNTH_MEMORY_CHECK=0`` skips the guard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..controls.doodles import blend_masks
from ..controls.regions import GuideSource, doodle_masks, load_guide_map
from ..domain import MAX_EXTENT, Domain, StreamResult
from ..errors import InputError, TexsynthError, UsageError
from ..generator import Generator, NormStats, WindowedGenerator
from ..memory import (
    WORKSPACE_FACTOR,
    check_disk,
    check_fits,
    format_bytes,
    memory_check_enabled,
    peak_live_bytes,
)
from ..optim.synthesis import OptimizationResult, synthesize
from ..plugins import PluginManager, get_plugin_manager
from ..runtime.device import resolve_device
from ..runtime.rng import seed_everything
from ..stats.features import FeatureSpec
from .checkpoint import load_generator
from .tiled import (
    AUTO_TILE_POSITIONS,
    STREAM_PERIOD,
    default_tile,
    sample_tiled,
    stream_tiled,
    tiling_problem,
)

__all__ = [
    "PROBE_EXTENT",
    "SMALL_RUN_POSITIONS",
    "SampleEstimate",
    "SampleResult",
    "TrainedGenerator",
    "apply",
    "estimate_sample",
    "generate",
    "load_trained",
    "plan_notice",
    "refine",
    "refine_exemplars",
    "sample",
    "sample_to_file",
    "tile_extent",
]

#: A checkpoint file.
CheckpointPath = str | os.PathLike[str]

#: Extent per axis of the probe the memory and time estimates measure (at least the
#: generator's :meth:`~texsynth.generator.Generator.min_extent`, at most the run's).
PROBE_EXTENT = 64
#: Runs of at most this many positions (samples × positions per sample) are only checked
#: against the cheap lower bound: measuring them would cost about as much as the run.
SMALL_RUN_POSITIONS = 2**16
#: What a refused sampling run can do instead (the parameters it names, for front ends).
_ADVICE = ("use a smaller size or count, sample in tiles (tile), or set "
           "TEXSYNTH_MEMORY_CHECK=0 to try anyway")
_ADVICE_NAMES = ("size", "count", "tile")


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
        """Whether the generator takes a content signal or a doodle (``texsynth apply``);
        a blend generator's second input is its weights, given to :func:`sample`."""
        return bool(self.generator.config.content_channels) and self.blends is None

    @property
    def blends(self) -> dict[str, Any] | None:
        """The exemplars of a blend generator (``regions``, ``names``), else ``None``."""
        info = (self.metadata.get("training") or {}).get("blends")
        return dict(info) if isinstance(info, Mapping) else None

    @property
    def doodles(self) -> dict[str, Any] | None:
        """The regions of a doodle-conditioned generator (``regions``, ``names``,
        ``palette``), else ``None``."""
        info = (self.metadata.get("training") or {}).get("doodles")
        return dict(info) if isinstance(info, Mapping) else None

    @property
    def training_size(self) -> tuple[int, ...]:
        """The extents it was trained at (tensor order).

        Raises:
            InputError: the checkpoint does not record them.
        """
        size = (self.metadata.get("training") or {}).get("size")
        if size is None:
            raise InputError(self.path, "corrupt or tampered checkpoint: training.size is "
                                        "missing; give the size to sample")
        return tuple(int(e) for e in size)

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
    stored = dict(meta.get("domain_config") or {})
    try:  # the stored settings are untrusted: a refusal of them names the checkpoint
        domain = info.domain_class.from_config(stored)
    except (TexsynthError, TypeError, ValueError, OverflowError) as exc:
        text = str(exc).strip().splitlines()
        raise InputError(path, f"corrupt or tampered checkpoint: domain_config is refused by "
                               f"domain {name!r} ({text[0] if text else type(exc).__name__})"
                         ) from None
    if domain_config:
        domain = info.domain_class.from_config({**stored, **dict(domain_config)})
    return TrainedGenerator(generator=generator, metadata=meta, domain=domain, path=Path(path))


# -- memory and time estimates ----------------------------------------------------------------
@dataclass(frozen=True)
class SampleEstimate:
    """What a sampling run will cost, estimated before it starts (:func:`estimate_sample`).

    Attributes:
        seconds: rough wall-clock seconds for all samples on the generator's device (a
            timed probe scaled by positions; tiled runs include the statistics passes of
            instance norm). Small probes tend to overestimate.
        output_bytes: ``count × channels × positions``, the uncompressed output at one
            byte per value: a lower bound of what is written (the domain's format decides
            the real size, e.g. 16-bit sound or compressed pictures).
        memory_bytes: peak memory of the run on its device: the whole batch in one piece,
            or one tile when tiled (what :func:`generate` / :func:`sample_to_file` check).
    """

    seconds: float
    output_bytes: int
    memory_bytes: int


def _device_of(generator: Generator) -> torch.device:
    """The device of ``generator``'s first parameter (the CPU if it has none)."""
    for tensor in generator.parameters():
        return tensor.device
    return torch.device("cpu")


def _check_extents(size: Sequence[int]) -> tuple[int, ...]:
    """``size`` as ints, every extent from 1 to :data:`~texsynth.domain.MAX_EXTENT`."""
    extents = tuple(int(e) for e in size)
    for extent in extents:
        if not 1 <= extent <= MAX_EXTENT:
            raise UsageError(f"size: every extent must be from 1 to {MAX_EXTENT}, got "
                             f"{extent}", parameter="size")
    return extents


def _probe_extents(generator: Generator, size: Sequence[int], extent: int = PROBE_EXTENT
                   ) -> tuple[int, ...]:
    """Per axis ``extent`` (at least the generator's ``min_extent``), at most ``size``."""
    low = generator.min_extent()
    return tuple(min(int(e), max(extent, low)) for e in size)


def _lower_bound_bytes(generator: Generator, size: Sequence[int], count: int) -> int:
    """Bytes any one-piece pass needs at least: the input and output of the widest layer
    (most ``out_channels`` of any module) and the signal, float32, at full size."""
    widths = [int(w) for m in generator.modules()
              if isinstance(w := getattr(m, "out_channels", None), int)]
    widest = max(widths, default=generator.config.out_channels)
    return 4 * count * math.prod(size) * (2 * widest + generator.config.out_channels)


def _probe_draw(generator: Generator, probe: tuple[int, ...],
                content: torch.Tensor | None) -> Callable[[], object]:
    """A function that draws one signal of ``probe`` extents (noise and forward, no
    gradients, eval mode expected); ``content`` is cropped to the probe."""
    device = _device_of(generator)
    crop = None
    if content is not None:
        crop = content[(slice(0, 1), slice(None), *(slice(0, p) for p in probe))].to(device)

    def draw() -> object:
        rng = torch.Generator().manual_seed(0)
        noise = generator.make_noise(1, probe, generator=rng, device=device)
        return generator(noise, crop)

    return draw


def _timed(run: Callable[[], object], device: torch.device) -> float:
    """Seconds ``run()`` takes (after the device has finished)."""
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


@contextlib.contextmanager
def _evaluating(generator: Generator) -> Any:
    """Eval mode and no gradients for the block; the previous mode comes back after."""
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        generator.train(was_training)


def _one_piece(generator: Generator, size: tuple[int, ...], count: int,
               content: torch.Tensor | None, *, timed: bool = False) -> tuple[int, float]:
    """``(bytes, seconds)`` of drawing ``count`` signals of ``size`` in one pass, from a
    probe scaled by positions (seconds only when ``timed``, else 0)."""
    probe = _probe_extents(generator, size)
    draw = _probe_draw(generator, probe, content)
    with _evaluating(generator):
        peak = peak_live_bytes(draw)
        seconds = _timed(draw, _device_of(generator)) if timed else 0.0
    scale = count * math.prod(size) / math.prod(probe)
    return int(peak * scale * WORKSPACE_FACTOR), seconds * scale


def _probe_stats(generator: WindowedGenerator) -> NormStats | None:
    """Stand-in statistics (mean 0, variance 1) for every instance-norm layer, or
    ``None`` when a layer does not say its channels (``num_features``)."""
    stats: NormStats = {}
    for _, module in generator.instance_norms():
        channels = getattr(module, "num_features", None)
        if not isinstance(channels, int):
            return None
        device = next(iter(module.parameters()), torch.zeros(0)).device
        stats[module] = (torch.zeros(1, channels, device=device),
                         torch.ones(1, channels, device=device))
    return stats


def _per_tile(generator: Generator, size: tuple[int, ...], tile: int, *,
              timed: bool = False) -> tuple[int, float]:
    """``(bytes, seconds)`` of one tile of ``tile`` positions per axis of an output of
    ``size`` (the last pass, without instance norm's statistics passes; seconds only when
    ``timed``, else 0), measured on a window of at most :data:`PROBE_EXTENT` per axis."""
    extents = tuple(min(tile, e) for e in size)
    stats = _probe_stats(generator) if isinstance(generator, WindowedGenerator) else None
    if stats is None:  # no windows to measure: a one-piece pass of the tile's extents
        low = generator.min_extent()
        piece = tuple(min(s, max(e, low)) for e, s in zip(extents, size, strict=True))
        return _one_piece(generator, piece, 1, None, timed=timed)
    assert isinstance(generator, WindowedGenerator)
    region = tuple((0, min(PROBE_EXTENT, e)) for e in extents)
    device = _device_of(generator)
    window = functools.partial(generator.forward_region, 0, [0], size, region,
                               norm_stats=stats, device=device)
    with _evaluating(generator):
        peak = peak_live_bytes(window)
        seconds = _timed(window, device) if timed else 0.0
    scale = math.prod(extents) / math.prod(hi for _, hi in region)
    return int(peak * scale * WORKSPACE_FACTOR), seconds * scale


def _stats_seconds(generator: Generator, size: tuple[int, ...]) -> float:
    """Seconds of instance norm's statistics passes over a whole output of ``size`` (0
    without instance norm): per layer, one :meth:`~WindowedGenerator.norm_input` on a
    window of at most :data:`PROBE_EXTENT` per axis of its scale, scaled to the scale's
    positions."""
    if not isinstance(generator, WindowedGenerator):
        return 0.0
    stats = _probe_stats(generator)
    if not stats:
        return 0.0
    device = _device_of(generator)
    sizes = generator.scale_sizes(size)
    total = 0.0
    with _evaluating(generator):
        for scale, module in generator.instance_norms():
            window = tuple((0, min(PROBE_EXTENT, e)) for e in sizes[scale])
            run = functools.partial(generator.norm_input, 0, [0], size, module, window,
                                    norm_stats=stats, device=device)
            share = math.prod(sizes[scale]) / math.prod(hi for _, hi in window)
            total += _timed(run, device) * share
    return total


def estimate_sample(source: TrainedGenerator | Generator, size: Sequence[int],
                    count: int = 1, tile: int = 0) -> SampleEstimate:
    """Estimate a sampling run before making it (for warnings about very long runs).

    Args:
        source: the generator, or a :func:`load_trained` result.
        size: extents of each sample, tensor order.
        count: number of samples.
        tile: tile extent per axis (0: in one piece, as :func:`generate`).

    Returns:
        :class:`SampleEstimate`: ``seconds`` (rough, from a timed probe of at most
        :data:`PROBE_EXTENT` per axis scaled by positions), ``output_bytes``
        (``count × channels × positions``, one byte per value: a lower bound) and
        ``memory_bytes`` (peak, of the whole pass or of one tile).

    Raises:
        UsageError: a size, count or tile that cannot be used.
    """
    generator = source.generator if isinstance(source, TrainedGenerator) else source
    extents = _check_extents(size)
    if count < 1:
        raise UsageError(f"count must be at least 1, got {count}", parameter="count")
    if tile < 0:
        raise UsageError(f"tile must be at least 0, got {tile}", parameter="tile")
    output = count * generator.config.out_channels * math.prod(extents)
    if tile:
        memory, seconds = _per_tile(generator, extents, tile, timed=True)
        tiles = math.prod(math.ceil(e / tile) for e in extents)
        seconds = (seconds * tiles + _stats_seconds(generator, extents)) * count
        return SampleEstimate(seconds=seconds, output_bytes=output, memory_bytes=memory)
    memory, seconds = _one_piece(generator, extents, count, None, timed=True)
    return SampleEstimate(seconds=seconds, output_bytes=output, memory_bytes=memory)


def _check_memory(generator: Generator, size: tuple[int, ...], count: int,
                  content: torch.Tensor | None) -> None:
    """Refuse (:class:`ResourceError`) a one-piece pass that will not fit its device."""
    if not memory_check_enabled():
        return
    device = _device_of(generator)
    what = f"sampling {count} of {'x'.join(map(str, reversed(size)))} in one piece"
    check_fits(_lower_bound_bytes(generator, size, count), device, what=what,
               advice=_ADVICE, parameter=_ADVICE_NAMES)
    if count * math.prod(size) <= SMALL_RUN_POSITIONS:
        return
    try:
        estimate, _ = _one_piece(generator, size, count, content)
    except UsageError:
        return  # the probe cannot be made; the run reports its own error
    check_fits(estimate, device, what=what, advice=_ADVICE, parameter=_ADVICE_NAMES)


def generate(source: Generator | CheckpointPath, size: tuple[int, ...] | None = None, *,
             seed: int | None = 0, count: int = 1, content: torch.Tensor | None = None,
             device: str | torch.device | None = None,
             manager: PluginManager | None = None, memory_check: bool = True
             ) -> torch.Tensor:
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
        memory_check: estimate the memory of the pass first and refuse with
            :class:`~texsynth.errors.ResourceError` when it cannot fit (see the module
            docstring; ``TEXSYNTH_MEMORY_CHECK=0`` also skips it).

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
    size = _check_extents(size)
    if memory_check:
        _check_memory(generator, size, count, content)
    rng = torch.Generator()
    if seed is None:
        rng.seed()
    else:
        rng.manual_seed(int(seed))
    dev = _device_of(generator)
    with _evaluating(generator):
        noise = generator.make_noise(count, size, generator=rng, device=dev)
        out = generator(noise, content.to(dev) if content is not None else None)
    return out.cpu()


def blend_weights(trained: TrainedGenerator, blend: Sequence[float] | None
                  ) -> list[float] | None:
    """A blend generator's weights, normalised (``None`` gives equal weights); ``None``
    for other generators.

    Raises:
        UsageError: weights for a generator that takes none, a wrong count, or weights
            that are negative or all zero.
    """
    info = trained.blends
    if info is None:
        if blend is not None:
            raise UsageError(f"{trained.path}: is not a blend generator (train one with "
                             "--blends)", parameter="blend")
        return None
    count = info.get("regions")
    if not isinstance(count, int) or count != trained.generator.config.content_channels:
        raise InputError(trained.path, "corrupt or tampered checkpoint: training.blends "
                                       "does not match the generator's inputs")
    values = [1.0] * count if blend is None else [float(w) for w in blend]
    if len(values) != count:
        raise UsageError(f"{len(values)} blend weights for a generator of {count} "
                         "exemplars", parameter="blend")
    if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise UsageError("blend weights must be non-negative numbers, not all zero",
                         parameter="blend")
    total = sum(values)
    return [w / total for w in values]


def doodle_input(trained: TrainedGenerator, guide: GuideSource,
                 size: tuple[int, ...] | None = None) -> torch.Tensor:
    """The region masks ``(1, K, *spatial)`` a doodle-conditioned generator takes for a
    guide (see :func:`apply`), with its training's regions.

    Raises:
        UsageError: the guide's regions are not the generator's.
    """
    info = trained.doodles
    if info is None:
        raise UsageError(f"{trained.path}: is not a doodle-conditioned generator")
    regions, palette = _stored_regions(trained, info)
    guide_map = load_guide_map(trained.domain, guide, size)
    return doodle_masks(guide_map, regions, palette)[None]


def _stored_regions(trained: TrainedGenerator, info: Mapping[str, Any]
                    ) -> tuple[int, torch.Tensor | None]:
    """The number of regions and the palette ``(K, V)`` stored in a checkpoint, checked
    (a checkpoint is untrusted input) against the generator's inputs."""
    bad = InputError(trained.path, "corrupt or tampered checkpoint: training.doodles does "
                                   "not match the generator's inputs")
    regions = info.get("regions")
    if not isinstance(regions, int) or regions != trained.generator.config.content_channels:
        raise bad
    palette = info.get("palette")
    if palette is None:
        return regions, None
    try:
        values = torch.tensor(palette, dtype=torch.float32)
    except (TypeError, ValueError):
        raise bad from None
    if values.dim() != 2 or values.shape[0] != regions or not torch.isfinite(values).all():
        raise bad
    return regions, values


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
           manager: PluginManager | None = None, memory_check: bool = True,
           blend: Sequence[float] | None = None) -> SampleResult:
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
        memory_check: refuse, before drawing, a pass that will not fit in memory
            (:func:`generate`).
        blend: a blend generator's weights, one per exemplar (normalised to sum 1;
            default: equal); the same seed with other weights gives the same layout of
            noise moved between the textures.

    Returns:
        :class:`SampleResult` with ``(count, C, *size)`` signals and, per sample,
        ``command``, ``checkpoint``, ``seed``, ``index``, ``size``, ``domain``,
        ``generator``, ``trained_steps`` (and ``refine_steps``).
    """
    trained = _trained(source, device, manager)
    if trained.is_stylizer:
        what = "a doodle" if trained.doodles is not None else "content"
        raise UsageError(f"{trained.path}: is a {'doodle' if trained.doodles else 'stylisation'}"
                         f" generator; apply it to {what} (texsynth apply) instead of "
                         "sampling it")
    extents = tuple(size) if size is not None else trained.training_size
    trained.domain.check_size(extents)
    paths = refine_exemplars(trained, exemplars) if refine_steps else []
    weights = blend_weights(trained, blend)
    codes = None if weights is None else blend_masks(torch.tensor(weights), extents)
    used = seed_everything(seed)
    signals = generate(trained.generator, extents, seed=used, count=count,
                       memory_check=memory_check, content=codes)
    if refine_steps:
        signals = torch.cat([refine(trained, signals[i:i + 1], steps=refine_steps,
                                    exemplars=paths, seed=used, device=device,
                                    progress=progress).signal for i in range(count)])
    describe = trained.domain.describe_size(extents)
    extra = {} if weights is None else {"blend": weights}
    settings = [_settings(trained, "sample", used, index=i, size=describe, **extra)
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
    try:
        spec = FeatureSpec.from_settings(trained.metadata)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(trained.path, "corrupt or tampered checkpoint: the training loss "
                                       f"cannot be rebuilt ({type(exc).__name__}: {exc})",
                         parameter="refine_steps") from None
    return synthesize([str(p) for p in paths], features=spec, domain=trained.domain,
                      size=tuple(start.shape[2:]), steps=steps, init=start, seed=seed,
                      device=device, progress=progress, memory_check=True,
                      manager=manager)


#: Runs estimated to take longer than this (seconds) or to write more than
#: :data:`LONG_RUN_BYTES` are announced before they start (:func:`plan_notice`).
LONG_RUN_SECONDS = 60.0
LONG_RUN_BYTES = 1 << 30
#: Runs of at most this many output positions in all are never probed for an estimate.
QUICK_RUN_POSITIONS = 4 * 1024 * 1024


def plan_notice(trained: TrainedGenerator, outputs: Sequence[str | os.PathLike[str]],
                size: Sequence[int], tile: int) -> str | None:
    """Before sampling ``len(outputs)`` files of ``size``: refuse what the disk cannot hold
    (:func:`~texsynth.memory.check_disk`, against the output's lower bound), and for
    runs estimated above :data:`LONG_RUN_SECONDS` or :data:`LONG_RUN_BYTES`, return a
    one-line notice of their time and size (``None`` for ordinary runs)."""
    count = len(outputs)
    lower = trained.generator.config.out_channels * math.prod(size)
    for path in outputs:
        check_disk(path, lower, what=f"{Path(path).name}")
    if count * math.prod(size) <= QUICK_RUN_POSITIONS:
        return None
    estimate = estimate_sample(trained, size, count=count, tile=tile)
    if estimate.seconds < LONG_RUN_SECONDS and estimate.output_bytes < LONG_RUN_BYTES:
        return None
    minutes = estimate.seconds / 60
    duration = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
    return (f"this run will take about {duration} and write at least "
            f"{format_bytes(estimate.output_bytes)} "
            f"({trained.domain.describe_size(tuple(size))} x {count})")


def tile_extent(generator: Generator, size: Sequence[int], tile: int | None = None) -> int:
    """How to make an output of ``size``: tiles of this extent per axis, or 0 for one piece.

    ``tile`` as asked (``0``: one piece; a positive extent is refused with the reason when
    the generator cannot work in windows); ``None``: one piece up to
    :data:`~texsynth.feedforward.tiled.AUTO_TILE_POSITIONS` positions, tiles of
    :func:`~texsynth.feedforward.tiled.default_tile` above (with a warning, and in one piece, when the
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
                   size: tuple[int, ...], *, seed: int | None, index: int = 0, tile: int,
                   metadata: Mapping[str, Any] | None = None, progress: bool = False,
                   manager: PluginManager | None = None, memory_check: bool = True
                   ) -> dict[str, Any]:
    """Write sample ``index`` of ``seed`` (as :func:`sample` would draw it) to ``path`` in
    tiles of ``tile`` positions per axis, through the domain's streaming writer
    (:meth:`Domain.open_writer`). Returns the settings stored with it (``metadata``
    added; ``seed`` is the one used: drawn, and the process seeded, when ``None``, as
    :func:`sample` does). With ``memory_check`` the memory of one tile is estimated first
    and a tile that will not fit is refused (:class:`~texsynth.errors.ResourceError`)."""
    seed = seed_everything(seed)
    trained = _trained(source, None, manager)
    domain = trained.domain
    size = _check_extents(size)
    domain.check_size(size)
    if memory_check and memory_check_enabled() and tile > 0:
        generator = trained.generator
        estimate, _ = _per_tile(generator, size, tile)
        check_fits(estimate, _device_of(generator), what=f"sampling in tiles of {tile}",
                   advice="use smaller tiles (tile), or set TEXSYNTH_MEMORY_CHECK=0 to try "
                          "anyway", parameter=("tile",))
    settings = {**_settings(trained, "sample", seed, index=index,
                            size=domain.describe_size(size)), **dict(metadata or {}),
                "tile": tile}
    with domain.open_writer(Path(path), size, trained.generator.config.out_channels,
                            metadata=settings) as writer:
        sample_tiled(trained.generator, size, seed=seed, index=index, tile=tile,
                     sink=writer.write, progress=progress)
    return settings


def sample_stream(source: CheckpointPath | TrainedGenerator, path: str | os.PathLike[str] | None,
                  length: int | None = None, *, rest: Sequence[int] = (), seed: int | None = None,
                  index: int = 0, chunk: int | None = None,
                  metadata: Mapping[str, Any] | None = None,
                  manager: PluginManager | None = None) -> tuple[StreamResult, dict[str, Any]]:
    """Make sample ``index`` of ``seed`` chunk by chunk along the first axis and write
    each chunk as it comes (:meth:`Domain.write_stream`): to ``path``, or to standard
    output for ``None``.

    Args:
        source: a checkpoint path or a :func:`load_trained` result.
        length: extent of the first axis (samples, for sound): the stream is then exactly
            the tiled sample of that size and seed, a loop; ``None``: no end, until
            Ctrl-C (or the reader of standard output goes away).
        rest: the other axes' extents (none for sound).
        seed: noise seed; ``None`` draws one (returned in the settings).
        chunk: positions per chunk (default :func:`texsynth.feedforward.tiled.default_tile`).
        metadata: more settings to store with the file.

    Returns:
        What was written (:class:`~texsynth.domain.StreamResult`) and the settings stored
        with it.
    """
    seed = seed_everything(seed)
    trained = _trained(source, None, manager)
    rest = _check_extents(rest) if rest else ()
    if length is not None:
        if not 1 <= int(length) <= STREAM_PERIOD:  # no MAX_EXTENT: memory stays bounded
            raise UsageError(f"length must be from 1 to {STREAM_PERIOD}, got {length}",
                             parameter="length")
        trained.domain.check_size((int(length), *rest))
    size = "unbounded" if length is None else \
        trained.domain.describe_size((int(length), *rest))
    settings = {**_settings(trained, "sample", seed, index=index, size=size),
                **dict(metadata or {}), "stream": True}
    blocks = stream_tiled(trained.generator, rest, length=length, seed=seed, index=index,
                          chunk=chunk)
    target = None if path is None else Path(path)
    written = trained.domain.write_stream(blocks, target, trained.generator.config.out_channels,
                                          metadata=settings)
    return written, settings


def apply(source: CheckpointPath | TrainedGenerator, content: torch.Tensor | str | os.PathLike[str],
          *, seed: int | None = None, device: str | torch.device | None = None,
          manager: PluginManager | None = None, memory_check: bool = True,
          size: tuple[int, ...] | None = None) -> SampleResult:
    """Repaint ``content`` (a signal ``(1, C, *spatial)`` or a file) with a trained
    stylisation generator in one pass; the result has the content's size. A pass that
    will not fit in memory is refused first unless ``memory_check`` is false
    (:func:`generate`).

    For a doodle-conditioned generator (``train_generator(doodles=True)``) ``content`` is
    a guide: a doodle file (each colour a region, as in training), a domain's text (sound:
    boundaries in seconds, with ``size``) or a map ``(V, *spatial)``; ``size`` resizes it
    (nearest neighbours)."""
    trained = _trained(source, device, manager)
    if not trained.is_stylizer:
        raise UsageError(f"{trained.path}: is a texture generator without content input; "
                         "sample it (texsynth sample) instead")
    described = "<tensor>" if isinstance(content, torch.Tensor) else os.fspath(content)
    if trained.doodles is not None:
        signal = doodle_input(trained, content, size)
    elif isinstance(content, torch.Tensor):
        signal = content
    else:
        signal = trained.domain.load(Path(content))
    used = seed_everything(seed)
    out = generate(trained.generator, seed=used, content=signal, memory_check=memory_check)
    settings = _settings(trained, "apply", used, content=described)
    settings.pop("generator")
    return SampleResult(signals=out, settings=[settings])
