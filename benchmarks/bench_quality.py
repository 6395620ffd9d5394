"""Texture quality in a space no texsynth loss uses: Portilla–Simoncelli statistics,
colour, novelty and order.

For each exemplar of the sample set in ``examples/data`` (nine pictures, half of them
regular; see ``examples/data/SOURCES.md``) this scores outputs of the benchmark size with
:mod:`quality` (texture score ``T``: RMS z of the PS statistics of 64² windows against
the spread over the exemplar's own windows, ≈ 1 for a genuine piece of the exemplar;
colour distance ``C``: sliced Wasserstein-1 between RGB distributions) and
:mod:`novelty_order` (novelty ``N``: median distance of the output's 16² windows to their
nearest exemplar window over the same between the exemplar's halves, ≈ 1 for new texture,
well below 1 for a copy; order ``O``: correlation of the output's and the exemplar's
luminance autocorrelations over lags up to 64 px, for rows and lattices). Rows:

* calibration: *crop* (the four corner crops of the exemplar, each scored against the
  exemplar without it: the floor), *phase-randomised* (power spectrum of every channel
  kept, one shared set of random phases, clipped to [0, 1]), *pixel-shuffled* (colours
  kept, structure lost);
* *optimisation*: ``texsynth.synthesize`` with the image domain's defaults (``--steps``
  overrides the steps), seed fixed, once per ``--loss``;
* per ``--variant NAME=JSON`` a ``texsynth.synthesize`` run with those keyword arguments
  (``'c2f={"levels": 3, "extractor": "patches", "texture_loss": "sw"}'``);
* per ``--checkpoint NAME=PATH`` a feed-forward sample (seed fixed), and per
  ``--refine N`` that sample refined by ``N`` steps with ``texsynth.refine``. ``PATH``
  may contain ``{image}`` (the exemplar's stem); otherwise the checkpoint counts for the
  exemplars whose file name matches one it was trained on.

It writes the contact sheet ``docs/images/quality_sheet.png`` and the section "Quality:
..." of RESULTS.md. The scores are for evaluation only: never optimise against them.

    python benchmarks/bench_quality.py --size 256          # 1 thread, 2-core CPU
    python benchmarks/bench_quality.py --steps 50 --no-write --images grass
    python benchmarks/bench_quality.py --no-default --variant 'adam={"optimizer": "adam"}'
    python benchmarks/bench_quality.py --checkpoint ff=out/{image}.ckpt --refine 50
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quality  # noqa: E402
from common import (  # noqa: E402
    EXAMPLES,
    Row,
    add_quality_arguments,
    machine,
    parse_quality_arguments,
    publish,
    quality_inputs,
    score_table,
)
from novelty_order import halves_reference, novelty, order  # noqa: E402

SHEET = HERE.parent / "docs" / "images" / "quality_sheet.png"
#: ``(T, C, N, O)``: texture score, colour distance, novelty, order.
Scores = tuple[float, float, float, float]
SCORE_NAMES = ("Texture score T (RMS z; ≈ 1 is the floor)",
               "Colour distance C (sliced Wasserstein-1, [0, 1] units)",
               "Novelty N (nearest-window distance over the exemplar halves'; ≈ 1 new, "
               "well below 1 copied)",
               "Order O (share of the exemplar's lattice correlation kept; exemplars "
               "without a lattice: —; read against the crops)")


def all_scores(output: torch.Tensor, exemplar: torch.Tensor, reference: float, *,
               held_out: quality.Box | None = None) -> Scores:
    """``(T, C, N, O)`` of an output; with ``held_out``, T, C and N against the exemplar
    without that box."""
    texture, colour = quality.scores(output, exemplar, held_out=held_out)
    return (texture, colour, novelty(output, exemplar, exclude=held_out, reference=reference),
            order(output, exemplar))


def calibration(exemplar: torch.Tensor, size: int, seed: int, reference: float
                ) -> list[tuple[str, torch.Tensor, Scores]]:
    """The calibration rows for one exemplar: ``(name, shown image, scores)``; crops are
    ``size``² (half the exemplar where it is not larger than ``size``)."""
    side = size if min(exemplar.shape[2:]) > size else min(exemplar.shape[2:]) // 2
    boxes = quality.corner_boxes(exemplar, side)
    crops = [quality.crop(exemplar, box) for box in boxes]
    each = [all_scores(c, exemplar, reference, held_out=box)
            for c, box in zip(crops, boxes, strict=True)]
    floor = tuple(sum(s[i] for s in each) / len(each) for i in range(4))
    weakest = tuple(max(s[i] for s in each) if i < 2 else min(s[i] for s in each)
                    for i in range(4))
    generator = torch.Generator().manual_seed(seed)
    corner = (0, 0, side, side)
    phased = quality.crop(quality.phase_randomize(exemplar, generator), corner)
    shuffled = quality.crop(quality.pixel_shuffle(exemplar, generator), corner)
    return [("crop of the exemplar (held out; mean of 4)", crops[0], floor),
            ("crop, weakest of 4", crops[-1], weakest),  # type: ignore[list-item]
            ("phase-randomised", phased, all_scores(phased, exemplar, reference)),
            ("pixel-shuffled", shuffled, all_scores(shuffled, exemplar, reference))]


def optimise(path: Path, size: int, seed: int, device: str, **options: Any) -> torch.Tensor:
    """``texsynth.synthesize`` from noise with the image domain's defaults and
    ``options``."""
    import texsynth

    return texsynth.synthesize(path, size=(size, size), seed=seed, device=device,
                               progress=False, **options).signal


def checkpoint_path(template: str, image: Path, trained_on: Callable[[Path], list[str]]
                    ) -> Path | None:
    """The checkpoint of ``--checkpoint NAME=PATH`` that belongs to ``image``, if any."""
    if "{image}" in template:
        path = Path(template.format(image=image.stem))
        return path if path.is_file() else None
    path = Path(template)
    return path if image.name in {Path(n).name for n in trained_on(path)} else None


def feed_forward(path: Path, image: Path, size: int, seed: int, refine: list[int],
                 device: str) -> list[tuple[str, torch.Tensor, float]]:
    """A sample of the checkpoint and its refinements: ``(suffix, signal, seconds)``."""
    import texsynth

    trained = texsynth.load_trained(path, device=device)
    start = time.perf_counter()
    sample = texsynth.sample(trained, (size, size), seed=seed, device=device).signals[:1]
    made = [("", sample, time.perf_counter() - start)]
    for steps in refine:
        start = time.perf_counter()
        refined = texsynth.refine(trained, sample, steps=steps, exemplars=[image], seed=seed,
                                  device=device).signal
        made.append((f" + refine {steps}", refined, time.perf_counter() - start))
    return made


def trained_exemplars(path: Path) -> list[str]:
    """The exemplar paths a checkpoint records it was trained on."""
    import texsynth

    meta = texsynth.load_trained(path).metadata
    return [str(n) for n in (meta.get("training") or {}).get("exemplars", [])]


def add(rows: dict[str, Row], name: str, image: str, shown: torch.Tensor, scores: Scores,
        seconds: float | None = None) -> None:
    """Record one output's scores in the row ``name`` (made on first use)."""
    row = rows.setdefault(name, Row(name))
    row.shown[image], row.scores[image] = shown, scores
    if seconds is not None:
        row.seconds[image] = seconds
    print(f"{image:>10} | {name:<44} | T {scores[0]:7.3f} | C {scores[1]:.4f} | "
          f"N {scores[2]:.2f} | O {scores[3]:.2f}"
          + (f" | {seconds:.1f} s" if seconds is not None else ""), flush=True)


def evaluate(args: argparse.Namespace, image: Path, rows: dict[str, Row]) -> None:
    """Make and score every row's output for one exemplar."""
    import texsynth

    exemplar = texsynth.load(image)
    if min(exemplar.shape[2:]) < args.size:
        raise SystemExit(f"{image}: {tuple(exemplar.shape[2:])} is smaller than --size "
                         f"{args.size}")
    name = image.stem
    reference = halves_reference(exemplar)
    rows.setdefault("exemplar", Row("exemplar")).shown[name] = exemplar
    for row, shown, scores in ([] if args.no_calibration else
                               calibration(exemplar, args.size, args.seed, reference)):
        add(rows, row, name, shown, scores)
    runs = [] if args.no_default else [
        (f"optimisation, defaults{'' if loss is None else f', --loss {loss}'}"
         f"{'' if args.steps is None else f', {args.steps} steps'}",
         {**({} if loss is None else {"texture_loss": loss}),
          **({} if args.steps is None else {"steps": args.steps})})
        for loss in (args.loss or [None])]
    runs += [(label, json.loads(text)) for label, _, text in
             (spec.partition("=") for spec in args.variant)]
    for label, options in runs:
        start = time.perf_counter()
        out = optimise(image, args.size, args.seed, args.device, **options)
        add(rows, label, name, out, all_scores(out, exemplar, reference),
            time.perf_counter() - start)
    for spec in args.checkpoint:
        label, _, template = spec.partition("=")
        path = checkpoint_path(template, image, trained_exemplars)
        if path is None:
            continue
        for suffix, signal, seconds in feed_forward(path, image, args.size, args.seed,
                                                    args.refine, args.device):
            add(rows, f"{label}{suffix}", name, signal,
                all_scores(signal, exemplar, reference), seconds)


def table(rows: list[Row], images: list[str], which: int, timed: bool) -> str:
    """A markdown table of score ``which`` (0: T, 1: C, 2: N, 3: O), a column per
    exemplar + mean."""
    return score_table(rows, images, which, digits=4 if which == 1 else 2, timed=timed,
                       time_label="seconds per image")


def to_pil(signal: torch.Tensor, size: int) -> Any:
    """A ``(1, 3, H, W)`` signal in [0, 1] as a ``size``² PIL image (area-downscaled if
    larger, e.g. the whole exemplar)."""
    from PIL import Image

    array = (signal[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    image = Image.fromarray(array)
    return image if image.size == (size, size) else image.resize((size, size), Image.Resampling.BOX)


def column_title(name: str, width: int) -> str:
    """A row's name shortened to ``width`` characters for the sheet: the part before the
    first comma (``"optimisation"``) and what a suffix adds (``"+ refine 50"``), or only
    the suffix where both do not fit (the column to its left names the row)."""
    head = name.split(",")[0].split(" (")[0]
    if "--loss " in name:
        head += f" ({name.rpartition('--loss ')[2].split(' + ')[0]})"
    extra = f"+ {name.rpartition(' + ')[2]}" if " + " in name else ""
    title = f"{head} {extra}".strip()
    if len(title) > width and extra:
        title = extra
    return title if len(title) <= width else title[:width - 1] + "…"


#: Largest cell of the contact sheet (pixels): larger outputs are shown area-downscaled,
#: which keeps the sheet of nine exemplars at 256² under 2 MiB.
SHEET_CELL = 160


def contact_sheet(rows: list[Row], images: list[str], size: int, path: Path) -> None:
    """One line per exemplar, one column per row (the exemplar whole, scaled to fit),
    each cell labelled with its scores; cells of at most :data:`SHEET_CELL` pixels."""
    from PIL import Image, ImageDraw

    size = min(size, SHEET_CELL)
    pad, label, head = 4, 14, 16
    sheet = Image.new("RGB", (len(rows) * (size + pad) + pad,
                              head + len(images) * (size + label + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for c, row in enumerate(rows):
        x = pad + c * (size + pad)
        draw.text((x, 2), column_title(row.name, size // 6), fill="black")
        for r, image in enumerate(images):
            y = head + r * (size + label + pad)
            if image in row.shown:
                sheet.paste(to_pil(row.shown[image], size), (x, y))
            scores = row.scores.get(image)
            order = f"{scores[3]:.2f}" if scores and math.isfinite(scores[3]) else "—"
            text = (f"T{scores[0]:.2f} C{scores[1]:.3f} N{scores[2]:.2f} O{order}"
                    if scores else image if c == 0 else "")
            draw.text((x, y + size + 1), text, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=EXAMPLES, help="folder of exemplars")
    parser.add_argument("--images", nargs="+", help="stems to use (default: every *.png)")
    parser.add_argument("--size", type=int, default=128, help="output size (square)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps of the default rows (default: the domain's)")
    parser.add_argument("--loss", nargs="+", default=None, metavar="LOSS",
                        help="texture losses of the default rows (default: the default)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                        help="a row of texsynth.synthesize with these keyword arguments")
    parser.add_argument("--no-default", action="store_true",
                        help="no row with the defaults (only --variant rows)")
    parser.add_argument("--no-calibration", action="store_true",
                        help="no crop / phase-randomised / pixel-shuffled rows")
    parser.add_argument("--refine", action="append", type=int, default=[], metavar="N")
    add_quality_arguments(parser, SHEET)
    args = parse_quality_arguments(parser, argv)
    return args


def describe(args: argparse.Namespace, seconds: float) -> str:
    """What the tables measure, for RESULTS.md."""
    return (
        f"Measured on: {machine()}, device `{args.device}`. Outputs {args.size}², seed "
        f"{args.seed}; whole run {seconds / 60:.1f} min. Exemplars: `examples/data` "
        "(the sample set).\n"
        "Texture score T (lower is better): RMS over the output's 64² windows (stride 16) "
        "of the z-scores of their 529 Portilla–Simoncelli statistics (luminance, 3 scales, "
        "4 orientations, 7×7 neighbourhood; plenoptic) against the mean and spread of the "
        "same statistics over the exemplar's windows (σ floored at 0.1 × its family's "
        "median σ); a genuine piece of the exemplar scores ≈ 1. Colour distance C: sliced "
        "Wasserstein-1 between RGB pixel distributions, 64 fixed directions, [0, 1] units. "
        "Novelty N: median distance of the output's 16² RGB windows (stride 8) to their "
        "nearest exemplar window (stride 1), over the same between the exemplar's halves "
        "(left/right, top/bottom); ≈ 1 is new texture, well below 1 a copy. Order O: the "
        "share of the exemplar's lattice correlation the output keeps (the output's "
        "band-passed luminance autocorrelation at the lags of the exemplar's peaks above "
        "0.15, lags ≤ 96 px; — for exemplars without a lattice; phase-randomised copies "
        "keep it, so read it with T). No texsynth loss uses any of them; definitions in "
        "`benchmarks/quality.py` and `benchmarks/novelty_order.py`. Rows: crop = "
        "the exemplar's four corner crops of the output's size (half the exemplar where "
        "it is not larger), each scored against the rest of the exemplar "
        "(windows overlapping it and its pixels left out; O against the whole), mean and "
        "weakest of the four; phase-randomised = every "
        "channel's amplitude spectrum with one shared set of random phases, clipped; "
        "pixel-shuffled = the exemplar's pixels in random order; optimisation = "
        "`texsynth.synthesize` from noise with the defaults; other rows name their "
        "settings. Contact sheet (cells of at most 160², area-downscaled): "
        "`docs/images/quality_sheet.png`.\n"
        "Reading: T below the crop row is not better than real; it means the output's "
        "windows are closer to the exemplar's average window than real pieces are (less "
        "varied). C of the shuffled row (≈ 0.001) is the sampling noise of a perfect "
        "colour match; crops score more because the exemplars vary in colour. The `sw` "
        "loss on the `patches` extractor's `value` layer optimises the colour "
        "distribution directly, so C is not independent for outputs made with it.")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the tables, write the sheet and RESULTS.md."""
    args = parse(argv)
    paths = quality_inputs(args, args.data, ".png", args.images, "exemplars")
    start = time.perf_counter()
    rows: dict[str, Row] = {}
    for path in paths:
        evaluate(args, path, rows)
    seconds = time.perf_counter() - start
    names = [p.stem for p in paths]
    scored = [row for row in rows.values() if row.scores]
    tables = "\n\n".join(f"{title}\n\n{table(scored, names, which, timed=which == 0)}"
                         for which, title in enumerate(SCORE_NAMES))
    print(tables)
    print(f"whole run: {seconds:.0f} s")
    contact_sheet(list(rows.values()), names, args.size, args.sheet)
    publish(f"Quality: Portilla–Simoncelli texture score and colour distance ({args.device})",
            describe(args, seconds), tables, write=not args.no_write)


if __name__ == "__main__":
    main()
