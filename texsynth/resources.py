"""Memory estimates made before a run, so that what cannot fit is refused up front.

The estimate is measured, not guessed: the loss and gradient are evaluated once on a
small probe signal while :func:`torch.autograd.graph.saved_tensors_hooks` counts every
byte autograd keeps for the backward pass; that count is scaled by the ratio of signal
sizes and added to the optimiser's own state. Set ``TEXSYNTH_MEMORY_CHECK=0`` (or pass
``--no-memory-check`` on the command line) to skip the check.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import torch

from .errors import ResourceError

__all__ = ["available_memory", "check_fits", "estimate_optimization_bytes", "format_bytes"]

#: Fraction of the available memory a run may plan to use.
HEADROOM = 0.9


def format_bytes(count: float) -> str:
    """``1536 * 2**20`` -> ``"1.5 GiB"``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count / 2**10:.0f} KiB"


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new allocation on ``device``; ``None`` when unknown (e.g. MPS)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return None


def _saved_bytes(loss_fn: Callable[[torch.Tensor], torch.Tensor], probe: torch.Tensor) -> int:
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        try:
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        except (RuntimeError, NotImplementedError):
            seen[id(tensor)] = tensor.numel() * tensor.element_size()
        return tensor

    x = probe.detach().clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(x)
    loss.backward()
    return sum(seen.values())


def estimate_optimization_bytes(loss_fn: Callable[[torch.Tensor], torch.Tensor],
                                shape: tuple[int, ...], *, probe_extent: int,
                                device: torch.device, history: int = 50) -> int:
    """Bytes an optimisation of a signal of ``shape`` ``(1, C, *spatial)`` will need.

    Measures one loss + gradient evaluation on a probe whose spatial extents are at most
    ``probe_extent`` and scales it linearly with the number of positions; adds the signal,
    its gradient and L-BFGS's ``history`` pairs of update vectors.
    """
    probe_shape = (*shape[:2], *(min(e, probe_extent) for e in shape[2:]))
    probe = torch.rand(probe_shape, device=device)
    measured = _saved_bytes(loss_fn, probe)
    scale = math.prod(shape[2:]) / math.prod(probe_shape[2:])
    signal_bytes = math.prod(shape) * 4
    return int(measured * scale + signal_bytes * (3 + 2 * history))


def check_fits(estimate: int, device: torch.device, *, what: str) -> None:
    """Raise :class:`ResourceError` if ``estimate`` bytes will not fit on ``device``."""
    if os.environ.get("TEXSYNTH_MEMORY_CHECK", "1") in ("0", "false", "no"):
        return
    free = available_memory(device)
    if free is None or estimate <= free * HEADROOM:
        return
    raise ResourceError(
        f"{what} needs about {format_bytes(estimate)} of memory but only "
        f"{format_bytes(free)} is available on {device}; use a smaller size, "
        "or pass memory_check=False to try anyway", parameter=("size", "memory_check=False")
    )


def check_signal_fits(shape: tuple[int, ...], device: torch.device, *, what: str,
                      copies: int = 4) -> None:
    """Cheap first check: ``copies`` float32 copies of a signal of ``shape`` must fit.

    Run before anything is allocated, so absurd sizes fail at once.
    """
    check_fits(math.prod(shape) * 4 * copies, device, what=what)
