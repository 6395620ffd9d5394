"""Feed-forward sampling against optimisation: speed ratio, loss ratio, sampling memory.

1. Train a pyramid generator on an exemplar (or reuse ``--checkpoint``).
2. At each size, sample (median time of several one-image passes) and measure the
   generator's texture loss (mean over samples) with the extractor it was trained with.
3. Run L-BFGS optimisation from noise at the same size with the same extractor and loss,
   and record when its loss first reaches the generator's: speed ratio =
   that time / sampling time. Loss ratio = generator loss / loss after ``--opt-steps``.
4. Peak memory of sampling one image at large sizes, each in a fresh process.

    python benchmarks/bench_feedforward.py                      # CPU recipe, ~15 min
    python benchmarks/bench_feedforward.py --device cuda --iterations 2000 --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import EXAMPLES, machine, peak_rss_mib, publish, run_child  # noqa: E402


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def memory_child(checkpoint: str, size: int, device: str, mode: str) -> dict[str, float]:
    """Sample one ``size``² image: in one piece (``whole``), or as ``texsynth sample`` does
    above 1024² (``tiled``: 512² tiles streamed into a PNG)."""
    import tempfile

    import torch

    import texsynth
    from texsynth.checkpoint import load_generator
    from texsynth.sampling import generate as sample
    from texsynth.tiled import sample_tiled

    generator, meta = load_generator(checkpoint, device=device)
    start = time.perf_counter()
    shape: list[int] = [1, generator.config.out_channels, size, size]
    with torch.no_grad():
        if mode == "whole":
            shape = list(sample(generator, (size, size), seed=0).shape)
        else:
            domain = texsynth.get_domain(str(meta["domain"]))
            with tempfile.TemporaryDirectory() as folder, domain.open_writer(
                    Path(folder) / "out.png", (size, size),
                    generator.config.out_channels) as writer:
                sample_tiled(generator, (size, size), seed=0, index=0, tile=512,
                             sink=writer.write, progress=False)
    _sync(device)
    elapsed = time.perf_counter() - start
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else 0.0
    return {"seconds": elapsed, "peak_rss_mib": peak_rss_mib(), "gpu_peak_mib": gpu,
            "shape": shape}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=4, metavar=("CKPT", "SIZE", "DEVICE", "MODE"))
    parser.add_argument("--exemplar", default=str(EXAMPLES / "grass.png"))
    parser.add_argument("--extractor", default="random-multiscale")
    parser.add_argument("--checkpoint", default=str(HERE / "out" / "feedforward.ckpt"))
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--whole-max", type=int, default=2048,
                        help="largest size also sampled in one piece (one piece needs about "
                             "1.3 GiB per million pixels on the CPU)")
    parser.add_argument("--opt-steps", type=int, default=300)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.child:
        ckpt, size, device, mode = args.child
        print(json.dumps(memory_child(ckpt, int(size), device, mode)))
        return

    import torch

    import texsynth
    from texsynth.checkpoint import load_generator
    from texsynth.sampling import generate as sample
    from texsynth.train import train_generator

    ckpt = Path(args.checkpoint)
    train_seconds = None
    if not ckpt.exists():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        train_generator(args.exemplar, extractor=args.extractor,
                        size=(args.train_size, args.train_size), batch_size=args.batch_size,
                        iterations=args.iterations, seed=0, device=args.device,
                        checkpoint=ckpt, checkpoint_every=100, progress=True)
        train_seconds = time.perf_counter() - start
    generator, meta = load_generator(ckpt, device=args.device)
    exemplar = texsynth.load(args.exemplar)
    rows = ["| size | sample (s) | optimisation to same loss (s) | speed ratio | "
            "generator loss | optimisation loss after N steps | loss ratio |",
            "|---|---|---|---|---|---|---|"]
    for size in args.sizes:
        features = texsynth.prepare(texsynth.FeatureSpec.from_settings(meta),
                                    texsynth.get_domain(args.exemplar),
                                    seed=int(meta["seed"]), device=args.device)
        dom, dev = features.domain, features.device
        objective = features.objective([exemplar])
        times, losses = [], []
        with torch.no_grad():
            sample(generator, (size, size), seed=100)  # warm-up
            for k in range(args.samples):
                _sync(args.device)
                start = time.perf_counter()
                out = sample(generator, (size, size), seed=k)
                _sync(args.device)
                times.append(time.perf_counter() - start)
                losses.append(float(objective(out.to(dev))))
        t_sample = statistics.median(times)
        gen_loss = statistics.mean(losses)
        stamps: list[tuple[float, float]] = []
        start = time.perf_counter()

        def tick(step: int, loss: float, signal: torch.Tensor,
                 stamps: list[tuple[float, float]] = stamps, start: float = start) -> None:
            _sync(args.device)
            stamps.append((time.perf_counter() - start, loss))

        texsynth.synthesize(exemplar, features=features.spec, domain=dom,
                            size=(size, size), steps=args.opt_steps, seed=1,
                            device=args.device, progress=False, callback=tick)
        reached = next((t for t, loss in stamps if loss <= gen_loss), None)
        opt_loss = stamps[-1][1]
        ratio = f"{reached / t_sample:,.0f}×" if reached is not None else \
            f"> {stamps[-1][0] / t_sample:,.0f}× (not reached in {args.opt_steps} steps)"
        rows.append(f"| {size}² | {t_sample:.4f} | "
                    f"{f'{reached:.1f}' if reached is not None else 'not reached'} | {ratio} | "
                    f"{gen_loss:.4g} | {opt_loss:.4g} | {gen_loss / opt_loss:.2f}× |")
        print(rows[-1], flush=True)
    mem_rows = ["| size | how | sampling time (s) | peak memory (MiB) |", "|---|---|---|---|"]
    for size in args.memory_sizes:
        modes = ["whole", "tiled"] if size <= args.whole_max else ["tiled"]
        for mode in modes:
            how = "one piece" if mode == "whole" else "512² tiles streamed to PNG"
            res = run_child(Path(__file__), [str(ckpt), str(size), args.device, mode])
            if "error" in res:
                mem_rows.append(f"| {size}² | {how} | error: {res['error']} | |")
            else:
                mem = res["gpu_peak_mib"] if args.device.startswith("cuda") \
                    else res["peak_rss_mib"]
                mem_rows.append(f"| {size}² | {how} | {res['seconds']:.2f} | {mem:.0f} |")
            print(mem_rows[-1], flush=True)
    train_note = (f"Training took {train_seconds:.0f} s. " if train_seconds else
                  "Checkpoint reused. ")
    body = (f"Measured on: {machine()}, device `{args.device}`. Exemplar "
            f"`{Path(args.exemplar).name}`, extractor `{meta['extractor']['name']}`, "
            f"generator trained {meta['step']} steps at "
            f"{'x'.join(map(str, meta['training']['size']))}, batch "
            f"{meta['training']['batch_size']}. {train_note}"
            f"Optimisation: L-BFGS from noise, {args.opt_steps} evaluations.")
    tables = ("\n".join(rows) + "\n\nSampling memory (one image, fresh process):\n\n"
              + "\n".join(mem_rows))
    publish(f"Feed-forward vs optimisation ({args.device})", body, tables,
            write=not args.no_write)


if __name__ == "__main__":
    main()
