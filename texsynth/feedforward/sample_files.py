"""Samples written to files and streams, made piece by piece so memory does not grow
with their size: :func:`sample_to_file` writes one sample tile by tile (streamed where the
domain's writer can), :func:`sample_stream` writes one as it is made, chunk by chunk along
its first axis (sound to a player or a file, in real time), with or without an end.
Before such a run, :func:`tile_extent` decides whether to tile and :func:`plan_notice`
refuses what the disk cannot hold and announces very long runs.

Both writers start the run's :class:`~texsynth.runtime.context.RunContext` (seeding the
process) before loading the generator, and make exactly the sample
:func:`~texsynth.feedforward.sampling.sample` draws for the same seed and index.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..domain import StreamResult
from ..errors import UsageError
from ..generator import Generator
from ..memory import check_disk, format_bytes
from ..plugins import PluginManager
from ..runtime.context import RunContext
from .estimates import check_extents, check_tile_memory, estimate_sample
from .loading import (
    CheckpointPath,
    TrainedGenerator,
    home_device,
    resolve_trained,
    stored_settings,
)
from .tiled import (
    AUTO_TILE_POSITIONS,
    STREAM_PERIOD,
    default_tile,
    sample_tiled,
    stream_tiled,
    tiling_problem,
)

__all__ = [
    "LONG_RUN_BYTES",
    "LONG_RUN_SECONDS",
    "QUICK_RUN_POSITIONS",
    "plan_notice",
    "sample_stream",
    "sample_to_file",
    "tile_extent",
]

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
    :func:`~texsynth.feedforward.tiled.default_tile` above (with a warning, and in one
    piece, when the generator cannot be tiled).
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
    """Write sample ``index`` of ``seed`` (as :func:`~texsynth.feedforward.sampling.sample`
    would draw it) to ``path`` in tiles of ``tile`` positions per axis, through the
    domain's streaming writer (:meth:`Domain.open_writer`). Returns the settings stored
    with it (``metadata`` added; ``seed`` is the one used: drawn, and the process seeded,
    when ``None``, as :func:`~texsynth.feedforward.sampling.sample` does). With
    ``memory_check`` the memory of one tile is estimated first and a tile that will not
    fit is refused (:class:`~texsynth.errors.ResourceError`)."""
    # the process is seeded first, before the generator is loaded (onto the CPU) or taken
    # where it is
    context = RunContext.start(seed=seed, device=home_device(source), manager=manager,
                               progress=progress)
    trained = resolve_trained(source, context.device, context.manager)
    domain = trained.domain
    size = check_extents(size)
    domain.check_size(size)
    if memory_check and tile > 0:
        check_tile_memory(trained.generator, size, tile)
    settings = {**stored_settings(trained, "sample", context.seed, index=index,
                                  size=domain.describe_size(size)), **dict(metadata or {}),
                "tile": tile}
    with domain.open_writer(Path(path), size, trained.generator.config.out_channels,
                            metadata=settings) as writer:
        sample_tiled(trained.generator, size, seed=context.seed, index=index, tile=tile,
                     sink=writer.write, progress=context.progress)
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
        source: a checkpoint path or a
            :func:`~texsynth.feedforward.loading.load_trained` result.
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
    # the process is seeded first, as in sample_to_file
    context = RunContext.start(seed=seed, device=home_device(source), manager=manager,
                               progress=False)
    trained = resolve_trained(source, context.device, context.manager)
    rest = check_extents(rest) if rest else ()
    if length is not None:
        if not 1 <= int(length) <= STREAM_PERIOD:  # no MAX_EXTENT: memory stays bounded
            raise UsageError(f"length must be from 1 to {STREAM_PERIOD}, got {length}",
                             parameter="length")
        trained.domain.check_size((int(length), *rest))
    size = "unbounded" if length is None else \
        trained.domain.describe_size((int(length), *rest))
    settings = {**stored_settings(trained, "sample", context.seed, index=index, size=size),
                **dict(metadata or {}), "stream": True}
    blocks = stream_tiled(trained.generator, rest, length=length, seed=context.seed,
                          index=index, chunk=chunk)
    target = None if path is None else Path(path)
    written = trained.domain.write_stream(blocks, target, trained.generator.config.out_channels,
                                          metadata=settings)
    return written, settings
