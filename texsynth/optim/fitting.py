"""How an optimisation fits in memory: whole or block by block, and how much L-BFGS keeps.

Before each level of :func:`texsynth.synthesize`/:func:`texsynth.stylize`,
:func:`plan_memory` measures the objective on a small probe (see
:mod:`texsynth.memory`) and decides:

* **blocks** (:mod:`texsynth.stats.blockwise`): when a whole evaluation would need more than
  :data:`BLOCK_ABOVE` bytes and the objective can be evaluated in blocks, it is, with the
  largest block whose evaluation takes about :data:`BLOCK_BYTES` (an explicit ``block``
  overrides this; ``0`` never uses blocks);
* **L-BFGS history**: :func:`lbfgs_history` pairs of update vectors, at most 50 (the
  default of small runs) and fewer for large signals, so the history stays near
  :data:`HISTORY_BYTES`;
* the **estimate** of the whole run (evaluation or block, plus the signal-sized buffers
  and the history), checked against the free memory (:func:`~texsynth.memory.check_fits`)
  when the check is on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..domain import Domain
from ..errors import UsageError
from ..extractor import BlockGeometry
from ..memory import WORKSPACE_FACTOR, check_fits, estimate_optimization_bytes, peak_live_bytes
from ..stats.objective import TextureObjective

__all__ = ["BLOCK_ABOVE", "BLOCK_BYTES", "HISTORY_BYTES", "MemoryPlan", "choose_block",
           "lbfgs_history", "plan_memory"]

#: A whole evaluation estimated above this many bytes is made block by block (2 GiB).
BLOCK_ABOVE = 2 << 30
#: What one block's evaluation may take when the block size is chosen (1 GiB).
BLOCK_BYTES = 1 << 30
#: What L-BFGS's history of update pairs may take (512 MiB), between 5 and 50 pairs.
HISTORY_BYTES = 512 << 20
#: Signal-sized float32 buffers besides the history: the variable, its gradient and
#: L-BFGS's direction and previous gradient, the model input and, with blocks, its
#: detached copy and the gradient being accumulated.
_BUFFERS = 7


def lbfgs_history(numel: int) -> int:
    """L-BFGS history size for a variable of ``numel`` float32 entries: 50 pairs, or as
    many as fit in :data:`HISTORY_BYTES` (two vectors of ``4 · numel`` bytes each), at
    least 5."""
    return max(5, min(50, HISTORY_BYTES // max(1, 8 * numel)))


@dataclass(frozen=True)
class MemoryPlan:
    """What :func:`plan_memory` decided: ``block`` (``None``: whole evaluations), the
    L-BFGS ``history`` and the ``estimate`` in bytes (0 when nothing was measured)."""

    block: int | None
    history: int
    estimate: int

    def settings(self) -> dict[str, int]:
        """``{"block": ..., "lbfgs_history": ...}`` for a run's settings (block 0:
        whole)."""
        return {"block": self.block or 0, "lbfgs_history": self.history}


def choose_block(per_position: float, geometry: BlockGeometry, extents: tuple[int, ...],
                 budget: int = BLOCK_BYTES) -> int:
    """The block length for ``extents`` with the fewest blocks whose crop (``block +
    2 · halo`` positions per axis, at ``per_position`` bytes each) fits in ``budget``.

    Blocks are a multiple of ``geometry.align`` long. Wrapping crops, which all have one
    length, are widened to the next length whose only prime factors are 2, 3 and 5
    (fast FFT sizes for extractors that convolve by FFT) and the block with them.
    """
    align, halo, dims = geometry.align, geometry.halo, len(extents)
    longest = max(extents)
    block = align
    for count in range(1, longest // align + 2):
        block = math.ceil(math.ceil(longest / count) / align) * align
        crop = block + 2 * halo
        if geometry.wrap:
            crop = _smooth(crop)
            block = (crop - 2 * halo) // align * align
        if per_position * crop ** dims <= budget:
            return block
    return block


def _smooth(n: int) -> int:
    """The smallest integer ``>= n`` whose prime factors are all 2, 3 or 5."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _probe_shape(shape: tuple[int, ...], extent: int) -> tuple[int, ...]:
    return (*shape[:2], *(min(e, extent) for e in shape[2:]))


def _feature_peak(objective: TextureObjective, shape: tuple[int, ...],
                  device: torch.device) -> int:
    """Peak bytes of computing the objective's features on a random signal of ``shape``
    and back-propagating through them: what one block's pass costs."""
    probe = torch.rand(shape, device=device).requires_grad_(True)

    def run() -> None:
        objective.feature_energy(probe).backward()

    with objective.probing():
        return int(peak_live_bytes(run) * WORKSPACE_FACTOR)


def plan_memory(objective: TextureObjective, domain: Domain, shape: tuple[int, ...],
                device: torch.device, *, block: int | None = None, check: bool = True,
                what: str = "optimisation") -> MemoryPlan:
    """Decide blocks and history for optimising a signal of ``shape`` ``(1, C, *spatial)``
    with ``objective`` (set up with :meth:`TextureObjective.set_block`), and refuse what
    cannot fit when ``check``.

    Args:
        block: ``None`` chooses (blocks only above :data:`BLOCK_ABOVE`), ``0`` never
            uses blocks, a positive length always does.
        what: the run, for the error message.

    Raises:
        UsageError: an explicit ``block`` the objective cannot use.
        ResourceError: ``check`` and the estimate exceeds the free memory.
    """
    if block is not None and block < 0:
        raise UsageError(f"block must be 0 (never) or a positive length, got {block}",
                         parameter="block")
    numel = math.prod(shape)
    history = lbfgs_history(numel)
    buffers = numel * 4 * (_BUFFERS + 2 * history)
    probe_extent = max(128, 4 * domain.min_extent())
    small = all(e <= probe_extent for e in shape[2:])
    geometry = objective.block_geometry()
    extents = tuple(shape[2:])
    objective.set_block(None)
    if block == 0 or (block is None and (small or geometry is None)):
        if small:  # the run itself is the cheapest check
            return MemoryPlan(None, history, 0)
        whole, _ = _whole_estimate(objective, shape, probe_extent, device, history)
        if check:
            check_fits(whole, device, what=what)
        return MemoryPlan(None, history, whole)
    if block is None:
        assert geometry is not None
        whole, per_position = _whole_estimate(objective, shape, probe_extent, device,
                                              history)
        if whole <= BLOCK_ABOVE:
            if check:
                check_fits(whole, device, what=what)
            return MemoryPlan(None, history, whole)
        block = choose_block(per_position, geometry, extents)
    objective.set_block(block)
    geometry = objective.block_geometry()
    assert geometry is not None
    crop = tuple(min(block + 2 * geometry.halo, e + 2 * geometry.halo) if geometry.wrap
                 else min(block + 2 * geometry.halo, e) for e in extents)
    estimate = _feature_peak(objective, (*shape[:2], *crop), device) + buffers
    if check:
        check_fits(estimate, device, what=what,
                   advice="use a smaller size or block, or pass memory_check=False to try "
                          "anyway", parameter=("size", "block", "memory_check=False"))
    return MemoryPlan(block, history, estimate)


def _whole_estimate(objective: TextureObjective, shape: tuple[int, ...], probe_extent: int,
                    device: torch.device, history: int) -> tuple[int, float]:
    """``(bytes, bytes per position)`` of a whole-evaluation run: the larger of two
    probes scaled to ``shape``, what autograd saves for the loss
    (:func:`~texsynth.memory.estimate_optimization_bytes`, with the optimiser's
    buffers) and the peak of the features' forward and backward pass (which also sees
    caches and temporaries, such as filter spectra, that autograd does not save)."""
    numel = math.prod(shape)
    buffers = numel * 4 * (_BUFFERS + 2 * history)
    probe = _probe_shape(shape, probe_extent)
    try:  # first: caches made for the probe's size are then new, so they are counted
        per_position = _feature_peak(objective, probe, device) / math.prod(probe[2:])
    except UsageError:
        per_position = 0.0
    saved = 0
    try:
        with objective.probing():  # leaves random loss streams where they were
            saved = estimate_optimization_bytes(objective, shape, probe_extent=probe_extent,
                                                device=device, history=history)
    except UsageError:
        pass  # the probe is too small for this loss; the run reports its own errors
    peak = int(per_position * math.prod(shape[2:])) + buffers
    return max(saved, peak), per_position
