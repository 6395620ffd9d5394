"""Feed-forward sampling against optimisation: speed ratios, loss ratio, sampling memory.

1. Train a pyramid generator on an exemplar (or reuse ``--checkpoint``).
2. At each size, sample (median time of several one-image passes) and measure the
   generator's texture loss (mean over the ``--samples`` samples) with the extractor it was
   trained with.
3. Run L-BFGS optimisation from noise at the same size with the same extractor and loss.
   **Speed ratio at equal loss** = the time its loss first reaches the generator's /
   sampling time. Loss ratio = generator loss / loss after ``--opt-steps``.
4. **Speed ratio at equal quality** (at ``--quality-size`` only, default 256²): the
   generator's texture score ``T`` of :mod:`quality` (Portilla–Simoncelli statistics of
   64² windows, a space no texsynth loss uses; lower is better, ≈ 1 for a real crop) is
   the mean ``T`` of the same samples. During the same optimisation run, the current
   signal (the iterate of that loss evaluation, a line-search trial point included, not
   the best so far) is scored every ``--quality-every`` evaluations; the equal-quality
   time is the optimisation time at the first scored evaluation with ``T ≤`` the
   generator's ``T``, and the ratio is that time / sampling time. Optimisation time is
   wall time from the start of ``texsynth.synthesize`` (setup included, as for the
   equal-loss time) *minus* the time spent scoring (and copying the signal to the CPU
   for it); both times come from this corrected clock. Scoring only every K evaluations
   rounds the time up to the next check (it overstates the time by less than K
   evaluations). Not reached within ``--opt-steps``: the table says so, with the lowest
   ``T`` scored. The ``T`` of the optimisation's result (its lowest-loss iterate) is
   printed below the table.
5. Peak memory of sampling one image at large sizes, each in a fresh process.

Scoring costs about 0.8 s per image at 256² and 4 s at 512² (one CPU thread; an
L-BFGS evaluation took 0.9 s and 5 s on a loaded 2-core machine), hence equal quality at
one size by default: it adds about 40 s to a run (the exemplar's reference, 5 samples,
30 checks). A full CPU run with the defaults is estimated at ~25 min on an idle 2-core
machine (training 300 steps ~7 min, 256² ~3 min, 512² ~13 min, memory rows ~1.5 min),
up to ~40 min on a loaded one. The defaults train a `random-multiscale` generator; with
the CPU recipe's checkpoint (patch statistics, ``--checkpoint out/cpu-recipe/grass.ckpt``)
256² took 8 min on a loaded machine and 300 evaluations at 512² more than 35 min.

    python benchmarks/bench_feedforward.py                      # ~25 min
    python benchmarks/bench_feedforward.py --device cuda --iterations 2000 --batch-size 16
    python benchmarks/bench_feedforward.py --checkpoint CKPT --sizes 256 --opt-steps 60 \\
        --memory-sizes --threads 1 --no-write                  # quick look, ~2 min
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import EXAMPLES, machine, peak_rss_mib, publish, run_child  # noqa: E402

if TYPE_CHECKING:
    import torch
    from quality import Reference

    from texsynth.generator import Generator
    from texsynth.stats.objective import TextureObjective

DASH = "—"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def memory_child(checkpoint: str, size: int, device: str, mode: str) -> dict[str, Any]:
    """Sample one ``size``² image: in one piece (``whole``), or as ``texsynth sample`` does
    above 1024² (``tiled``: 512² tiles streamed into a PNG)."""
    import tempfile

    import torch

    import texsynth
    from texsynth.feedforward.checkpoint import load_generator
    from texsynth.feedforward.sampling import generate as sample
    from texsynth.feedforward.tiled import sample_tiled

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


@dataclass
class Sampling:
    """The generator at one size.

    Attributes:
        seconds: median wall time of one one-image pass, in seconds.
        loss: mean texture loss of the samples (the training objective's units).
        outputs: the samples, each ``(1, C, size, size)`` on the CPU.
    """

    seconds: float
    loss: float
    outputs: list[torch.Tensor]


def measure_sampling(generator: Generator, objective: TextureObjective, on: torch.device,
                     size: int, count: int, device: str) -> Sampling:
    """Time ``count`` one-image passes at ``size``² (after one warm-up pass) and take the
    texture loss of each sample (seeds ``0 .. count - 1``) with ``objective`` on ``on``."""
    import torch

    from texsynth.feedforward.sampling import generate as sample

    times, losses, outputs = [], [], []
    with torch.no_grad():
        sample(generator, (size, size), seed=100)  # warm-up
        for k in range(count):
            _sync(device)
            start = time.perf_counter()
            out = sample(generator, (size, size), seed=k)
            _sync(device)
            times.append(time.perf_counter() - start)
            losses.append(float(objective(out.to(on))))
            outputs.append(out)
    return Sampling(statistics.median(times), statistics.mean(losses), outputs)


class Trace:
    """The ``synthesize`` callback: the loss of every evaluation, ``T`` every ``every``.

    Times are optimisation seconds: wall time since the trace was made minus the time
    spent in ``score`` (the copy of the signal to the CPU included).
    """

    def __init__(self, device: str, every: int,
                 score: Callable[[torch.Tensor], float] | None) -> None:
        self.device, self.every, self.score = device, every, score
        self.stamps: list[tuple[float, float]] = []
        """``(optimisation seconds, loss)`` after each evaluation."""
        self.checks: list[tuple[int, float, float]] = []
        """``(evaluation, optimisation seconds, T)`` of each scored evaluation."""
        self.scoring = 0.0
        """Seconds spent scoring so far (left out of the stamps)."""
        self.start = time.perf_counter()

    def __call__(self, step: int, loss: float, signal: torch.Tensor) -> None:
        """Record evaluation ``step`` (1-based); ``signal`` is its ``(1, C, H, W)`` iterate."""
        _sync(self.device)
        elapsed = time.perf_counter() - self.start - self.scoring
        self.stamps.append((elapsed, loss))
        if self.score is not None and step % self.every == 0:
            begin = time.perf_counter()
            score = self.score(signal.detach().cpu())
            self.scoring += time.perf_counter() - begin
            self.checks.append((step, elapsed, score))

    def loss_reached(self, target: float) -> float | None:
        """Optimisation seconds at the first evaluation with loss ``≤ target``."""
        return next((t for t, loss in self.stamps if loss <= target), None)

    def quality_reached(self, target: float) -> tuple[int, float] | None:
        """``(evaluation, optimisation seconds)`` of the first check with ``T ≤ target``."""
        return next(((step, t) for step, t, score in self.checks if score <= target), None)

    def best_check(self) -> tuple[int, float] | None:
        """``(evaluation, T)`` of the check with the lowest ``T``."""
        if not self.checks:
            return None
        step, _, score = min(self.checks, key=lambda check: check[2])
        return step, score


@dataclass
class Quality:
    """Equal quality at one size (texture score ``T``, see :mod:`quality`).

    Attributes:
        generator: mean ``T`` of the generator's samples.
        reached: ``(evaluation, optimisation seconds)`` when optimisation's ``T`` was
            first scored ``≤ generator``; ``None`` if never within the budget.
        best: ``(evaluation, T)`` of the lowest ``T`` scored during optimisation.
        final: ``T`` of the optimisation's result (its lowest-loss iterate).
        scoring: seconds spent scoring during the run (not counted as optimisation).
        checks: how many evaluations were scored.
    """

    generator: float
    reached: tuple[int, float] | None
    best: tuple[int, float] | None
    final: float
    scoring: float
    checks: int


def ratio_cells(seconds: float | None, t_sample: float, last: float, steps: int,
                best: str = "") -> tuple[str, str]:
    """The ``(optimisation time, speed ratio)`` cells for a target reached after
    ``seconds`` (``None``: not reached; ``last``: the run's optimisation seconds)."""
    if seconds is None:
        return (f"not reached in {steps} steps{best}",
                f"> {last / t_sample:,.0f}× (not reached in {steps} steps)")
    return f"{seconds:.1f}", f"{seconds / t_sample:,.0f}×"


def quality_cells(q: Quality | None, t_sample: float, last: float, steps: int) -> list[str]:
    """The three equal-quality cells of a row (dashes where it was not measured)."""
    if q is None:
        return [DASH, DASH, DASH]
    best = f" (best T {q.best[1]:.2f} at step {q.best[0]})" if q.best else ""
    cells = ratio_cells(q.reached[1] if q.reached else None, t_sample, last, steps, best)
    return [f"{q.generator:.2f}", *cells]


def quality_note(size: int, q: Quality, steps: int) -> str:
    """One line on the optimisation's ``T`` at ``size`` for below the table."""
    best = f"lowest scored {q.best[1]:.2f} at evaluation {q.best[0]}" if q.best else \
        "nothing scored"
    reached = f"reached the generator's T {q.generator:.2f} at evaluation {q.reached[0]}" \
        if q.reached else f"did not reach the generator's T {q.generator:.2f}"
    return (f"Optimisation at {size}²: T {q.final:.2f} after {steps} evaluations (its "
            f"result, the lowest-loss iterate); {best}; {reached}; {q.checks} checks "
            f"took {q.scoring:.1f} s, left out of the optimisation times.")


def measure_size(args: argparse.Namespace, size: int, generator: Generator,
                 meta: dict[str, Any], exemplar: torch.Tensor,
                 ref: Reference | None) -> tuple[str, str | None]:
    """One table row at ``size``² and, with ``ref`` (the exemplar's window statistics),
    the equal-quality cells and the note on the optimisation's ``T``."""
    import quality

    import texsynth

    features = texsynth.prepare(texsynth.FeatureSpec.from_settings(meta),
                                texsynth.get_domain(args.exemplar),
                                seed=int(meta["seed"]), device=args.device)
    got = measure_sampling(generator, features.objective([exemplar]), features.device, size,
                           args.samples, args.device)
    score = None if ref is None else functools.partial(quality.texture_score, exemplar=ref)
    trace = Trace(args.device, args.quality_every, score)
    result = texsynth.synthesize(exemplar, features=features.spec, domain=features.domain,
                                 size=(size, size), steps=args.opt_steps, seed=1,
                                 device=args.device, progress=False, callback=trace)
    last, opt_loss = trace.stamps[-1]
    q = None
    if ref is not None:
        gen_t = statistics.mean(quality.texture_score(out, ref) for out in got.outputs)
        q = Quality(gen_t, trace.quality_reached(gen_t), trace.best_check(),
                    quality.texture_score(result.signal, ref), trace.scoring,
                    len(trace.checks))
    cells = [*ratio_cells(trace.loss_reached(got.loss), got.seconds, last, args.opt_steps),
             f"{got.loss:.4g}", f"{opt_loss:.4g}", f"{got.loss / opt_loss:.2f}×",
             *quality_cells(q, got.seconds, last, args.opt_steps)]
    row = f"| {size}² | {got.seconds:.4f} | " + " | ".join(cells) + " |"
    return row, quality_note(size, q, args.opt_steps) if q is not None else None


def memory_rows(args: argparse.Namespace, ckpt: Path) -> list[str]:
    """The sampling-memory table (one fresh process per size and mode)."""
    rows = ["| size | how | sampling time (s) | peak memory (MiB) |", "|---|---|---|---|"]
    for size in args.memory_sizes:
        modes = ["whole", "tiled"] if size <= args.whole_max else ["tiled"]
        for mode in modes:
            how = "one piece" if mode == "whole" else "512² tiles streamed to PNG"
            res = run_child(Path(__file__), [str(ckpt), str(size), args.device, mode])
            if "error" in res:
                rows.append(f"| {size}² | {how} | error: {res['error']} | |")
            else:
                mem = res["gpu_peak_mib"] if args.device.startswith("cuda") \
                    else res["peak_rss_mib"]
                rows.append(f"| {size}² | {how} | {res['seconds']:.2f} | {mem:.0f} |")
            print(rows[-1], flush=True)
    return rows


def train_if_missing(args: argparse.Namespace, ckpt: Path) -> float | None:
    """Train the generator into ``ckpt`` unless it exists; the training seconds, if any."""
    from texsynth.feedforward.training import train_generator

    if ckpt.exists():
        return None
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train_generator(args.exemplar, extractor=args.extractor,
                    size=(args.train_size, args.train_size), batch_size=args.batch_size,
                    iterations=args.iterations, seed=0, device=args.device,
                    checkpoint=ckpt, checkpoint_every=100, progress=True)
    return time.perf_counter() - start


def describe(args: argparse.Namespace, meta: dict[str, Any],
             train_seconds: float | None) -> str:
    """What the tables measure, for RESULTS.md."""
    train_note = (f"Training took {train_seconds:.0f} s. " if train_seconds else
                  "Checkpoint reused. ")
    quality_text = (
        f" Equal quality (at {args.quality_size}² only): generator T = mean texture score "
        f"(`benchmarks/quality.py`: Portilla–Simoncelli statistics of 64² windows against "
        f"the exemplar's, lower is better, ≈ 1 for a real crop) of the {args.samples} "
        f"samples; the optimisation's current iterate is scored every "
        f"{args.quality_every} evaluations, and its time to T ≤ the generator's counts "
        f"optimisation only (scoring time subtracted, as it is from the equal-loss time "
        f"of the same run).") if args.quality_size else ""
    return (f"Measured on: {machine()}, device `{args.device}`. Exemplar "
            f"`{Path(args.exemplar).name}`, extractor `{meta['extractor']['name']}`, "
            f"generator trained {meta['step']} steps at "
            f"{'x'.join(map(str, meta['training']['size']))}, batch "
            f"{meta['training']['batch_size']}. {train_note}"
            f"Optimisation: L-BFGS from noise, {args.opt_steps} evaluations.{quality_text}")


def parse() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=4, metavar=("CKPT", "SIZE", "DEVICE", "MODE"))
    parser.add_argument("--exemplar", default=str(EXAMPLES / "grass.png"))
    parser.add_argument("--extractor", default="random-multiscale")
    parser.add_argument("--checkpoint", default=str(HERE / "out" / "feedforward.ckpt"))
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[2048, 4096],
                        help="sizes of the sampling-memory table (none: no table)")
    parser.add_argument("--whole-max", type=int, default=2048,
                        help="largest size also sampled in one piece (one piece needs about "
                             "1.3 GiB per million pixels on the CPU)")
    parser.add_argument("--opt-steps", type=int, default=300)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--quality-size", type=int, default=256,
                        help="the size of --sizes at which to measure the speed ratio at "
                             "equal texture score T (at least 64; 0: nowhere)")
    parser.add_argument("--quality-every", type=int, default=10,
                        help="score the optimisation's T every N loss evaluations")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quality_every < 1:
        parser.error("--quality-every must be at least 1")
    if args.quality_size and args.quality_size < 64:
        parser.error("--quality-size must be at least 64 (one 64² window) or 0")
    if args.quality_size and args.quality_size not in args.sizes:
        print(f"note: --quality-size {args.quality_size} is not among --sizes "
              f"{args.sizes}: no equal-quality measurement", file=sys.stderr)
    return args


def main() -> None:
    """Run the benchmark, print the tables and (unless ``--no-write``) write RESULTS.md."""
    args = parse()
    if args.child:
        ckpt, size, device, mode = args.child
        print(json.dumps(memory_child(ckpt, int(size), device, mode)))
        return

    import quality
    import torch

    import texsynth
    from texsynth.feedforward.checkpoint import load_generator

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    ckpt = Path(args.checkpoint)
    train_seconds = train_if_missing(args, ckpt)
    generator, meta = load_generator(ckpt, device=args.device)
    exemplar = texsynth.load(args.exemplar)
    rows = ["| size | sample (s) | optimisation to same loss (s) | speed ratio | "
            "generator loss | optimisation loss after N steps | loss ratio | generator T | "
            "optimisation to same T (s) | speed ratio at equal T |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for size in args.sizes:
        ref = quality.reference(exemplar) if size == args.quality_size else None
        row, note = measure_size(args, size, generator, meta, exemplar, ref)
        rows.append(row)
        print(row, flush=True)
        if note is not None:
            notes.append(note)
    for note in notes:
        print(note, flush=True)
    tables = "\n".join(rows) + "".join(f"\n\n{note}" for note in notes)
    if args.memory_sizes:
        tables += ("\n\nSampling memory (one image, fresh process):\n\n"
                   + "\n".join(memory_rows(args, ckpt)))
    publish(f"Feed-forward vs optimisation ({args.device})", describe(args, meta, train_seconds),
            tables, write=not args.no_write)


if __name__ == "__main__":
    main()
