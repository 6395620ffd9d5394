"""Memory estimates made before a run, so that what cannot fit is refused up front.

Estimates are measured, not guessed, on a small probe of the run and scaled by the
ratio of positions (all sizes in bytes):

* **with gradients** (optimisation, training): the loss and gradient are evaluated once
  while :func:`torch.autograd.graph.saved_tensors_hooks` counts every byte autograd keeps
  for the backward pass (:func:`saved_bytes`; tensors that do not grow with the signal,
  such as weights, can be left out of the count); the optimiser's own state is added;
* **without gradients** (sampling a generator): :func:`peak_live_bytes` follows every
  tensor the probe allocates (a :class:`~torch.utils._python_dispatch.TorchDispatchMode`
  that adds each new storage when an operation returns it and subtracts it when the
  storage is freed) and reports the most alive at once. Memory a kernel uses inside itself
  (convolution workspaces) and allocator rounding are not seen;
  :data:`WORKSPACE_FACTOR` covers them.

Set ``TEXSYNTH_MEMORY_CHECK=0`` (or pass ``--no-memory-check`` on the command line, or
``memory_check=False`` to the library calls) to skip the checks
(:func:`memory_check_enabled`).
"""

from __future__ import annotations

import math
import os
import shutil
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .errors import ResourceError

__all__ = ["HEADROOM", "WORKSPACE_FACTOR", "available_memory", "check_disk", "check_fits",
           "estimate_optimization_bytes", "format_bytes", "memory_check_enabled",
           "peak_live_bytes", "saved_bytes"]

#: Fraction of the available memory a run may plan to use.
HEADROOM = 0.9
#: Factor on :func:`peak_live_bytes` for what it cannot see (kernel workspaces, allocator
#: rounding). Measured for the default six-scale pyramid on the CPU: the peak resident
#: memory of sampling 1024² in one piece is 1.25× the tracked peak (1.3 vs 1.0 GiB).
WORKSPACE_FACTOR = 1.25


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


def memory_check_enabled() -> bool:
    """``False`` when ``TEXSYNTH_MEMORY_CHECK`` is ``0``, ``false`` or ``no``."""
    return os.environ.get("TEXSYNTH_MEMORY_CHECK", "1").lower() not in ("0", "false", "no")


def _storage_key(tensor: torch.Tensor) -> int | None:
    """The address of ``tensor``'s storage, or ``None`` when it has none (meta, sparse)."""
    try:
        return int(tensor.untyped_storage().data_ptr()) or None
    except (RuntimeError, NotImplementedError):
        return None


def saved_bytes(loss: Callable[[], torch.Tensor], *,
                exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes autograd saves for the backward pass of ``loss()`` (a scalar), counted once
    per storage; the backward pass is then run (gradients accumulate in ``.grad``).

    Args:
        loss: evaluates the loss; everything it saves for backward is counted.
        exclude: tensors whose storages are not counted (weights, fixed targets: they do
            not grow with the signal, so they must not be scaled with it).
    """
    skip = {key for key in map(_storage_key, exclude) if key is not None}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key is None:
            seen[id(tensor)] = tensor.numel() * tensor.element_size()
        elif key not in skip:
            seen[key] = max(seen.get(key, 0), tensor.untyped_storage().nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = loss()
    value.backward()
    return sum(seen.values())


def _saved_bytes(loss_fn: Callable[[torch.Tensor], torch.Tensor], probe: torch.Tensor) -> int:
    """:func:`saved_bytes` of ``loss_fn`` on a copy of ``probe`` that requires grad."""
    x = probe.detach().clone().requires_grad_(True)
    return saved_bytes(lambda: loss_fn(x))


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of storages made by operations while they are alive.

    A storage is new when an operation returns it and none of the operation's inputs has
    it (views and in-place results are not new); it stops counting when it is freed (a
    finaliser on the storage object, which PyTorch keeps for as long as the storage
    lives). Storages made before the mode (weights, inputs) are never counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self.alive: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self.alive.discard(key)
        self.current -= nbytes

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {id(t.untyped_storage()) for t in tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor) and _storage_key(t) is not None}
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor) or _storage_key(tensor) is None:
                continue
            storage = tensor.untyped_storage()
            key = id(storage)
            if key in self.alive or key in inputs:
                continue
            nbytes = int(storage.nbytes())
            self.alive.add(key)
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._free, key, nbytes)
        return out


def peak_live_bytes(run: Callable[[], object]) -> int:
    """The most bytes of tensors made by ``run()`` that were alive at the same time.

    ``run`` is called once (its result is dropped before this returns); tensors that
    existed before (weights, inputs) are not counted, nor is memory kernels use inside
    themselves (see :data:`WORKSPACE_FACTOR`).
    """
    mode = _LiveBytes()
    with mode:
        run()
    return mode.peak


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


def check_fits(estimate: int, device: torch.device, *, what: str,
               advice: str = "use a smaller size, or pass memory_check=False to try anyway",
               parameter: tuple[str, ...] = ("size", "memory_check=False")) -> None:
    """Raise :class:`ResourceError` if ``estimate`` bytes will not fit on ``device``.

    Args:
        estimate: bytes the run will need.
        device: where it runs.
        what: the run, for the message (``"sampling 4 of 2048x2048"``).
        advice: what to do instead, ending the message.
        parameter: the parameters ``advice`` names (see
            :attr:`~texsynth.errors.TexsynthError.parameters`).
    """
    if not memory_check_enabled():
        return
    free = available_memory(device)
    if free is None or estimate <= free * HEADROOM:
        return
    raise ResourceError(
        f"{what} needs about {format_bytes(estimate)} of memory but only "
        f"{format_bytes(free)} is available on {device}; {advice}", parameter=parameter
    )


def check_signal_fits(shape: tuple[int, ...], device: torch.device, *, what: str,
                      copies: int = 4, **advice: Any) -> None:
    """Cheap first check: ``copies`` float32 copies of a signal of ``shape`` must fit.

    Run before anything is allocated, so absurd sizes fail at once; ``advice`` takes the
    ``advice`` and ``parameter`` keywords of :func:`check_fits`.
    """
    check_fits(math.prod(shape) * 4 * copies, device, what=what, **advice)


def check_disk(path: str | os.PathLike[str], needed: int, *, what: str) -> None:
    """Raise :class:`ResourceError` if the file system that will hold ``path`` has less
    than ``needed`` bytes free (the output's lower bound: refusing at once beats failing
    after hours of work). Unknown free space passes."""
    probe = Path(path).parent if str(Path(path).parent) else Path(".")
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if needed > free:
        raise ResourceError(f"{what} needs at least {format_bytes(needed)} of disk but only "
                            f"{format_bytes(free)} is free under {probe}")
