"""One run's context: where it computes, its seed, the plugins it uses and whether it
reports progress, made once where a run starts and passed down as one object.

Public entry points (:func:`texsynth.synthesize`, :func:`texsynth.train_generator`, ...)
keep their keyword arguments (``seed=``, ``device=``, ``manager=``, ``progress=``);
:meth:`RunContext.start` turns them into a context, and the functions behind the entry
points take ``context`` instead of the loose values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..plugins import PluginManager, get_plugin_manager
from .device import resolve_device
from .rng import seed_everything

__all__ = ["RunContext"]


@dataclass(frozen=True)
class RunContext:
    """What every part of one run shares.

    Attributes:
        device: where tensors live and the networks run.
        seed: the seed every random stream of the run was started from (recorded with
            its results, so a run can be repeated).
        manager: the plugin manager that resolves domains, extractors, losses and
            generators by name.
        progress: whether the run shows progress bars.
    """

    device: torch.device
    seed: int
    manager: PluginManager
    progress: bool = True

    @classmethod
    def start(cls, *, seed: int | None = None, device: str | torch.device | None = "auto",
              manager: PluginManager | None = None, progress: bool = True) -> RunContext:
        """Seed every random stream (:func:`~texsynth.runtime.rng.seed_everything`; a
        fresh seed when ``seed`` is ``None``), resolve ``device``
        (:func:`~texsynth.runtime.device.resolve_device`) and take ``manager`` (default:
        the process-wide one).

        >>> context = RunContext.start(seed=3, device="cpu", progress=False)
        >>> context.seed, context.device.type
        (3, 'cpu')
        """
        used = seed_everything(seed)
        return cls(device=resolve_device(device), seed=used,
                   manager=manager or get_plugin_manager(), progress=progress)

    def with_device(self, device: str | torch.device | None) -> RunContext:
        """The same context computing on ``device`` (resolved; ``None`` keeps it)."""
        return self if device is None else replace(self, device=resolve_device(device))
