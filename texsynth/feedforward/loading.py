"""Trained generators as sampling uses them: a checkpoint loaded into a
:class:`TrainedGenerator` (the network, its stored settings and the domain rebuilt from its
stored config), where it runs, what a sampling call returns (:class:`SampleResult`) and the
settings every output records (:func:`stored_settings`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..domain import Domain
from ..errors import InputError, TexsynthError
from ..generator import Generator
from ..plugins import PluginManager, get_plugin_manager
from ..runtime.device import resolve_device
from .checkpoint import load_generator

__all__ = [
    "CheckpointPath",
    "SampleResult",
    "TrainedGenerator",
    "device_of",
    "home_device",
    "load_trained",
    "resolve_trained",
    "stored_settings",
]


#: A checkpoint file.
CheckpointPath = str | os.PathLike[str]


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
        a blend generator's second input is its weights, given to
        :func:`~texsynth.feedforward.sampling.sample`."""
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
    """What :func:`~texsynth.feedforward.sampling.sample` and
    :func:`~texsynth.feedforward.sampling.apply` return.

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


def device_of(generator: Generator) -> torch.device:
    """The device of ``generator``'s first parameter (the CPU if it has none)."""
    for tensor in generator.parameters():
        return tensor.device
    return torch.device("cpu")


def home_device(source: CheckpointPath | TrainedGenerator) -> torch.device:
    """Where ``source``'s generator runs when no device is asked for: a loaded one where it
    is, a checkpoint on the CPU (see :func:`resolve_trained`)."""
    if isinstance(source, TrainedGenerator):
        return device_of(source.generator)
    return torch.device("cpu")


def resolve_trained(source: CheckpointPath | TrainedGenerator,
                    device: str | torch.device | None = None,
                    manager: PluginManager | None = None) -> TrainedGenerator:
    """``source`` ready to sample: a loaded generator moved to ``device`` (``None``: left
    where it is), or a checkpoint loaded onto ``device`` (``None``: the CPU) with
    ``manager`` (default: the process-wide one)."""
    if isinstance(source, TrainedGenerator):
        if device is not None:
            source.generator.to(resolve_device(device))
        return source
    return load_trained(source, device=device or "cpu", manager=manager)


def stored_settings(trained: TrainedGenerator, command: str, seed: int, **extra: Any
                    ) -> dict[str, Any]:
    """The JSON-serialisable settings stored with an output of ``trained``: ``command``,
    ``checkpoint``, ``seed`` (the one used), ``extra`` (e.g. ``index``, ``size``),
    ``domain``, ``generator`` (its config) and ``trained_steps``."""
    return {"command": command, "checkpoint": str(trained.path), "seed": seed, **extra,
            "domain": trained.domain.name, "generator": trained.generator.config.to_dict(),
            "trained_steps": trained.metadata.get("step")}
