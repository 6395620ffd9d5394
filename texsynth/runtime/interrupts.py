"""Ctrl-C and SIGTERM during a run: deferred until a training step is done, so a checkpoint
is never written half-way.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

from ..errors import Terminated

__all__ = [
    "DeferredSignals",
    "sigterm_raises",
]


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
