"""What a sampling run will cost, measured before it starts: time, memory and output size
(:func:`estimate_sample`, :class:`SampleEstimate`), and the memory guard that refuses a
pass that cannot fit (:func:`check_one_piece_memory`, :func:`check_tile_memory`).

**Memory guard.** Before drawing, :func:`~texsynth.feedforward.sampling.generate` (and so
:func:`~texsynth.feedforward.sampling.sample` and :func:`~texsynth.feedforward.sampling.apply`)
estimates the memory of the pass and refuses with a one-line
:class:`~texsynth.errors.ResourceError` when it cannot fit;
:func:`~texsynth.feedforward.sample_files.sample_to_file` does the same for one tile. The
estimate is measured: the peak of live tensors (:func:`texsynth.memory.peak_live_bytes`)
while one signal of a small probe size (:data:`PROBE_EXTENT` per axis, at least the
generator's ``min_extent``) is drawn, per position, times the positions of the run and
:data:`~texsynth.memory.WORKSPACE_FACTOR`. A cheap lower bound (the widest layer's maps at
full size) is checked first, and is the only check for runs of at most
:data:`SMALL_RUN_POSITIONS` positions. ``memory_check=False`` or
``TEXSYNTH_MEMORY_CHECK=0`` skips the guard.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from ..domain import MAX_EXTENT
from ..errors import UsageError
from ..generator import Generator, NormStats, WindowedGenerator
from ..memory import WORKSPACE_FACTOR, check_fits, memory_check_enabled, peak_live_bytes
from .loading import TrainedGenerator, device_of

__all__ = [
    "PROBE_EXTENT",
    "SMALL_RUN_POSITIONS",
    "SampleEstimate",
    "check_extents",
    "check_one_piece_memory",
    "check_tile_memory",
    "estimate_sample",
    "evaluating",
]

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
            or one tile when tiled (what :func:`~texsynth.feedforward.sampling.generate` /
            :func:`~texsynth.feedforward.sample_files.sample_to_file` check).
    """

    seconds: float
    output_bytes: int
    memory_bytes: int


def check_extents(size: Sequence[int]) -> tuple[int, ...]:
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
    device = device_of(generator)
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
def evaluating(generator: Generator) -> Iterator[None]:
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
    with evaluating(generator):
        peak = peak_live_bytes(draw)
        seconds = _timed(draw, device_of(generator)) if timed else 0.0
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
    device = device_of(generator)
    window = functools.partial(generator.forward_region, 0, [0], size, region,
                               norm_stats=stats, device=device)
    with evaluating(generator):
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
    device = device_of(generator)
    sizes = generator.scale_sizes(size)
    total = 0.0
    with evaluating(generator):
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
        source: the generator, or a
            :func:`~texsynth.feedforward.loading.load_trained` result.
        size: extents of each sample, tensor order.
        count: number of samples.
        tile: tile extent per axis (0: in one piece, as
            :func:`~texsynth.feedforward.sampling.generate`).

    Returns:
        :class:`SampleEstimate`: ``seconds`` (rough, from a timed probe of at most
        :data:`PROBE_EXTENT` per axis scaled by positions), ``output_bytes``
        (``count × channels × positions``, one byte per value: a lower bound) and
        ``memory_bytes`` (peak, of the whole pass or of one tile).

    Raises:
        UsageError: a size, count or tile that cannot be used.
    """
    generator = source.generator if isinstance(source, TrainedGenerator) else source
    extents = check_extents(size)
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


def check_one_piece_memory(generator: Generator, size: tuple[int, ...], count: int,
                  content: torch.Tensor | None) -> None:
    """Refuse (:class:`~texsynth.errors.ResourceError`) a one-piece pass of ``count``
    signals of ``size`` (``content``: as for
    :func:`~texsynth.feedforward.sampling.generate`) that will not fit its device; nothing
    when ``TEXSYNTH_MEMORY_CHECK=0``."""
    if not memory_check_enabled():
        return
    device = device_of(generator)
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


def check_tile_memory(generator: Generator, size: tuple[int, ...], tile: int) -> None:
    """Refuse (:class:`~texsynth.errors.ResourceError`) tiles of ``tile`` positions per
    axis of an output of ``size`` when one will not fit the generator's device; nothing
    when ``TEXSYNTH_MEMORY_CHECK=0``."""
    if not memory_check_enabled():
        return
    estimate, _ = _per_tile(generator, size, tile)
    check_fits(estimate, device_of(generator), what=f"sampling in tiles of {tile}",
               advice="use smaller tiles (tile), or set TEXSYNTH_MEMORY_CHECK=0 to try "
                      "anyway", parameter=("tile",))
