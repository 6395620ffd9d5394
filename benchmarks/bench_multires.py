"""Time to quality: single-scale against coarse-to-fine optimisation.

For every exemplar of the sample set (``examples/data``) and every schedule, one
``texsynth.synthesize`` run (default extractor, L-BFGS, seed fixed) in its own process,
one torch thread. At every ``--every``-th step of the finest level the current signal is
kept with the wall-clock time since the run began (coarse levels included); after the run
each kept signal is scored with the Portilla–Simoncelli texture score ``T`` of
:mod:`quality` (lower is better, ≈ 1 is the floor), which no texsynth loss optimises.

The tables give, per size, the mean ``T`` over the exemplars at fixed fractions of the
single-scale run's wall-clock time, each schedule's final score and time, and the time
each schedule first reaches the single-scale run's final (300-step) score on each
exemplar.

    python benchmarks/bench_multires.py --sizes 256 512 --jobs 2
    python benchmarks/bench_multires.py --sizes 256 --images bricks --no-write
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import EXAMPLES, machine, publish, run_child, sample_paths  # noqa: E402

#: ``name: (levels, level steps or None)``; the single-scale run is the reference.
SCHEDULES: dict[str, tuple[int, list[int] | None]] = {
    "single-scale, 300 steps": (1, [300]),
    "coarse-to-fine, 2 levels": (2, None),
}
#: Fractions of the single-scale run's time at which the mean score is tabulated.
FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def child(image: str, size: int, levels: int, level_steps: str, every: int,
          seed: int) -> dict[str, Any]:
    """One run: ``[(seconds, step, T), ...]`` at the finest level's kept steps."""
    import quality
    import torch

    import texsynth

    torch.set_num_threads(1)
    path = EXAMPLES / f"{image}.png"
    steps = [int(s) for s in level_steps.split(",")] if level_steps else None
    kept: list[tuple[float, int, torch.Tensor]] = []
    begin = time.perf_counter()
    finest = [0]

    def tick(step: int, loss: float, signal: torch.Tensor) -> None:
        if tuple(signal.shape[2:]) != (size, size):
            finest[0] = step
            return
        local = step - finest[0]
        if local % every == 0:
            kept.append((time.perf_counter() - begin, step, signal.detach().clamp(0, 1)
                         .cpu().clone()))

    result = texsynth.synthesize(path, size=(size, size), seed=seed, progress=False,
                                 levels=levels, level_steps=steps, callback=tick,
                                 device="cpu")
    total = time.perf_counter() - begin
    exemplar = texsynth.load(path)
    ref = quality.reference(exemplar)
    curve = [(seconds, step, quality.texture_score(signal, ref))
             for seconds, step, signal in kept]
    final = quality.texture_score(result.signal, ref)
    return {"curve": curve, "final": final, "seconds": total,
            "levels": result.settings["levels"],
            "level_steps": result.settings.get("level_steps", [result.settings["steps"]])}


def score_at(curve: list[list[float]], seconds: float) -> float | None:
    """The score of the last kept signal at or before ``seconds`` (None: none yet)."""
    seen = [point[2] for point in curve if point[0] <= seconds]
    return seen[-1] if seen else None


def first_reaching(curve: list[list[float]], target: float) -> float | None:
    """Seconds at which ``curve`` first scores ``target`` or lower."""
    for seconds, _, score in curve:
        if score <= target:
            return seconds
    return None


def tables(size: int, names: list[str], runs: dict[tuple[str, str], dict[str, Any]]) -> str:
    """The markdown tables of one size."""
    reference = next(iter(SCHEDULES))
    base = {image: runs[(reference, image)] for image in names}
    mean_base = statistics.fmean(r["seconds"] for r in base.values())
    head = ["schedule", "levels × steps"] + \
        [f"T at {f:g}× ({f * mean_base:.0f} s)" for f in FRACTIONS] + \
        ["final T", "seconds", "time to single-scale's final T"]
    lines = [f"**{size}²** (mean over {len(names)} exemplars)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in SCHEDULES:
        rows = [runs[(name, image)] for image in names]
        cells = []
        for fraction in FRACTIONS:
            scores = [score_at(r["curve"], fraction * base[i]["seconds"])
                      for r, i in zip(rows, names, strict=True)]
            cells.append("—" if any(s is None for s in scores)
                         else f"{statistics.fmean(s for s in scores if s is not None):.2f}")
        reach = [first_reaching(r["curve"], base[i]["final"])
                 for r, i in zip(rows, names, strict=True)]
        ratio = [t / base[i]["seconds"] for t, i in zip(reach, names, strict=True)
                 if t is not None]
        reached = (f"{statistics.fmean(ratio):.2f}× mean, {max(ratio):.2f}× worst"
                   if len(ratio) == len(names) else f"not reached on "
                   f"{len(names) - len(ratio)} of {len(names)}")
        steps = "+".join(str(s) for s in rows[0]["level_steps"])
        lines.append("| " + " | ".join(
            [name, steps, *cells, f"{statistics.fmean(r['final'] for r in rows):.2f}",
             f"{statistics.fmean(r['seconds'] for r in rows):.0f}", reached]) + " |")
    lines += ["", "Final T per exemplar:", "",
              "| schedule | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for name in SCHEDULES:
        lines.append(f"| {name} | " + " | ".join(
            f"{runs[(name, i)]['final']:.2f}" for i in names) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--images", nargs="+", help="stems (default: every *.png)")
    parser.add_argument("--every", type=int, default=25, help="score every N steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    parser.add_argument("--schedule", action="append", default=[], metavar="NAME=L:S,S,..",
                        help="add a schedule: levels and steps per level, coarsest first")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.child:
        image, size, levels, steps, every, seed = args.child
        print(json.dumps(child(image, int(size), int(levels), steps, int(every), int(seed))))
        return
    for spec in args.schedule:
        name, _, plan = spec.partition("=")
        levels, _, steps = plan.partition(":")
        SCHEDULES[name] = (int(levels), [int(s) for s in steps.split(",")] if steps else None)
    names = args.images or [p.stem for p in sample_paths(EXAMPLES, ".png")]
    begin = time.perf_counter()
    sections = []
    for size in args.sizes:
        jobs = {(name, image): [image, str(size), str(levels),
                                ",".join(map(str, steps or [])), str(args.every),
                                str(args.seed)]
                for name, (levels, steps) in SCHEDULES.items() for image in names}
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = {key: pool.submit(run_child, Path(__file__), argv)
                       for key, argv in jobs.items()}
            runs = {key: future.result() for key, future in futures.items()}
        failed = [f"{k}: {r['error']}" for k, r in runs.items() if "error" in r]
        if failed:
            raise SystemExit("runs failed: " + "; ".join(failed))
        sections.append(tables(size, names, runs))
        print(sections[-1], flush=True)
    body = (f"Measured on: {machine()}, one torch thread per run, {args.jobs} runs at once.\n"
            f"Default extractor, L-BFGS, seed {args.seed}, output square; T scored every "
            f"{args.every} steps of the finest level; times include the coarse levels. "
            f"Whole benchmark: {time.perf_counter() - begin:.0f} s.")
    publish("Coarse-to-fine optimisation (cpu)", body, "\n\n".join(sections),
            write=not args.no_write)


if __name__ == "__main__":
    main()
