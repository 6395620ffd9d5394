"""Process-wide run state, each in one place: device choice, seeding and RNG state, and
deferral of Ctrl-C/SIGTERM until a training step is done."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from types import FrameType, TracebackType
from typing import Any

import numpy as np
import torch

from .errors import Terminated, UsageError

__all__ = [
    "DeferredSignals",
    "capture_rng_state",
    "resolve_device",
    "restore_rng_state",
    "seed_everything",
    "sigterm_raises",
]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"`` into a device.

    ``auto`` picks CUDA if available, then Apple's MPS, then the CPU. Asking for a device
    that is not available is a :class:`~texsynth.errors.UsageError` naming what is.
    """
    if isinstance(spec, torch.device):
        return spec
    text = (spec or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(
            f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {spec!r} requested but CUDA is not available here; "
                             "use device cpu or auto", parameter="device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device {spec!r} requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps":
        if not _mps_available():
            raise UsageError(f"device {spec!r} requested but MPS is not available here; "
                             "use device cpu or auto", parameter="device")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {spec!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def seed_everything(seed: int | None = None) -> int:
    """Seed Python's, NumPy's and PyTorch's generators (all devices); return the seed.

    With ``seed=None`` a fresh seed is drawn from the operating system, so that the
    returned value can be saved with the result and the run repeated.
    """
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    if not 0 <= seed < 2**32:
        raise UsageError(f"seed must be between 0 and {2**32 - 1}, got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def capture_rng_state(*, cuda: bool = False) -> dict[str, Any]:
    """States of Python's ``random``, NumPy's global and PyTorch's CPU (and CUDA) RNGs."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if cuda and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (keys that are absent are left alone)."""
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class DeferredSignals:
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

    def __enter__(self) -> DeferredSignals:
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


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`~texsynth.errors.Terminated` inside the block (main
    thread only), so that cleanup (temporary files, partial outputs) happens as for
    Ctrl-C; the previous handler is put back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
