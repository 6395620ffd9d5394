"""Make the README's pictures: exemplars next to textures synthesised from them.

    python examples/readme_figures.py            # writes docs/images/synthesis.png
    python examples/readme_figures.py --feedforward out/cpu-recipe/grass.ckpt
    python examples/readme_figures.py --audio out/audio-recipe/rain.ckpt
    python examples/readme_figures.py --sounds   # docs/images/sound_synthesis.png

Uses the download-free ``random-multiscale`` extractor on the exemplars shipped in
``examples/data``; outputs are larger than the exemplars and not square, to show that the
output size is free.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from controls_figures import rows
from PIL import Image, ImageDraw

import texsynth

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
#: Where the single outputs go before they are put side by side.
WORK = HERE.parent / "out" / "readme_figures"


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


def _exemplar(meta: dict) -> Path:
    """The first training exemplar of a checkpoint (paths relative to the repository)."""
    path = Path(meta["training"]["exemplars"][0])
    return path if path.exists() else HERE.parent / path


def _picture(signal: torch.Tensor) -> Image.Image:
    """An image ``(3, H, W)`` in [0, 1] as a Pillow picture."""
    return Image.fromarray((signal.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy())


def _tiled(picture: Image.Image) -> Image.Image:
    """2×2 copies of a picture, to show whether it tiles."""
    sheet = Image.new("RGB", (2 * picture.width, 2 * picture.height))
    for x in (0, picture.width):
        for y in (0, picture.height):
            sheet.paste(picture, (x, y))
    return sheet


def feedforward_sheet(checkpoint: Path, out: Path, size: int = 256,
                      refine_steps: int = 100) -> None:
    """The exemplar and 2×2 copies of one sample of a trained image generator (the
    copies meet without seams because the generator pads circularly); below, that sample
    refined by ``refine_steps`` L-BFGS steps of optimisation started from it."""
    generator, meta = texsynth.load_generator(checkpoint)
    sample = texsynth.sample_generator(generator, (size, size), seed=1)
    exemplar = _exemplar(meta)
    caption = (f"{exemplar.name} -> texsynth train ({meta['step']} steps at "
               f"{'x'.join(map(str, meta['training']['size']))}), then one {size}x{size} "
               "sample, shown 2x2")
    rows = [(Image.open(exemplar).convert("RGB"), _tiled(_picture(sample[0])), caption)]
    if refine_steps > 0:
        refined = texsynth.synthesize(exemplar, size=(size, size), init=sample,
                                      steps=refine_steps, seed=0, progress=False)
        rows.append((_picture(sample[0]), _tiled(_picture(refined.signal[0])),
                     f"the same sample refined by {refine_steps} optimisation steps "
                     "(texsynth synthesize --init), shown 2x2"))
    side_by_side(rows).save(out)
    print(f"wrote {out}")


def audio_sheet(checkpoint: Path, out: Path, seconds: float = 30.0) -> None:
    """Spectrograms of the exemplar, the first 10 s of a sample of a trained audio
    generator and ±1 s around the sample's loop point (its end, then its start)."""
    generator, meta = texsynth.load_generator(checkpoint)
    domain = texsynth.get_domain("audio")
    rate = int(meta["domain_config"]["sample_rate"])
    sample = texsynth.sample_generator(generator, domain.size_from_duration(seconds), seed=1)
    exemplar = _exemplar(meta)
    around = torch.cat([sample[..., -rate:], sample[..., :rate]], dim=-1)
    domain.write_preview([(f"{exemplar.name} (exemplar)", domain.load(exemplar)),
                          (f"generated, 10 s of {seconds:g}", sample[..., :10 * rate]),
                          ("loop point (±1 s)", around)], out)
    print(f"wrote {out}")


def sound_sheet(names: list[str], out: Path, seconds: float = 4.0, seed: int = 0) -> None:
    """Spectrograms of each clip next to ``seconds`` of sound synthesised from it with the
    audio domain's defaults (``texsynth synthesize CLIP -o OUT --duration 4 --seed 0``),
    one strip per clip, stacked into ``out`` (:func:`controls_figures.rows`)."""
    domain = texsynth.get_domain("audio")
    strips: list[Path] = []
    for name in names:
        clip = DATA / f"{name}.wav"
        result = texsynth.synthesize(clip, domain=domain,
                                     size=domain.size_from_duration(seconds), seed=seed,
                                     device="cpu")
        strip = WORK / f"{name}_spectrograms.png"
        strip.parent.mkdir(parents=True, exist_ok=True)
        domain.write_preview([(f"{name}.wav (exemplar)", domain.load(clip)),
                              (f"synthesised, {seconds:g} s, defaults", result.signal)],
                             strip)
        strips.append(strip)
    rows(strips, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feedforward", type=Path, metavar="CKPT",
                        help="draw docs/images/feedforward.png from an image generator")
    parser.add_argument("--audio", type=Path, metavar="CKPT",
                        help="draw docs/images/audio_feedforward.png from a sound generator")
    parser.add_argument("--sounds", nargs="*", metavar="CLIP",
                        help="draw docs/images/sound_synthesis.png: spectrograms of these "
                             "clips (default: fountain birds rain) and of sound "
                             "synthesised from them")
    parser.add_argument("--refine-steps", type=int, default=100,
                        help="with --feedforward: optimisation steps refining the sample "
                             "in a second row (0: none)")
    parser.add_argument("--names", nargs="+",
                        default=["bricks", "gravel", "stone_wall", "tiles"])
    parser.add_argument("--size", default="256x192")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimisation steps (default: the image domain's)")
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "images" / "synthesis.png"))
    args = parser.parse_args()
    images = HERE.parent / "docs" / "images"
    if args.sounds is not None:
        sound_sheet(args.sounds or ["fountain", "birds", "rain"],
                    images / "sound_synthesis.png")
        return
    if args.feedforward or args.audio:
        if args.feedforward:
            feedforward_sheet(args.feedforward, images / "feedforward.png",
                              refine_steps=args.refine_steps)
        if args.audio:
            audio_sheet(args.audio, images / "audio_feedforward.png")
        return
    domain = texsynth.get_domain("image")
    size = domain.parse_size(args.size)
    rows = []
    for name in args.names:
        exemplar = DATA / f"{name}.png"
        result = texsynth.synthesize(exemplar, size=size, steps=args.steps, seed=1,
                                     device="cpu")
        out = WORK / f"{name}_{args.size}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        texsynth.save(result, out)
        rows.append((Image.open(exemplar).convert("RGB"), Image.open(out).convert("RGB"),
                     f"{name}.png -> texsynth synthesize --size {args.size} "
                     + ("" if args.steps is None else f"--steps {args.steps} ")
                     + "--seed 1"))
    side_by_side(rows).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
