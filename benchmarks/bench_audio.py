"""Sound: seconds of compute per second of audio, and peak memory, for 10 s of audio.

* optimisation: ``texsynth.synthesize`` of 10 s from ``examples/data/rain.wav`` with the
  audio plugin's default extractor, ``--steps`` loss evaluations (waveform optimised
  through the differentiable STFT);
* feed-forward: a pyramid generator over the time axis sampled for 10 s: the one in
  ``--checkpoint`` (e.g. from ``examples/train_audio_cpu.sh``), else one trained for two
  steps (speed does not depend on training).

Each measurement runs in a fresh process so its peak memory is its own.

    python benchmarks/bench_audio.py --steps 50 --checkpoint out/audio-recipe/rain.ckpt
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


def child(kind: str, seconds: float, steps: int, extractor: str,
          checkpoint: str) -> dict[str, float]:
    import torch

    import texsynth

    domain = texsynth.get_domain("audio")
    size = domain.size_from_duration(seconds)
    exemplar = EXAMPLES / "rain.wav"
    if kind == "optimise":
        start = time.perf_counter()
        texsynth.synthesize(exemplar, size=size, steps=steps, seed=0, device="cpu",
                            progress=False, extractor=extractor or None)
        elapsed = time.perf_counter() - start
        return {"seconds": elapsed, "per_audio_second": elapsed / seconds,
                "peak_rss_mib": peak_rss_mib()}
    if checkpoint:
        generator, _ = texsynth.load_generator(checkpoint)
    else:
        run = texsynth.train_generator(exemplar, size=domain.size_from_duration(1.0),
                                       iterations=2, batch_size=1, seed=0, device="cpu",
                                       progress=False, extractor=extractor or None)
        generator = run.generator
    generator.eval()
    with torch.no_grad():
        texsynth.sample_generator(generator, size, seed=1)  # warm-up
        start = time.perf_counter()
        texsynth.sample_generator(generator, size, seed=2)
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "per_audio_second": elapsed / seconds,
            "peak_rss_mib": peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=5,
                        metavar=("KIND", "SECONDS", "STEPS", "EXTRACTOR", "CKPT"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--extractor", default="")
    parser.add_argument("--checkpoint", default="",
                        help="trained generator to sample (default: train one two steps)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.child:
        kind, seconds, steps, extractor, ckpt = args.child
        print(json.dumps(child(kind, float(seconds), int(steps), extractor, ckpt)))
        return
    describe = "trained two steps (speed only)"
    if args.checkpoint:
        from texsynth.feedforward.checkpoint import load_checkpoint

        stored = load_checkpoint(args.checkpoint)
        meta = stored.settings
        options = meta["generator"]["options"]
        describe = (f"`{Path(args.checkpoint).name}`, {options['num_scales']} scales, "
                    f"{options['norm']} norm, trained {stored.step} steps on "
                    f"{meta['training']['size'][0]}-sample crops")
    rows = ["| method | wall time (s) | compute s per audio s | peak memory (MiB) |",
            "|---|---|---|---|"]
    for kind, label in (("optimise", f"optimisation, {args.steps} steps"),
                        ("sample", "feed-forward sampling")):
        res = run_child(Path(__file__), [kind, str(args.seconds), str(args.steps),
                                         args.extractor or "", args.checkpoint])
        if "error" in res:
            rows.append(f"| {label} | error: {res['error']} | | |")
        else:
            rows.append(f"| {label} | {res['seconds']:.2f} | {res['per_audio_second']:.3f} | "
                        f"{res['peak_rss_mib']:.0f} |")
        print(rows[-1], flush=True)
    body = (f"Measured on: {machine()}, CPU. {args.seconds:g} s of audio at 22 050 Hz from "
            f"`rain.wav`, extractor `{args.extractor or 'default'}`; generator: "
            f"{describe}.")
    publish("Sound (cpu)", body, "\n".join(rows), write=not args.no_write)


if __name__ == "__main__":
    main()
