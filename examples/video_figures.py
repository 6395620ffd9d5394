"""Draw the README's video figure: frame strips of an exemplar and of outputs, and each
output's loop point (its last frames followed by its first).

    python examples/video_figures.py examples/data/gravel_stream.mp4 new.mp4 \\
        -o docs/images/video.png

Each output gets two rows: eight frames spread over the clip, then the six frames around
the loop point (``T-3, T-2, T-1, 0, 1, 2``), which play one after the other when the clip
repeats.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from texsynth_video import VideoDomain, frame_strip


def loop_point(clip: torch.Tensor, each_side: int = 3) -> torch.Tensor:
    """``(1, 3, 2·each_side, H, W)``: the last ``each_side`` frames, then the first."""
    return torch.cat([clip[:, :, -each_side:], clip[:, :, :each_side]], dim=2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("exemplar", type=Path)
    parser.add_argument("outputs", type=Path, nargs="+")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    domain = VideoDomain()
    items: list[Any] = [(f"exemplar: {args.exemplar.name}", domain.load(args.exemplar))]
    for path in args.outputs:
        clip = domain.load(path)
        frames = clip.shape[2]
        items.append((f"output: {path.name}", clip))
        items.append((f"{path.name} at its loop point (played on repeat)", loop_point(clip),
                      [frames - 3, frames - 2, frames - 1, 0, 1, 2]))
    print(frame_strip(items, args.output))


if __name__ == "__main__":
    main()
