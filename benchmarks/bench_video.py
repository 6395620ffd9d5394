"""Dynamic textures (the video plugin): speed, memory and quality.

**Speed** (each in its own process, so peak memory is its own): optimisation at
``32×128×128`` (frames × pixels) with the default extractor ``random-spacetime``
(seconds per L-BFGS evaluation after warm-up, peak resident memory); one training step
of the default 3-D pyramid generator at the domain's training size (16×64×64, batch 4);
sampling speed of that generator at 128×128 in frames per second, in one pass and
streamed (tiles along time).

**Quality**, for every sample clip in ``examples/data`` (``*.mp4``), of an optimised
``48×128×128`` clip at the defaults (scores no loss optimises):

* ``T``: appearance, the Portilla–Simoncelli texture score of :mod:`quality` over the
  64² windows of every 4th frame, against the exemplar's every-4th-frame windows (about 1
  for a genuine piece of the exemplar);
* ``C``: colour distance of :mod:`quality` (all frames' pixels);
* ``motion``: mean absolute change between neighbouring frames, output over exemplar
  (1 = as much motion as the exemplar; 0 = a still);
* ``lag 4``: the same over 4 frames (slow changes; a clip that only flickers has
  ``lag 4`` ≈ ``motion``);
* ``loop``: mean absolute change from the last frame to the first over the mean change
  between neighbouring frames (1 = the loop point is like any other step; the exemplars,
  cut from longer motion, score above 1).

Calibration rows per clip: the exemplar itself, its frames in random order (flicker, no
coherent motion) and its first frame held (no motion).

    python benchmarks/bench_video.py                      # ~25 min on 2 CPU cores
    python benchmarks/bench_video.py --parts speed --no-write
    python benchmarks/bench_video.py --parts quality --steps 60 --no-write

Writes "Video: speed and memory (DEVICE)" and "Video: quality (cpu)" in RESULTS.md and
the strip ``docs/images/video_strip.png`` (exemplar and output rows).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quality  # noqa: E402
from common import EXAMPLES, machine, peak_rss_mib, publish, run_child  # noqa: E402

STRIP = HERE.parent / "docs" / "images" / "video_strip.png"
FRAME_STEP = 4


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="*", default=["speed", "quality"])
    parser.add_argument("--clips", nargs="*", help="clip stems (default: every *.mp4)")
    parser.add_argument("--size", default="48x128x128", help="quality: output FRAMESxWxH")
    parser.add_argument("--steps", type=int, default=None, help="quality: L-BFGS steps "
                        "(default: the domain's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--strip", type=Path, default=STRIP)
    parser.add_argument("--outputs", type=Path, help="quality: also write each optimised "
                        "clip there as CLIP.mp4")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# -- speed ------------------------------------------------------------------------------
def _exemplar(frames: int, size: int) -> torch.Tensor:
    from texsynth_video import VideoDomain

    clip = VideoDomain().load(EXAMPLES / "gravel_stream.mp4")
    return clip[:, :, :frames, :size, :size].contiguous()


def child_optimise(device: str) -> dict[str, Any]:
    """Seconds per evaluation at 32×128×128 (5 timed after 2 warm-up)."""
    import texsynth

    stamps: list[float] = []

    def tick(step: int, loss: float, signal: torch.Tensor) -> None:
        del step, loss, signal
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    texsynth.synthesize(_exemplar(32, 128), domain="video", size=(32, 128, 128), steps=7,
                        seed=0, progress=False, device=device, callback=tick)
    per_step = statistics.median(b - a for a, b in itertools.pairwise(stamps[2:]))
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    return {"s_per_step": per_step, "rss_mib": peak_rss_mib(), "gpu_mib": gpu}


def child_train(device: str) -> dict[str, Any]:
    """Seconds per training step at the domain's training size, batch 4."""
    import texsynth

    stamps: list[float] = []

    def tick(*_: Any) -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    texsynth.train_generator(_exemplar(48, 128), domain="video", iterations=6, batch_size=4,
                             seed=0, progress=False, device=device, callback=tick)
    per_step = statistics.median(b - a for a, b in itertools.pairwise(stamps[1:]))
    return {"s_per_step": per_step, "rss_mib": peak_rss_mib()}


def child_sample(device: str) -> dict[str, Any]:
    """Frames per second of the default generator at 128×128: one pass of 48 frames and
    a stream of 96."""
    from texsynth.feedforward.sampling import generate
    from texsynth.feedforward.tiled import stream_tiled
    from texsynth.generator import GeneratorConfig
    from texsynth.plugins import get_plugin_manager
    from texsynth_video import VideoDomain

    options = dict(VideoDomain().defaults()["generator_options"])
    generator = get_plugin_manager().create_generator(GeneratorConfig(
        name="pyramid", spatial_dims=3, out_channels=3, options=options)).to(device).eval()
    generate(generator, seed=0, size=(16, 128, 128))  # warm-up
    start = time.perf_counter()
    generate(generator, seed=0, size=(48, 128, 128))
    one_pass = 48 / (time.perf_counter() - start)
    start, frames = time.perf_counter(), 0
    for block in stream_tiled(generator, (128, 128), length=96, seed=0):
        frames += int(block.shape[1])
    streamed = frames / (time.perf_counter() - start)
    return {"fps_pass": one_pass, "fps_stream": streamed, "rss_mib": peak_rss_mib()}


def speed(args: argparse.Namespace) -> str:
    script = Path(__file__)
    opt = run_child(script, ["optimise", args.device])
    train = run_child(script, ["train", args.device])
    smp = run_child(script, ["sample", args.device])
    rows = ["| what | size | speed | peak memory |", "|---|---|---|---|"]

    def mem(result: dict[str, Any]) -> str:
        text = f"{result.get('rss_mib', float('nan')):.0f} MiB RSS"
        if result.get("gpu_mib"):
            text += f", {result['gpu_mib']:.0f} MiB GPU"
        return text

    for label, result, size, key, unit in (
            ("optimisation (random-spacetime, L-BFGS)", opt, "32×128×128", "s_per_step",
             "s/step"),
            ("training (pyramid 3-D, batch 4)", train, "16×64×64", "s_per_step", "s/step")):
        value = result.get(key)
        shown = f"{value:.2f} {unit}" if value is not None else result.get("error", "?")
        rows.append(f"| {label} | {size} | {shown} | {mem(result)} |")
    if "error" in smp:
        rows.append(f"| sampling | 128×128 | {smp['error']} | |")
    else:
        rows.append(f"| sampling, one pass of 48 frames | 128×128 | {smp['fps_pass']:.1f} "
                    f"frames/s | {mem(smp)} |")
        rows.append(f"| sampling, streamed (96 frames) | 128×128 | {smp['fps_stream']:.1f} "
                    "frames/s | |")
    return "\n".join(rows)


# -- quality ----------------------------------------------------------------------------
def frame_windows(clip: torch.Tensor) -> torch.Tensor:
    """Luminance windows of every :data:`FRAME_STEP`-th frame of ``(1, 3, T, H, W)``."""
    frames = clip[0, :, ::FRAME_STEP].movedim(1, 0)
    return torch.cat([quality.windows(frame[None]) for frame in frames])


def appearance_score(output: torch.Tensor, ref: quality.Reference) -> float:
    """``T`` of the output's frame windows against ``ref``."""
    z = (quality.statistics(frame_windows(output)) - ref.mean) / ref.std
    return float(z.pow(2).mean().sqrt())


def motion(clip: torch.Tensor, lag: int = 1) -> float:
    """Mean absolute change between frames ``lag`` apart."""
    return float((clip[:, :, lag:] - clip[:, :, :-lag]).abs().mean())


def loop_ratio(clip: torch.Tensor) -> float:
    """Change from the last frame to the first over the mean change between neighbours."""
    return float((clip[:, :, 0] - clip[:, :, -1]).abs().mean()) / motion(clip)


def scores(output: torch.Tensor, exemplar: torch.Tensor, ref: quality.Reference
           ) -> dict[str, float]:
    flat = output[0].flatten(1).T.reshape(1, 3, -1, 1)
    ex_flat = exemplar[0].flatten(1).T.reshape(1, 3, -1, 1)
    step = motion(output) / motion(exemplar) if motion(output) > 0 else 0.0
    return {"T": appearance_score(output, ref),
            "C": quality.colour_distance(flat, ex_flat),
            "motion": step,
            "lag4": motion(output, 4) / motion(exemplar, 4),
            "loop": loop_ratio(output) if motion(output) > 0 else float("nan")}


def calibration(exemplar: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    order = torch.randperm(exemplar.shape[2], generator=torch.Generator().manual_seed(seed))
    return {"exemplar itself": exemplar, "frames shuffled": exemplar[:, :, order],
            "first frame held": exemplar[:, :, :1].expand_as(exemplar).contiguous()}


def quality_part(args: argparse.Namespace) -> str:
    import texsynth
    from texsynth_video import VideoDomain, frame_strip

    clips = sorted(EXAMPLES.glob("*.mp4"))
    if args.clips:
        clips = [c for c in clips if c.stem in args.clips]
    rows = ["| clip | row | T | C | motion | lag 4 | loop | s |", "|---|---|---|---|---|---|"
            "---|---|"]
    strip: list[tuple[str, torch.Tensor]] = []
    for path in clips:
        domain = VideoDomain()
        exemplar = domain.load(path)
        ref = quality.windows_reference(frame_windows(exemplar))
        for label, clip in calibration(exemplar, args.seed).items():
            s = scores(clip, exemplar, ref)
            rows.append(_row(path.stem, label, s, None))
        start = time.perf_counter()
        result = texsynth.synthesize(path, domain=domain, size=domain.parse_size(args.size),
                                     steps=args.steps, seed=args.seed, progress=False,
                                     device=args.device)
        seconds = time.perf_counter() - start
        out = result.signal.cpu()
        if args.outputs is not None:
            args.outputs.mkdir(parents=True, exist_ok=True)
            domain.save(out, args.outputs / f"{path.stem}.mp4", metadata=result.settings)
        rows.append(_row(path.stem, "**optimised**", scores(out, exemplar, ref), seconds))
        strip += [(f"{path.stem} (exemplar)", exemplar), (f"{path.stem}: optimised", out)]
        print(rows[-1], flush=True)
    if not args.no_write:
        frame_strip(strip, args.strip)
    return "\n".join(rows)


def _row(clip: str, label: str, s: dict[str, float], seconds: float | None) -> str:
    time_text = f"{seconds:.0f}" if seconds is not None else ""
    return (f"| {clip} | {label} | {s['T']:.2f} | {s['C']:.4f} | {s['motion']:.2f} | "
            f"{s['lag4']:.2f} | {s['loop']:.2f} | {time_text} |")


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.child:
        kind, device = args.child
        result = {"optimise": child_optimise, "train": child_train,
                  "sample": child_sample}[kind](device)
        print(json.dumps(result))
        return
    torch.set_num_threads(torch.get_num_threads())
    if "speed" in args.parts:
        table = speed(args)
        print(table)
        publish(f"Video: speed and memory ({args.device})", f"{machine()}.", table,
                write=not args.no_write)
    if "quality" in args.parts:
        table = quality_part(args)
        print(table)
        steps = args.steps or "the domain's default"
        publish("Video: quality (cpu)", f"{machine()}. Every sample clip, {args.size} "
                f"outputs, {steps} L-BFGS steps, seed {args.seed}, default extractor.",
                table, write=not args.no_write)


if __name__ == "__main__":
    main()
