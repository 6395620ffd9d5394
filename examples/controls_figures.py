"""Make the README's pictures of the controls (``docs/images/controls_*.png``).

    python examples/controls_figures.py                   # every figure, ~30 min on a CPU
    python examples/controls_figures.py --only color scale --steps 100

Each figure runs what the README's command for it runs, through the Python API, on the
exemplars shipped in ``examples/data``, with the download-free default extractors:

* ``color``: stylisation of ``wood.png`` with ``grass.png``, plain and with both
  ``--preserve-color`` modes;
* ``guide``: ``doodle.png`` (black: bricks, white: grass) by optimisation, and a
  doodle-conditioned generator trained on random doodles painting ``doodle.png`` and
  ``doodle2.png`` in one pass each;
* ``blend``: optimised blends of gravel and grass, and a blend generator's slider;
* ``scale``: bricks at ``--exemplar-scale`` 0.5, 1 and 2;
* ``sound``: six seconds of rain turning into crickets at 3 s (``--guide 3``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

import texsynth

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
IMAGES = HERE.parent / "docs" / "images"
WORK = HERE.parent / "out" / "controls"


def picture(signal: torch.Tensor) -> Image.Image:
    """A signal ``(1, 3, H, W)`` in [0, 1] as a Pillow picture."""
    array = (signal[0].clamp(0, 1).permute(1, 2, 0) * 255).round().byte().numpy()
    return Image.fromarray(array)


def strip(tiles: list[tuple[str, Image.Image]], path: Path, height: int = 192,
          gap: int = 8) -> None:
    """Labelled pictures in a row, each scaled to ``height``, written to ``path``."""
    scaled = [(label, tile.resize((round(tile.width * height / tile.height), height),
                                  Image.Resampling.LANCZOS)) for label, tile in tiles]
    width = sum(t.width for _, t in scaled) + gap * (len(scaled) + 1)
    sheet = Image.new("RGB", (width, height + 2 * gap + 14), "white")
    draw = ImageDraw.Draw(sheet)
    x = gap
    for label, tile in scaled:
        draw.text((x, gap // 2), label, fill=(40, 40, 40))
        sheet.paste(tile, (x, gap + 14))
        x += tile.width + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    print(f"wrote {path}")


def rows(paths: list[Path], out: Path) -> None:
    """Stack strip pictures top to bottom into one."""
    parts = [Image.open(p).convert("RGB") for p in paths]
    sheet = Image.new("RGB", (max(p.width for p in parts), sum(p.height for p in parts)),
                      "white")
    y = 0
    for part in parts:
        sheet.paste(part, (0, y))
        y += part.height
    sheet.save(out)
    for p in paths:
        p.unlink()
    print(f"wrote {out}")


def small(name: str, size: int) -> torch.Tensor:
    return F.interpolate(texsynth.load(DATA / name), size=(size, size), mode="area")


def color_figure(args: argparse.Namespace) -> None:
    content, style = small("wood.png", args.size), DATA / "grass.png"
    tiles = [("content wood.png", picture(content)),
             ("style grass.png", Image.open(style).convert("RGB"))]
    for mode in (None, "luminance", "histogram"):
        result = texsynth.stylize(content, style, domain="image", steps=args.steps, seed=1,
                                  preserve_color=mode, progress=False)
        tiles.append((f"--preserve-color {mode}" if mode else "plain stylize",
                      picture(result.signal)))
    strip(tiles, IMAGES / "controls_color.png")


def guide_figure(args: argparse.Namespace) -> None:
    doodle, second = DATA / "doodle.png", DATA / "doodle2.png"
    exemplars = [DATA / "bricks.png", DATA / "grass.png"]
    height, width = Image.open(doodle).height, Image.open(doodle).width
    result = texsynth.synthesize(exemplars, size=(height, width), guide=doodle,
                                 steps=args.steps, seed=1, progress=False)
    strip([("doodle.png", Image.open(doodle).convert("RGB")),
           ("bricks.png", Image.open(exemplars[0]).convert("RGB")),
           ("grass.png", Image.open(exemplars[1]).convert("RGB")),
           ("synthesize --guide doodle.png", picture(result.signal))],
          WORK / "guide_a.png")
    ckpt = WORK / "doodle.ckpt"
    start = time.perf_counter()
    texsynth.train_generator(exemplars, doodles=True, size=(args.train, args.train),
                             iterations=args.iterations, seed=1, checkpoint=ckpt,
                             resume=True, progress=False)
    seconds = time.perf_counter() - start
    first = texsynth.apply(ckpt, doodle, seed=1).signals
    other = texsynth.apply(ckpt, second, seed=1).signals
    strip([("doodle2.png", Image.open(second).convert("RGB")),
           (f"train --doodles ({args.iterations} steps, {seconds / 60:.0f} min): "
            "apply doodle.png", picture(first)),
           ("apply doodle2.png", picture(other))], WORK / "guide_b.png")
    rows([WORK / "guide_a.png", WORK / "guide_b.png"], IMAGES / "controls_guide.png")


def blend_figure(args: argparse.Namespace) -> None:
    pair = [DATA / "gravel.png", DATA / "grass.png"]
    tiles = []
    for w in (1.0, 0.5, 0.0):
        result = texsynth.synthesize(pair, size=(args.size, args.size), steps=args.steps,
                                     seed=1, exemplar_weights=[w, 1 - w], progress=False)
        tiles.append((f"gravel:{w:g} grass:{1 - w:g}", picture(result.signal)))
    strip(tiles, WORK / "blend_a.png")
    ckpt = WORK / "blend.ckpt"
    texsynth.train_generator(pair, blends=True, size=(args.train, args.train),
                             iterations=args.iterations, seed=1, checkpoint=ckpt,
                             resume=True, progress=False)
    slider = []
    for w in (1.0, 0.75, 0.5, 0.25, 0.0):
        out = texsynth.sample(ckpt, (args.size, args.size), seed=1, blend=[w, 1 - w])
        slider.append((f"sample --blend {w:g},{1 - w:g}", picture(out.signals)))
    strip(slider, WORK / "blend_b.png", height=160)
    rows([WORK / "blend_a.png", WORK / "blend_b.png"], IMAGES / "controls_blend.png")


def scale_figure(args: argparse.Namespace) -> None:
    exemplar = DATA / "bricks.png"
    tiles = [("bricks.png", Image.open(exemplar).convert("RGB"))]
    for scale in (0.5, 1.0, 2.0):
        result = texsynth.synthesize(exemplar, size=(args.size, args.size),
                                     steps=args.steps, seed=1, exemplar_scale=scale,
                                     progress=False)
        tiles.append((f"--exemplar-scale {scale:g}", picture(result.signal)))
    strip(tiles, IMAGES / "controls_scale.png")


def sound_figure(args: argparse.Namespace) -> None:
    domain = texsynth.get_domain("audio")
    exemplars = [DATA / "rain.wav", DATA / "crickets.wav"]
    result = texsynth.synthesize(exemplars, domain="audio",
                                 size=domain.size_from_duration(6.0), guide="3",
                                 steps=args.sound_steps, seed=1, progress=False)
    texsynth.save(result, WORK / "rain_to_crickets.wav")
    domain.write_preview([("rain.wav", domain.load(exemplars[0])),
                          ("crickets.wav", domain.load(exemplars[1])),
                          ("synthesize --guide 3 (6 s)", result.signal)],
                         IMAGES / "controls_sound.png")
    print(f"wrote {IMAGES / 'controls_sound.png'}")


FIGURES = {"color": color_figure, "guide": guide_figure, "blend": blend_figure,
           "scale": scale_figure, "sound": sound_figure}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), default=list(FIGURES))
    parser.add_argument("--size", type=int, default=192, help="output side (default 192)")
    parser.add_argument("--steps", type=int, default=300, help="L-BFGS steps")
    parser.add_argument("--sound-steps", type=int, default=100)
    parser.add_argument("--train", type=int, default=128, help="training crop side")
    parser.add_argument("--iterations", type=int, default=800, help="training steps")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    WORK.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        FIGURES[name](args)


if __name__ == "__main__":
    main()
