"""Make the sample clips in ``examples/data`` from the licensed still textures there.

Two dynamic textures, each a still photograph set in motion by a physical model, written
with the video domain's own writer (H.264 MP4, 12 frames per second):

* ``gravel_stream.mp4`` (from ``gravel.png``): gravel under shallow running water.
  The water surface is a sum of travelling waves (wavelengths 10 to 40 pixels, mostly
  along the flow, with the dispersion of capillary-gravity waves carried by the current);
  each frame refracts the gravel by the surface slope and brightens them where the
  surface focuses light (caustics, the surface's negative curvature).
* ``grass_wind.mp4`` (from ``grass.png``): grass in gusty wind. A smooth sway
  (large, slow displacements that travel with the wind) plus a fast flutter of small
  patches, both from sums of random sinusoids, warp the photograph.

Run ``python examples/make_clips.py`` (from the repository root) to remake them; the
same seed gives the same clips. Licences: those of the source pictures (GPL-2+), listed
in ``examples/data/SOURCES.md``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from texsynth_video import VideoDomain

DATA = Path(__file__).resolve().parent / "data"
FPS = 12.0
FRAMES = 48
SIZE = 128


def _still(name: str) -> torch.Tensor:
    """The licensed picture ``name`` as ``(1, 3, S, S)`` in [0, 1], resized to twice
    :data:`SIZE` (the warps sample it at sub-pixel positions)."""
    image = Image.open(DATA / name).convert("RGB").resize((2 * SIZE, 2 * SIZE),
                                                      Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates ``(size, size)`` of the output frame (y, x)."""
    axis = torch.arange(size, dtype=torch.float32)
    return torch.meshgrid(axis, axis, indexing="ij")


def _warp(still: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """The centre ``SIZE × SIZE`` of ``still`` seen through a displacement (pixels of the
    output) ``dy``, ``dx`` ``(SIZE, SIZE)``: ``(3, SIZE, SIZE)``."""
    y, x = _grid(SIZE)
    scale = still.shape[-1] / (2 * SIZE)
    offset = SIZE / 2
    sy = (y + offset + dy) * scale
    sx = (x + offset + dx) * scale
    extent = still.shape[-1]
    grid = torch.stack([sx / (extent - 1) * 2 - 1, sy / (extent - 1) * 2 - 1], dim=-1)
    return F.grid_sample(still, grid[None], mode="bicubic", padding_mode="reflection",
                         align_corners=True)[0]


def gravel_stream(seed: int = 3) -> torch.Tensor:
    """Gravel under running water: ``(3, FRAMES, SIZE, SIZE)`` in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    still = _still("gravel.png")
    y, x = _grid(SIZE)
    waves = 24
    length = 10 + 30 * torch.rand(waves, generator=gen)
    angle = 0.5 * torch.randn(waves, generator=gen)  # mostly along the flow (+x)
    k = 2 * math.pi / length
    kx, ky = k * torch.cos(angle), k * torch.sin(angle)
    amplitude = 0.5 * length / 40 * (0.5 + torch.rand(waves, generator=gen))
    phase = 2 * math.pi * torch.rand(waves, generator=gen)
    current = 1.6  # pixels per frame
    omega = kx * current + 0.35 * torch.sqrt(k)  # advection + dispersion
    frames = []
    for t in range(FRAMES):
        arg = kx.view(-1, 1, 1) * x + ky.view(-1, 1, 1) * y - omega.view(-1, 1, 1) * t \
            + phase.view(-1, 1, 1)
        amp = amplitude.view(-1, 1, 1)
        slope_x = (-amp * kx.view(-1, 1, 1) * torch.sin(arg)).sum(0)
        slope_y = (-amp * ky.view(-1, 1, 1) * torch.sin(arg)).sum(0)
        curvature = (-amp * (k ** 2).view(-1, 1, 1) * torch.cos(arg)).sum(0)
        frame = _warp(still, 6.0 * slope_y, 6.0 * slope_x)
        light = 1.0 - 0.9 * curvature  # focusing where the surface is concave
        frames.append((frame * light.clamp(0.6, 1.6) * 0.9).clamp(0, 1))
    return torch.stack(frames, dim=1)


def grass_wind(seed: int = 5) -> torch.Tensor:
    """Grass in gusty wind: ``(3, FRAMES, SIZE, SIZE)`` in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    still = _still("grass.png")
    y, x = _grid(SIZE)

    def field(count: int, wavelength: tuple[float, float], speed: float, amp: float
              ) -> list[tuple[torch.Tensor, ...]]:
        lengths = wavelength[0] + (wavelength[1] - wavelength[0]) * torch.rand(
            count, generator=gen)
        angles = 2 * math.pi * torch.rand(count, generator=gen)
        return [(2 * math.pi / lengths[i] * torch.cos(angles[i]),
                 2 * math.pi / lengths[i] * torch.sin(angles[i]),
                 speed * (0.5 + torch.rand(1, generator=gen)),
                 2 * math.pi * torch.rand(2, generator=gen), amp * torch.ones(1))
                for i in range(count)]

    sway = field(6, (60, 160), 0.12, 2.5)
    flutter = field(12, (14, 32), 0.45, 0.35)
    frames = []
    for t in range(FRAMES):
        gust = 0.6 + 0.4 * math.sin(2 * math.pi * t / FRAMES * 2 + 0.4)
        dy = torch.zeros(SIZE, SIZE)
        dx = torch.zeros(SIZE, SIZE)
        for kx, ky, speed, phase, amp in sway:
            arg = kx * (x - 1.2 * t) + ky * y + speed * t
            dx += gust * amp * torch.sin(arg + phase[0])
            dy += 0.5 * gust * amp * torch.sin(arg + phase[1])
        for kx, ky, speed, phase, amp in flutter:
            arg = kx * x + ky * y + speed * t
            dx += gust * amp * torch.sin(arg + phase[0])
            dy += gust * amp * torch.cos(arg + phase[1])
        frames.append(_warp(still, dy, dx).clamp(0, 1))
    return torch.stack(frames, dim=1)


def main() -> None:
    domain = VideoDomain(fps=FPS)
    for name, make in (("gravel_stream.mp4", gravel_stream),
                       ("grass_wind.mp4", grass_wind)):
        clip = make()
        path = domain.save(clip[None], DATA / name,
                           metadata={"made_by": "examples/make_clips.py"})
        print(f"wrote {path} ({clip.shape[1]} frames of {SIZE}x{SIZE} at {FPS:g} fps)")


if __name__ == "__main__":
    main()
