"""Long-range structure: what keeps rows of bricks straight.

Regular textures lose their order when nothing larger than the largest filter is
constrained. This benchmark synthesises ``bricks.png`` (``examples/data``) with
several variants, each in its own process (one torch thread), and scores every output
with two measures no texsynth loss optimises:

* **row regularity** ``R``: the autocorrelation of the output's row-mean luminance
  profile (mean over each row, minus the profile's mean), normalised to 1 at lag 0, read
  at the exemplar's own row period (the lag of the exemplar profile's highest
  autocorrelation between 8 and 48 rows), after removing slow shading. Straight, evenly
  spaced mortar lines give ``R`` near the exemplar's; streaks and fragments give ``R``
  near 0 (white noise: about 0.05). Row spacing may vary a little, so the lag is
  searched within ±15 % of the period;
* the Portilla–Simoncelli texture score ``T`` of :mod:`quality` (lower is better).

The variants: single-scale Gram (the default), coarse-to-fine (two levels), and the
autocorrelation term (``texture_loss="gram+autocorr"``, lags up to 32 positions) alone
and with coarse-to-fine. Outputs are put side by side into ``structure.png`` next to
RESULTS.md (``--sheet``).

    python benchmarks/bench_structure.py --size 256
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import EXAMPLES, machine, publish, run_child  # noqa: E402

EXEMPLAR = EXAMPLES / "bricks.png"
#: ``name: (levels, texture loss)``.
VARIANTS: dict[str, tuple[int, str]] = {
    "single-scale, gram": (1, "gram"),
    "coarse-to-fine (2 levels), gram": (2, "gram"),
    "single-scale, gram+autocorr": (1, "gram+autocorr"),
    "coarse-to-fine (2 levels), gram+autocorr": (2, "gram+autocorr"),
}


#: Rows of the moving average removed from the row profile (longer than a row period).
SMOOTH = 49


def row_profile(image: Any) -> Any:
    """Row means of the luminance of ``image`` ``(1, 3, H, W)``, high-passed: minus their
    circular moving average over :data:`SMOOTH` rows, so slow shading (lighting across
    the exemplar) does not hide the rows: ``(H,)``."""
    import torch

    lum = (0.299 * image[0, 0] + 0.587 * image[0, 1] + 0.114 * image[0, 2]).double()
    profile = lum.mean(dim=1)
    half = SMOOTH // 2
    padded = torch.cat([profile[-half:], profile, profile[:half]])
    trend = padded.unfold(0, SMOOTH, 1).mean(dim=1)
    return profile - trend


def autocorrelation(profile: Any) -> Any:
    """Circular autocorrelation of ``profile`` ``(H,)`` normalised to 1 at lag 0."""
    import torch

    spectrum = torch.fft.rfft(profile)
    corr = torch.fft.irfft(spectrum.abs() ** 2, n=profile.shape[0])
    return corr / corr[0].clamp_min(1e-12)


def row_period(exemplar: Any) -> int:
    """The exemplar's row period in pixels: its profile's best lag in ``[8, SMOOTH)``."""
    corr = autocorrelation(row_profile(exemplar))
    return 8 + int(corr[8: SMOOTH].argmax())


def row_regularity(image: Any, period: int) -> float:
    """``R``: the best autocorrelation of the row profile within ±15 % of ``period``."""
    corr = autocorrelation(row_profile(image))
    low, high = max(1, int(period * 0.85)), min(corr.shape[0] - 1, int(period * 1.15) + 1)
    return float(corr[low: high + 1].max())


def child(size: int, levels: int, loss: str, steps: int, out: str) -> dict[str, Any]:
    import quality
    import torch

    import texsynth

    torch.set_num_threads(1)
    begin = time.perf_counter()
    result = texsynth.synthesize(EXEMPLAR, size=(size, size), levels=levels, steps=steps,
                                 texture_loss=loss, seed=0, progress=False, device="cpu")
    seconds = time.perf_counter() - begin
    texsynth.save(result, out)
    exemplar = texsynth.load(EXEMPLAR)
    period = row_period(exemplar)  # outputs are at the exemplar's pixel scale
    return {"R": row_regularity(result.signal, period),
            "T": quality.texture_score(result.signal, quality.reference(exemplar)),
            "seconds": seconds, "level_steps": result.settings.get("level_steps", [steps])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300, help="steps at the output size")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sheet", default=str(HERE / "structure.png"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.child:
        size, levels, loss, steps, out = args.child
        print(json.dumps(child(int(size), int(levels), loss, int(steps), out)))
        return
    import texsynth

    outdir = Path(args.sheet).with_suffix("")
    outdir.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()
    jobs = {name: [str(args.size), str(levels), loss, str(args.steps),
                   str(outdir / f"{i}.png")]
            for i, (name, (levels, loss)) in enumerate(VARIANTS.items())}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {name: pool.submit(run_child, Path(__file__), argv)
                   for name, argv in jobs.items()}
        runs = {name: future.result() for name, future in futures.items()}
    exemplar = texsynth.load(EXEMPLAR)
    period = row_period(exemplar)
    rows = ["| variant | steps | R (row regularity) | T | seconds |", "|---|---|---|---|---|",
            f"| exemplar | — | {row_regularity(exemplar, period):.2f} | — | — |"]
    for name, res in runs.items():
        if "error" in res:
            rows.append(f"| {name} | error: {res['error']} | | | |")
            continue
        steps = "+".join(str(s) for s in res["level_steps"])
        rows.append(f"| {name} | {steps} | {res['R']:.2f} | {res['T']:.2f} | "
                    f"{res['seconds']:.0f} |")
    print("\n".join(rows), flush=True)
    import torch
    import torch.nn.functional as F

    shown = [F.interpolate(exemplar, size=(args.size, args.size), mode="area")]
    shown += [texsynth.load(outdir / f"{i}.png") for i in range(len(VARIANTS))]
    gap = torch.ones(1, 3, args.size, 8)
    sheet = torch.cat([part for image in shown for part in (image, gap)][:-1], dim=3)
    texsynth.save(sheet, args.sheet)
    body = (f"Measured on: {machine()}, one torch thread per run, {args.jobs} runs at once.\n"
            f"`bricks.png` at {args.size}², default extractor, L-BFGS, seed 0; the "
            f"exemplar's row period is {period} px. Sheet (exemplar, then the variants in "
            f"table order): `{Path(args.sheet).name}`. Whole benchmark: "
            f"{time.perf_counter() - begin:.0f} s.")
    publish(f"Long-range structure ({args.size}²)", body, "\n".join(rows),
            write=not args.no_write)


if __name__ == "__main__":
    main()
