"""Streamed sound: how many times faster than real time ``texsynth sample --stream`` makes
sound on one CPU thread, per generator design.

Each row is one generator (trained two steps on ``examples/data/rain.wav``: speed does
not depend on training; or a ``--checkpoint``) streamed for ``--seconds`` of sound through
:func:`texsynth.feedforward.sample_files.sample_stream` into a WAV file, in a fresh process
with one torch thread, as ``texsynth sample CKPT --stream -o OUT`` does (minus the
interpreter's start).
Columns: compute seconds per second of sound, the real-time factor (sound seconds per
compute second), the time to the first block (what a player waits for) and peak memory.

    python benchmarks/bench_stream.py                       # about a minute
    python benchmarks/bench_stream.py --checkpoint rain=out/audio-recipe/rain.ckpt
    python benchmarks/bench_stream.py --generator 's32:num_scales=6,stride=32,channels=16'
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import EXAMPLES, machine, peak_rss_mib, publish, run_child  # noqa: E402

#: Generator rows measured by default: the audio domain's default pyramid, and the
#: strided design (64 samples per frame, 5 scales so the coarsest cell is again 1024
#: samples, 32 filters per branch).
GENERATORS: dict[str, dict[str, Any]] = {
    "pyramid, audio defaults (11 scales, 8 filters)": {},
    "pyramid, stride 64 (5 scales, 32 filters)": {"num_scales": 5, "stride": 64,
                                                  "channels": 32},
}


def train(options_json: str, checkpoint: str) -> dict[str, float]:
    """Train a generator with these pyramid options two steps and save it."""
    import texsynth

    domain = texsynth.get_domain("audio")
    texsynth.train_generator(EXAMPLES / "rain.wav", size=domain.size_from_duration(1.0),
                             iterations=2, batch_size=1, seed=0, device="cpu",
                             progress=False, generator_options=json.loads(options_json),
                             checkpoint=checkpoint)
    return {}


def stream(checkpoint: str, seconds: float) -> dict[str, float]:
    """Stream ``seconds`` of sound from the checkpoint into a file; returns timings."""
    import torch

    torch.set_num_threads(1)
    from texsynth.feedforward.loading import load_trained
    from texsynth.feedforward.tiled import stream_tiled

    trained = load_trained(checkpoint)
    length = trained.domain.size_from_duration(seconds)[0]
    marks: list[float] = []

    def timed() -> Iterator[torch.Tensor]:
        for block in stream_tiled(trained.generator, length=length, seed=1):
            marks.append(time.perf_counter())
            yield block

    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        written = trained.domain.write_stream(timed(), Path(scratch) / "out.wav",
                                              trained.generator.config.out_channels)
        elapsed = time.perf_counter() - start
    assert written.extent == length and not written.stopped
    return {"per_second": elapsed / seconds, "realtime": seconds / elapsed,
            "first_block": marks[0] - start, "peak_rss_mib": peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "ARG", "ARG"))
    parser.add_argument("--seconds", type=float, default=60.0, help="sound per row")
    parser.add_argument("--generator", action="append", default=[], metavar="NAME:K=V,...",
                        help="a further row: pyramid options, e.g. 's32:stride=32'")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                        help="a further row: a trained generator")
    parser.add_argument("--no-defaults", action="store_true", help="only the given rows")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.child:
        kind, first, second = args.child
        result = train(first, second) if kind == "train" else stream(first, float(second))
        print(json.dumps(result))
        return
    rows: list[tuple[str, dict[str, Any], str]] = [] if args.no_defaults else [
        (name, options, "") for name, options in GENERATORS.items()]
    for text in args.generator:
        name, _, pairs = text.partition(":")
        options = {k: json.loads(v) for k, _, v in
                   (pair.partition("=") for pair in pairs.split(",") if pair)}
        rows.append((name, options, ""))
    rows += [(name, {}, path) for name, _, path in
             (text.partition("=") for text in args.checkpoint)]
    lines = ["| generator | compute s per s of sound | × real time | first block (s) | "
             "peak memory (MiB) |", "|---|---|---|---|---|"]
    scratch = tempfile.TemporaryDirectory()
    for number, (name, options, ckpt) in enumerate(rows):
        res: dict[str, Any] = {}
        if not ckpt:
            ckpt = str(Path(scratch.name) / f"{number}.ckpt")
            res = run_child(Path(__file__), ["train", json.dumps(options), ckpt])
        if "error" not in res:
            res = run_child(Path(__file__), ["stream", ckpt, str(args.seconds)])
        if "error" in res:
            lines.append(f"| {name} | error: {res['error']} | | | |")
        else:
            lines.append(f"| {name} | {res['per_second']:.4f} | {res['realtime']:.0f} | "
                         f"{res['first_block']:.2f} | {res['peak_rss_mib']:.0f} |")
        print(lines[-1], flush=True)
    scratch.cleanup()
    body = (f"Measured on: {machine()}, one torch thread. {args.seconds:g} s of sound at "
            "22 050 Hz streamed in blocks of 2**16 samples into a WAV file "
            "(`texsynth sample CKPT --stream`); generators trained two steps on `rain.wav` "
            "(speed does not depend on training) unless named by a checkpoint.")
    publish("Sound streaming (cpu)", body, "\n".join(lines), write=not args.no_write)


if __name__ == "__main__":
    main()
