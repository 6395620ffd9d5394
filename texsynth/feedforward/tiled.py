"""Tiled sampling: outputs of any size from a trained generator in bounded memory.

:func:`sample_tiled` makes the output of :func:`texsynth.feedforward.sampling.generate` (same seed,
same sample number, same size) tile by tile and hands each tile to a writer (for
example :meth:`texsynth.Domain.open_writer`, which streams PNGs to disk), so the memory
it needs depends on the tile size, not on the output size.

Any generator that implements :class:`texsynth.generator.WindowedGenerator` can be
sampled in tiles (:func:`tiling_problem` says why one cannot); the pyramid generators do.
How a pyramid tile is exact (see :mod:`texsynth.feedforward.noise` and
:mod:`texsynth.feedforward.windows`): the noise is counter-based, so the noise of any window is
made on its own; every scale of the tile is computed on its window plus the halo its convolutions
read (:meth:`texsynth.feedforward.pyramid.PyramidGenerator.halo`) with unpadded convolutions, and
positions outside the output wrap around as the circular padding of the whole output does. Tiles
therefore join without a seam and the tiled output wraps like the whole one.

* **Batch norm** (eval mode, running statistics) is pointwise: a tiled output equals the
  whole one up to float rounding (measured ≤ 1e-6; tests use ``atol=1e-5``).
* **Instance norm** normalises by statistics over a scale's *whole* extent, which no tile
  sees. :func:`instance_norm_stats` computes them first, one pass over tiles per
  instance-norm layer in the order the network runs them (each pass needs the statistics of
  the layers before), accumulating per-tile means and squared deviations in float64 and
  merging them exactly (Chan et al.); the tiles then use these frozen statistics. The result
  equals the whole output up to float rounding (measured 6e-6 for six scales at 1024²;
  tests use ``atol=1e-5``), at the price of those extra passes: ``3K + 5(K-1)`` of them,
  most over the cheap coarse scales; in all about 4.7× the time of sampling in one piece
  (six scales, 1024², one CPU thread).

**Streams.** :func:`stream_tiled` yields the output in consecutive blocks along its first
axis (time, for sound) as they are made, for writers that play or append as they go:
with a ``length`` the blocks make up exactly the output :func:`sample_tiled` gives for
that size (a loop); without one the output has the nominal first extent
:data:`STREAM_PERIOD`, so it never repeats in practice and runs until the caller stops.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import UsageError
from ..generator import Generator, NormStats, Region, WindowedGenerator

__all__ = [
    "AUTO_TILE_POSITIONS",
    "DEFAULT_TILE_POSITIONS",
    "STREAM_CHUNK",
    "STREAM_PERIOD",
    "BlockSink",
    "default_tile",
    "instance_norm_stats",
    "sample_tiled",
    "stream_tiled",
    "tile_regions",
    "tiling_problem",
]

#: ``texsynth sample`` tiles automatically above this many output positions (1024²): in
#: one piece, the default six-scale generator peaks at about 1.9 GiB for 1024² and 5.4 GiB
#: for 2048² (CPU), while tiles of 512² stay under 1 GiB at any size, and with batch norm
#: are no slower.
AUTO_TILE_POSITIONS = 1024 * 1024
#: Positions per tile by default: 512² for images (a few hundred MiB of activations for
#: the default six-scale generator), 2**18 positions in 1-D.
DEFAULT_TILE_POSITIONS = 512 * 512

#: First extent of an output streamed without an end (:func:`stream_tiled`): ``2**40``
#: positions, 570 days of sound at 22 050 Hz, after which the noise would repeat.
STREAM_PERIOD = 1 << 40
#: Positions per block of a stream by default (:func:`stream_tiled`): ``2**16`` (3 s of
#: sound at 22 050 Hz, made in a few hundredths of a second by a strided generator),
#: divided among the other axes' positions when there are some.
STREAM_CHUNK = 1 << 16

#: ``sink(block, offset)``: receives one tile ``(C, *extent)`` at ``offset`` (tensor order).
BlockSink = Callable[[torch.Tensor, tuple[int, ...]], None]


def default_tile(dims: int) -> int:
    """Tile extent per axis giving about :data:`DEFAULT_TILE_POSITIONS` positions."""
    return max(1, round(DEFAULT_TILE_POSITIONS ** (1.0 / dims)))


def _protocol_methods() -> list[str]:
    """The methods :class:`WindowedGenerator` declares, in declaration order."""
    return [name for name, value in vars(WindowedGenerator).items()
            if not name.startswith("_") and callable(value)]


def tiling_problem(generator: Generator) -> str | None:
    """``None`` if ``generator`` can be sampled in tiles, else a one-line reason.

    A generator can be when it implements :class:`WindowedGenerator` (checked with
    ``isinstance``) and its :meth:`~WindowedGenerator.tileable` finds no problem.
    """
    if not isinstance(generator, WindowedGenerator):
        missing = [name for name in _protocol_methods()
                   if not callable(getattr(generator, name, None))]
        return (f"generator {generator.config.name!r} does not support windows of its output "
                f"(it lacks {', '.join(missing) or 'the WindowedGenerator methods'})")
    return generator.tileable()


def tile_regions(size: Sequence[int], tile: int) -> Iterator[Region]:
    """Windows of at most ``tile`` positions per axis covering ``size``, in raster order
    (the last axis fastest, so row bands of an image come one after the other)."""
    if tile < 1:
        raise UsageError(f"tile must be at least 1, got {tile}")
    spans = [[(start, min(start + tile, int(extent))) for start in range(0, int(extent), tile)]
             for extent in size]
    yield from itertools.product(*spans)


def _count(size: Sequence[int], tile: int) -> int:
    return math.prod(math.ceil(int(e) / tile) for e in size)


def instance_norm_stats(generator: WindowedGenerator, key: int, samples: Sequence[int],
                        size: Sequence[int], tile: int, *, device: torch.device | None = None,
                        on_tile: Callable[[], None] | None = None) -> NormStats:
    """Whole-extent ``(mean, var)`` ``(N, C)`` of every instance-norm layer, by tiles.

    ``N`` is ``len(samples)``; ``key``, ``samples`` and ``size`` are those of
    :meth:`WindowedGenerator.forward_region`, ``tile`` the tile extent per axis.

    One pass per layer in execution order; each pass computes the layer's input tile by
    tile (with the statistics found so far) and merges per-tile float64 means and sums of
    squared deviations. ``on_tile`` is called after every tile (progress).
    """
    stats: NormStats = {}
    sizes = generator.scale_sizes(size)
    for scale, module in generator.instance_norms():
        count = 0
        mean: torch.Tensor | None = None
        squares: torch.Tensor | None = None
        for region in tile_regions(sizes[scale], tile):
            x = generator.norm_input(key, samples, size, module, region, norm_stats=stats,
                                     device=device).double()
            dims = tuple(range(2, x.dim()))
            n = math.prod(x.shape[2:])
            tile_mean = x.mean(dim=dims)
            tile_squares = (x - tile_mean.view(*tile_mean.shape, *([1] * len(dims)))
                            ).pow(2).sum(dim=dims)
            if mean is None or squares is None:
                mean, squares, count = tile_mean, tile_squares, n
            else:  # Chan et al.'s pairwise merge of (count, mean, M2)
                delta = tile_mean - mean
                total = count + n
                mean = mean + delta * (n / total)
                squares = squares + tile_squares + delta.pow(2) * (count * n / total)
                count = total
            if on_tile is not None:
                on_tile()
        assert mean is not None and squares is not None
        stats[module] = (mean.float(), (squares / count).float())
    return stats


def sample_tiled(generator: Generator, size: Sequence[int], *, seed: int = 0, index: int = 0,
                 tile: int | None = None, sink: BlockSink | None = None,
                 device: torch.device | str | None = None,
                 progress: bool = False) -> torch.Tensor | None:
    """Sample number ``index`` of ``generate(generator, size, seed=seed, count > index)``,
    made tile by tile.

    Args:
        generator: a :class:`WindowedGenerator` that can be tiled, e.g. a pyramid generator
            with circular padding (see :func:`tiling_problem`).
        size: output extents in tensor order (``(H, W)`` or ``(T,)``).
        seed: noise seed, as for :func:`texsynth.feedforward.sampling.generate`.
        index: which sample of that seed's batch to make (0 for the first).
        tile: tile extent per axis (default :func:`default_tile`).
        sink: ``sink(block (C, *extent), offset)`` receives each tile in raster order
            (e.g. ``writer.write`` of :meth:`texsynth.Domain.open_writer`); when ``None``
            the tiles are assembled and returned.
        device: where to compute (default: the generator's device).
        progress: show a tqdm bar over the tiles (statistics passes included).

    Returns:
        ``(1, C, *size)`` on the CPU when ``sink`` is ``None``, else ``None``. The
        generator runs in eval mode (running batch-norm statistics, as
        :func:`~texsynth.feedforward.sampling.generate`) and gets its previous mode back.
    """
    problem = tiling_problem(generator)
    if problem is not None:
        raise UsageError(f"cannot sample in tiles: {problem}")
    assert isinstance(generator, WindowedGenerator)
    size = tuple(int(s) for s in size)
    generator.scale_sizes(size)  # checks the size
    tile = tile or default_tile(len(size))
    dev = torch.device(device) if device is not None else next(generator.parameters()).device
    key = generator.noise_key(torch.Generator().manual_seed(int(seed)))
    norms = generator.instance_norms()
    sizes = generator.scale_sizes(size)
    total = _count(size, tile) + sum(_count(sizes[scale], tile) for scale, _ in norms)
    out = None if sink is not None else torch.empty(1, generator.config.out_channels, *size)
    was_training = generator.training
    generator.eval()
    bar = tqdm(total=total, desc="sample", unit="tile", disable=not progress,
               dynamic_ncols=True, leave=False)
    try:
        with torch.no_grad():
            stats = instance_norm_stats(generator, key, [index], size, tile, device=dev,
                                        on_tile=lambda: bar.update(1)) if norms else {}
            for region in tile_regions(size, tile):
                block = generator.forward_region(key, [index], size, region, norm_stats=stats,
                                                 device=dev)[0].cpu()
                offset = tuple(lo for lo, _ in region)
                if sink is not None:
                    sink(block, offset)
                else:
                    assert out is not None
                    window = tuple(slice(lo, hi) for lo, hi in region)
                    out[0][(slice(None), *window)] = block
                bar.update(1)
    finally:
        bar.close()
        generator.train(was_training)
    return out


def stream_tiled(generator: Generator, rest: Sequence[int] = (), *, length: int | None = None,
                 seed: int = 0, index: int = 0, chunk: int | None = None,
                 device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
    """Sample ``index`` of ``seed``, made and yielded block by block along the first axis.

    Args:
        generator: a :class:`WindowedGenerator` that can be tiled.
        rest: extents of the other axes (none for sound; the width for image rows).
        length: extent of the first axis: the blocks then join into exactly the output of
            :func:`sample_tiled` for ``(length, *rest)`` (the same seed and sample), which
            wraps around like any sample. ``None``: no end (the first extent is
            :data:`STREAM_PERIOD`); the caller stops iterating when it has enough.
        seed, index: as for :func:`sample_tiled`.
        chunk: positions of the first axis per block (default: :data:`STREAM_CHUNK`
            positions in all); the last block of a ``length`` may be shorter.
        device: where to compute (default: the generator's device).

    Yields:
        Blocks ``(C, n, *rest)`` on the CPU, in order. The generator is in eval mode while
        the iterator is suspended and gets its previous mode back when it ends.

    Raises:
        UsageError: the generator cannot be tiled, or it has instance norms and no
            ``length`` (their statistics span the whole output, which has no end).
    """
    problem = tiling_problem(generator)
    if problem is not None:
        raise UsageError(f"cannot stream: {problem}")
    assert isinstance(generator, WindowedGenerator)
    first = STREAM_PERIOD if length is None else int(length)
    size = (first, *(int(e) for e in rest))
    generator.scale_sizes(size)  # checks the size
    norms = generator.instance_norms()
    if norms and length is None:
        raise UsageError("cannot stream an instance-norm generator without an end: its "
                         "statistics span the whole output; give a length (duration)")
    step = int(chunk or max(1, STREAM_CHUNK // math.prod(size[1:])))
    if step < 1:
        raise UsageError(f"chunk must be at least 1, got {step}")
    dev = torch.device(device) if device is not None else next(generator.parameters()).device
    key = generator.noise_key(torch.Generator().manual_seed(int(seed)))
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            stats = instance_norm_stats(generator, key, [index], size, step, device=dev) \
                if norms else {}
            others = tuple((0, e) for e in size[1:])
            for start in range(0, first, step):
                region = ((start, min(start + step, first)), *others)
                yield generator.forward_region(key, [index], size, region, norm_stats=stats,
                                               device=dev)[0].cpu()
    finally:
        generator.train(was_training)
