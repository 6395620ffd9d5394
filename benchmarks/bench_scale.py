"""Scale: peak memory and time of (tiled) sampling, and data-parallel training throughput.

1. Train a small default generator (six scales, batch norm) on an exemplar, or reuse
   ``--checkpoint``.
2. Sampling: for each size, in a fresh process (so the peak resident memory is its own),
   make one sample and write it as PNG, either in one piece (``sample`` + ``save``) or
   tiled and streamed (``sample_tiled`` + the image domain's streaming PNG writer), and
   report the time and the process's peak RSS.
3. Training throughput (images/s) of ``train_generator`` on the CPU with 1 process and
   with ``torchrun --nproc_per_node 2`` (Gloo, the same global batch), timed by a callback
   after warm-up steps.

    python benchmarks/bench_scale.py                       # CPU, ~10 min on 2 cores
    python benchmarks/bench_scale.py --whole 1024 --tiled 1024 4096 8192
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import EXAMPLES, machine, peak_rss_mib, publish, run_child  # noqa: E402

#: The done-when target for an 8192² sample.
TARGET_MIB = 2048


def sample_child(checkpoint: str, size: int, mode: str, tile: int, out: str,
                 threads: int) -> dict[str, float]:
    """One sample of ``size``² written to ``out``: ``mode`` is ``whole`` or ``tiled``."""
    import torch

    if threads:
        torch.set_num_threads(threads)

    from texsynth.feedforward.checkpoint import load_generator
    from texsynth.feedforward.sampling import generate as sample
    from texsynth.feedforward.tiled import sample_tiled
    from texsynth.plugins import get_plugin_manager

    generator, meta = load_generator(checkpoint, device="cpu")
    domain = get_plugin_manager().get_domain(meta["domain"])
    path = Path(out)
    baseline = peak_rss_mib()
    start = time.perf_counter()
    with torch.no_grad():
        if mode == "whole":
            signal = sample(generator, (size, size), seed=0)
            domain.save(signal, path, metadata={"seed": 0})
        else:
            with domain.open_writer(path, (size, size), generator.config.out_channels,
                                    metadata={"seed": 0, "tile": tile}) as writer:
                sample_tiled(generator, (size, size), seed=0, tile=tile, sink=writer.write)
    elapsed = time.perf_counter() - start
    result = {"seconds": elapsed, "peak_rss_mib": peak_rss_mib(),
              "baseline_rss_mib": baseline, "bytes": path.stat().st_size}
    path.unlink()
    return result


TRAIN_CHILD = r'''
import json, os, sys, time
import torch
from texsynth.feedforward.training import train_generator
from texsynth.feedforward.distributed import is_main_process

exemplar, size, batch, iterations, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
stamps = {}
def tick(step, loss, gen):
    if step in (warmup, iterations):
        stamps[step] = time.perf_counter()
result = train_generator(exemplar, size=(size, size), batch_size=batch, iterations=iterations,
                         layers=["k3", "k5", "k7", "k11"], extractor_options={"filters": 32},
                         seed=0, device="cpu", progress=False, callback=tick)
if is_main_process():
    seconds = stamps[iterations] - stamps[warmup]
    print(json.dumps({"images_per_s": batch * (iterations - warmup) / seconds,
                      "s_per_step": seconds / (iterations - warmup),
                      "final_loss": result.losses[-1], "threads": torch.get_num_threads()}))
'''


def train_throughput(exemplar: str, size: int, batch: int, iterations: int, warmup: int,
                     processes: int, threads: int) -> dict[str, float] | dict[str, str]:
    """Images/s of ``processes`` × ``threads`` (torchrun for more than one process)."""
    script = HERE / "out" / "_train_child.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(TRAIN_CHILD)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = str(threads)
    args = [str(script), exemplar, str(size), str(batch), str(iterations), str(warmup)]
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                 str(processes), "--standalone"] if processes > 1 else [sys.executable])
    proc = subprocess.run([*launcher, *args], capture_output=True, text=True, env=env,
                          check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        return {"error": tail[-1] if tail else "failed"}
    result: dict[str, float] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=6,
                        metavar=("CKPT", "SIZE", "MODE", "TILE", "OUT", "THREADS"))
    parser.add_argument("--exemplar", default=str(EXAMPLES / "grass.png"))
    parser.add_argument("--checkpoint", default=str(HERE / "out" / "scale.ckpt"))
    parser.add_argument("--train-size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--whole", type=int, nargs="*", default=[1024, 2048])
    parser.add_argument("--tiled", type=int, nargs="*", default=[1024, 4096, 8192])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--throughput-size", type=int, default=64)
    parser.add_argument("--throughput-batch", type=int, default=8)
    parser.add_argument("--throughput-steps", type=int, default=12)
    parser.add_argument("--throughput-warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of the sampling processes (0: torch's default)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.child:
        ckpt, size, mode, tile, out, threads = args.child
        print(json.dumps(sample_child(ckpt, int(size), mode, int(tile), out, int(threads))))
        return

    from texsynth.feedforward.training import train_generator

    ckpt = Path(args.checkpoint)
    note = "checkpoint reused"
    if not ckpt.exists():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        train_generator(args.exemplar, size=(args.train_size, args.train_size), batch_size=4,
                        iterations=args.iterations, seed=0, device="cpu", checkpoint=ckpt,
                        layers=["k3", "k5", "k7", "k11"], extractor_options={"filters": 32},
                        progress=True)
        note = f"trained {args.iterations} steps in {time.perf_counter() - start:.0f} s"

    load_before = os.getloadavg()[0]
    rows = ["| size | mode | time (s) | peak RSS (MiB) | RSS before sampling (MiB) | PNG (MiB) |",
            "|---|---|---|---|---|---|"]
    peaks: dict[int, float] = {}
    for mode, sizes in (("whole", args.whole), ("tiled", args.tiled)):
        for size in sizes:
            out = HERE / "out" / f"_scale_{mode}_{size}.png"
            res = run_child(Path(__file__), [str(ckpt), str(size), mode, str(args.tile),
                                             str(out), str(args.threads)])
            label = "one piece" if mode == "whole" else f"tiles of {args.tile}², streamed"
            if "error" in res:
                rows.append(f"| {size}² | {label} | error: {res['error']} | | | |")
            else:
                if mode == "tiled":
                    peaks[size] = res["peak_rss_mib"]
                rows.append(f"| {size}² | {label} | {res['seconds']:.1f} | "
                            f"{res['peak_rss_mib']:.0f} | {res['baseline_rss_mib']:.0f} | "
                            f"{res['bytes'] / 2**20:.1f} |")
            print(rows[-1], flush=True)

    train_rows = ["| processes × threads | global batch | s/step | images/s |",
                  "|---|---|---|---|"]
    for processes, threads in ((1, 1), (1, 2), (2, 1)):
        res = train_throughput(args.exemplar, args.throughput_size, args.throughput_batch,
                               args.throughput_steps, args.throughput_warmup, processes,
                               threads)
        launcher = "torchrun" if processes > 1 else "python"
        if "error" in res:
            train_rows.append(f"| {processes} × {threads} ({launcher}) | "
                              f"{args.throughput_batch} | error: {res['error']} | |")
        else:
            train_rows.append(f"| {processes} × {threads} ({launcher}) | "
                              f"{args.throughput_batch} | {res['s_per_step']:.2f} | "
                              f"{res['images_per_s']:.1f} |")
        print(train_rows[-1], flush=True)

    big = max(peaks) if peaks else None
    verdict = (f"Largest tiled sample: {big}² with peak RSS {peaks[big]:.0f} MiB "
               f"({'under' if peaks[big] < TARGET_MIB else 'OVER'} the {TARGET_MIB} MiB "
               "target)." if big else "")
    threads = f"{args.threads} thread(s)" if args.threads else "torch's default threads"
    body = (f"Measured on: {machine()}. The machine is shared and was busy with other "
            f"people's jobs while this ran (1-min load average {load_before:.1f} at the "
            f"start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores), so "
            "times are indicative only; memory is not affected. Sampling used "
            f"{threads}. "
            f"Generator: default six scales, batch norm, 8 filters per branch ({note} at "
            f"{args.train_size}², random-multiscale k3-k11 with 32 filters). Each sample "
            "is one image made and written as PNG in a fresh process; peak RSS is that "
            "process's, including Python, PyTorch, the plugins and the model (the RSS "
            "before sampling column).")
    tables = ("\n".join(rows) + f"\n\n{verdict}\n\n"
              f"Training throughput on the CPU ({args.throughput_size}² crops, global batch "
              f"{args.throughput_batch}, steps {args.throughput_warmup + 1}-"
              f"{args.throughput_steps} timed; 2 processes with torchrun and Gloo, "
              f"{args.throughput_batch // 2} samples each):\n\n" + "\n".join(train_rows))
    publish("Scale: tiled sampling and data-parallel training (cpu)", body, tables,
            write=not args.no_write)


if __name__ == "__main__":
    main()
