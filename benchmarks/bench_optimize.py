"""Seconds per optimisation step and peak memory of texture synthesis by optimisation.

Each configuration runs in its own process (so its peak memory is its own): the exemplar
``examples/data/bricks.png`` at the given size, L-BFGS, a few warm-up evaluations, then
timed evaluations. One step is one loss + gradient evaluation.

    python benchmarks/bench_optimize.py                 # CPU, writes RESULTS.md
    python benchmarks/bench_optimize.py --device cuda --sizes 256 512 1024
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import EXAMPLES, machine, peak_rss_mib, publish, run_child  # noqa: E402


def child(extractor: str, size: int, steps: int, device: str, block: str
          ) -> dict[str, float]:
    import torch

    import texsynth

    timings: list[float] = []
    last = [time.perf_counter()]

    def tick(step: int, loss: float, signal: torch.Tensor) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        timings.append(now - last[0])
        last[0] = now

    warmup = 2
    result = texsynth.synthesize(
        EXAMPLES / "bricks.png", size=(size, size), extractor=extractor, levels=1,
        steps=steps + warmup, seed=0, device=device, progress=False, callback=tick,
        block=None if block == "auto" else int(block))
    per_step = sum(timings[warmup:]) / max(1, len(timings) - warmup)
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    return {"seconds_per_step": per_step, "peak_rss_mib": peak_rss_mib(),
            "gpu_peak_mib": gpu_peak, "block": result.settings["block"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=6,
                        metavar=("EXTRACTOR", "SIZE", "STEPS", "DEVICE", "THREADS", "BLOCK"))
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads in each run (default: torch's choice)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--extractors", nargs="+", default=["vgg19-random", "random-multiscale"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--blocks", nargs="+", default=["auto"],
                        help="block settings to compare: auto (the default choice), 0 "
                             "(whole evaluations) or a block length")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.child:
        ext, size, steps, device, threads, block = args.child
        if int(threads) > 0:
            import torch

            torch.set_num_threads(int(threads))
        print(json.dumps(child(ext, int(size), int(steps), device, block)))
        return
    rows = ["| extractor | size | evaluation | s / step | peak memory (MiB) |",
            "|---|---|---|---|---|"]
    for ext in args.extractors:
        for size in args.sizes:
            for block in args.blocks:
                res = run_child(Path(__file__), [ext, str(size), str(args.steps), args.device,
                                                 str(args.threads), block])
                asked = "whole" if block == "0" else "auto" if block == "auto" else \
                    f"blocks of {block}"
                if "error" in res:
                    rows.append(f"| {ext} | {size}² | {asked} | error: {res['error']} | |")
                else:
                    mem = res["gpu_peak_mib"] if args.device.startswith("cuda") else \
                        res["peak_rss_mib"]
                    used = (f"{asked}: blocks of {res['block']}" if res["block"]
                            else f"{asked}: whole")
                    if block != "auto":
                        used = asked
                    rows.append(f"| {ext} | {size}² | {used} | {res['seconds_per_step']:.3f} "
                                f"| {mem:.0f} |")
                print(rows[-1], flush=True)
    kind = "GPU memory allocated" if args.device.startswith("cuda") else "process peak RSS"
    threads = f"{args.threads} torch thread(s) per run" if args.threads else "torch's threads"
    body = (f"Measured on: {machine()}, device `{args.device}`, {threads}.\n"
            f"One step = one loss + gradient evaluation (L-BFGS), exemplar `bricks.png`, "
            f"mean of {args.steps} steps after 2 warm-up steps; memory is {kind}.")
    publish(f"Optimisation ({args.device})", body, "\n".join(rows), write=not args.no_write)


if __name__ == "__main__":
    main()
