"""Frame strips: clips drawn as rows of frames, for ``--preview`` and figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from texsynth.atomic import atomic_path
from texsynth.errors import UsageError

__all__ = ["DEFAULT_FRAMES", "frame_strip", "strip_indices"]

#: Frames drawn per clip.
DEFAULT_FRAMES = 8


def strip_indices(frames: int, count: int = DEFAULT_FRAMES) -> list[int]:
    """``count`` frame numbers spread evenly over ``frames``, first and last included.

    >>> strip_indices(48, 4)
    [0, 16, 31, 47]
    """
    if frames <= count:
        return list(range(frames))
    return [round(i * (frames - 1) / (count - 1)) for i in range(count)]


def _frames_uint8(signal: torch.Tensor) -> np.ndarray:
    """``(1, 3, T, H, W)`` or ``(3, T, H, W)`` in [0, 1] -> ``(T, H, W, 3)`` uint8."""
    clip = signal.detach().float().cpu()
    clip = clip[0] if clip.dim() == 5 else clip
    if clip.dim() != 4 or clip.shape[0] != 3:
        raise UsageError(f"a frame strip needs clips (1, 3, T, H, W), got "
                         f"{tuple(signal.shape)}")
    return (clip.clamp(0, 1).permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)


def frame_strip(items: Sequence[tuple[str, torch.Tensor] | tuple[str, torch.Tensor,
                                                                 Sequence[int]]],
                path: Path, *, count: int = DEFAULT_FRAMES, height: int | None = None) -> Path:
    """Write a PNG with one labelled row of ``count`` evenly spaced frames per clip
    (``(label, (1, 3, T, H, W))`` pairs), each frame numbered (by its index, or by the
    numbers a third element of the item gives, one per frame); ``height`` rescales the
    frames to that many pixels (default: the tallest clip's). Written atomically."""
    rows = [(item[0], _frames_uint8(item[1])) for item in items]
    numbers = [list(item[2]) if len(item) > 2 else None
               for item in items]
    if not rows:
        raise UsageError("a frame strip needs at least one clip")
    size = height or max(frames.shape[1] for _, frames in rows)
    gap, label_height = 6, 14
    tiles: list[tuple[str, list[tuple[int, Image.Image]]]] = []
    for (label, frames), named in zip(rows, numbers, strict=True):
        scale = size / frames.shape[1]
        shown = []
        for index in strip_indices(frames.shape[0], count):
            image = Image.fromarray(frames[index])
            if scale != 1:
                image = image.resize((max(1, round(frames.shape[2] * scale)), size),
                                     Image.Resampling.NEAREST if scale >= 1
                                     else Image.Resampling.LANCZOS)
            shown.append((index if named is None else named[index], image))
        tiles.append((label, shown))
    width = max(sum(im.width + gap for _, im in shown) for _, shown in tiles) + gap
    total = len(tiles) * (size + label_height + gap) + gap
    sheet = Image.new("RGB", (width, total), "white")
    draw = ImageDraw.Draw(sheet)
    y = gap
    for label, shown in tiles:
        draw.text((gap, y), label[:80], fill=(40, 40, 40))
        x = gap
        for index, image in shown:
            sheet.paste(image, (x, y + label_height))
            draw.text((x + 2, y + label_height + 2), str(index), fill=(255, 255, 0))
            x += image.width + gap
        y += size + label_height + gap
    target = Path(path)
    with atomic_path(target) as tmp:
        sheet.save(tmp, format="PNG")
    return target
