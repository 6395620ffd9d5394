"""Make the README's pictures: exemplars next to textures synthesised from them.

    python examples/readme_figures.py            # writes docs/images/synthesis.png

Uses the download-free ``random-multiscale`` extractor on the exemplars shipped in
``examples/data``; outputs are larger than the exemplars and not square, to show that the
output size is free.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

import texsynth

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def side_by_side(rows: list[tuple[Image.Image, Image.Image, str]], gap: int = 8) -> Image.Image:
    """Rows of (exemplar, result, caption) on a white sheet, exemplar left."""
    width = max(a.width + b.width for a, b, _ in rows) + 3 * gap
    height = sum(max(a.height, b.height) + gap + 14 for a, b, _ in rows) + gap
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = gap
    for left, right, caption in rows:
        draw.text((gap, y), caption, fill=(40, 40, 40))
        y += 14
        sheet.paste(left, (gap, y))
        sheet.paste(right, (2 * gap + left.width, y))
        y += max(left.height, right.height) + gap
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--names", nargs="+", default=["bricks", "gravel", "grass"])
    parser.add_argument("--size", default="384x256")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "images" / "synthesis.png"))
    args = parser.parse_args()
    domain = texsynth.get_domain("image")
    size = domain.parse_size(args.size)
    rows = []
    for name in args.names:
        exemplar = DATA / f"{name}.png"
        result = texsynth.synthesize(exemplar, size=size, steps=args.steps, seed=1,
                                     device="cpu")
        out = Path(args.out).with_name(f"{name}_{args.size}.png")
        texsynth.save(result, out)
        rows.append((Image.open(exemplar).convert("RGB"), Image.open(out).convert("RGB"),
                     f"{name}.png -> texsynth synthesize --size {args.size} "
                     f"--steps {args.steps} --seed 1"))
    side_by_side(rows).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
