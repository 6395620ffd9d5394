"""The :class:`Generator` interface: a network from noise (and content) to signals.

:class:`WindowedGenerator` is the protocol a generator also implements when any window of
its output can be computed on its own, which is what :mod:`texsynth.feedforward.tiled` needs to
sample outputs of any size in bounded memory; :data:`Region` and :data:`NormStats` are the types
it speaks in.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["MAX_SIGNAL_CHANNELS", "Generator", "GeneratorConfig", "NormStats", "Region",
           "WindowedGenerator"]

#: Most channels a generator's signal (``out_channels``) or content input
#: (``content_channels``) may have; configs read from checkpoints are checked against it.
MAX_SIGNAL_CHANNELS = 256

#: A window of one scale: ``(start, stop)`` per spatial axis (tensor order), in positions
#: of that scale. Positions may lie outside ``[0, extent)``: they wrap around (circular
#: padding), so ``((-8, 8),)`` is the last 8 and the first 8 positions of a 1-D scale.
Region = tuple[tuple[int, int], ...]
#: Whole-extent statistics of the instance-norm layers of a generator, for
#: :meth:`WindowedGenerator.forward_region`: ``{module: (mean, var)}``, each ``(N, C)``
#: (``N`` the samples asked for, ``C`` the layer's channels; biased variance, as instance
#: norm uses).
NormStats = dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class GeneratorConfig:
    """Everything needed to rebuild a generator; saved in checkpoints.

    Attributes:
        name: registry name of the architecture (e.g. ``"pyramid"``).
        spatial_dims: number of spatial axes, 1 to 3: 2 for pictures (Conv2d), 1 for time
            series (Conv1d), 3 for clips of frames (Conv3d).
        out_channels: channels of the signal produced.
        content_channels: channels of the content input (0 for pure texture generators).
        options: architecture-specific settings (scales, widths, padding, norm ...).
    """

    name: str
    spatial_dims: int
    out_channels: int
    content_channels: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            spatial_dims=int(data["spatial_dims"]),
            out_channels=int(data["out_channels"]),
            content_channels=int(data.get("content_channels", 0)),
            options=dict(data.get("options") or {}),
        )


class Generator(nn.Module):
    """Maps noise (and optionally a content signal) to signals of any size.

    ``forward(noise, content=None)`` returns signals ``(N, C_out, *spatial)``; the noise
    comes from :meth:`make_noise`, so callers never need to know its layout.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config

    @abstractmethod
    def make_noise(self, batch: int, size: tuple[int, ...], *,
                   generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """Noise inputs for ``batch`` outputs of spatial ``size`` (tensor order)."""

    @abstractmethod
    def forward(self, noise: list[torch.Tensor], content: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Produce signals ``(N, C_out, *size)`` from :meth:`make_noise` output."""

    def min_extent(self) -> int:
        """Smallest extent this generator can make along any spatial axis (default 1).

        Probes made before a run (memory and time estimates,
        :func:`texsynth.feedforward.estimates.estimate_sample`) are never smaller than this.
        """
        return 1

    def sample(self, batch: int, size: tuple[int, ...], *,
               generator: torch.Generator | None = None,
               content: torch.Tensor | None = None) -> torch.Tensor:
        """Convenience: draw noise on the module's device and run :meth:`forward`."""
        device = next(self.parameters()).device
        noise = self.make_noise(batch, size, generator=generator, device=device)
        return self.forward(noise, content)


@runtime_checkable
class WindowedGenerator(Protocol):
    """A generator that computes any window of its output on its own (tiled sampling).

    :func:`texsynth.feedforward.tiled.sample_tiled` accepts any :class:`Generator` that also has
    these methods (checked with ``isinstance(generator, WindowedGenerator)``); the pyramid
    generators (:class:`texsynth.feedforward.pyramid.PyramidGenerator`) are one. The output is
    made of ``K`` scales (0 = finest) whose extents :meth:`scale_sizes` gives; a window of the
    output is determined by a noise key, sample numbers, the whole output's size and the
    window (:data:`Region`). Instance-norm layers normalise by statistics over a scale's
    whole extent, which the caller computes from :meth:`norm_input` over windows first.
    """

    def tileable(self) -> str | None:
        """``None`` if windows of this generator's output can be made, else a one-line
        reason why not (e.g. the padding it was built with)."""

    def noise_key(self, generator: torch.Generator | None = None) -> int:
        """Draw the 64-bit key of one noise batch from ``generator`` (the global RNG when
        ``None``), as ``make_noise`` does, so the same seed gives the same output."""

    def scale_sizes(self, size: Sequence[int]) -> list[tuple[int, ...]]:
        """Extents of every scale for an output of ``size`` (tensor order), finest first;
        raises :class:`~texsynth.errors.UsageError` for sizes it cannot make."""

    def instance_norms(self) -> list[tuple[int, nn.Module]]:
        """``(scale, module)`` of every layer that needs whole-extent statistics, in the
        order the network runs them (each one's input depends only on those before)."""

    def norm_input(self, key: int, samples: Sequence[int], size: Sequence[int],
                   module: nn.Module, region: Region, *, norm_stats: NormStats | None = None,
                   device: torch.device | str | None = None) -> torch.Tensor:
        """The input ``(len(samples), C, *extent)`` of layer ``module`` (one of
        :meth:`instance_norms`) over ``region`` of its scale, for outputs of ``size``;
        ``norm_stats`` holds the statistics of every such layer before it."""

    def forward_region(self, key: int, samples: Sequence[int], size: Sequence[int],
                       region: Region, *, norm_stats: NormStats | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """Positions ``region`` (finest scale) of the output ``(N, C_out, *size)`` made
        from the noise of ``key``: ``(len(samples), C_out, *(stop - start))``, equal to
        the same positions of the whole output up to float rounding; ``norm_stats`` holds
        the whole-extent statistics of every layer of :meth:`instance_norms`."""
