"""The :class:`Generator` interface: a network from noise (and content) to signals."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["Generator", "GeneratorConfig"]


@dataclass
class GeneratorConfig:
    """Everything needed to rebuild a generator; saved in checkpoints.

    Attributes:
        name: registry name of the architecture (e.g. ``"pyramid"``).
        spatial_dims: 2 for pictures (Conv2d), 1 for time series (Conv1d).
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

    def sample(self, batch: int, size: tuple[int, ...], *,
               generator: torch.Generator | None = None,
               content: torch.Tensor | None = None) -> torch.Tensor:
        """Convenience: draw noise on the module's device and run :meth:`forward`."""
        device = next(self.parameters()).device
        noise = self.make_noise(batch, size, generator=generator, device=device)
        return self.forward(noise, content)
