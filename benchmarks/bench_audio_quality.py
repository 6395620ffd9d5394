"""Sound-texture quality in a space no texsynth loss uses: McDermott–Simoncelli statistics.

For each clip of the sample set in ``examples/data`` (seven sounds, see
``examples/data/SOURCES.md``) this scores sounds with :mod:`audio_quality` (envelope
score ``A``: the distance of cochlear-envelope statistics to the exemplar's, divided by
that of spectrally matched noise, mean over five groups; 1 = matched noise, lower is
better; spectrum distance ``P`` in dB) and :mod:`audio_novelty` (novelty ``N``: median
distance of the output's 93 ms log-spectrogram segments to their nearest exemplar segment
over the same between the exemplar's halves; ≈ 1 new sound, well below 1 the recording
replayed). ``R`` is ``A`` over the clip's floor, the ``A`` of its other half: how far a
sound is from a genuine piece of the recording, whatever the clip (some clips' floors are
near 0.3, others near 0.9). A default synthesis is held to ``R ≤ 1.5`` and ``N ≥ 0.8``
on every clip; the tables end with the clips each row misses. Rows:

* calibration: *other half* (the exemplar's second half scored against its first half
  and the first against the second, averaged: ≈ the floor for a genuine piece of the
  sound), *matched noise* (another draw of random phases than the reference's: ≈ 1);
* *optimisation*: ``texsynth.synthesize`` with the audio domain's defaults (extractor,
  steps), ``--duration`` seconds, seed fixed; ``--option KEY=VALUE`` / ``--extractor``
  / ``--loss`` give further optimisation rows (``--variant NAME:ARGS``);
* per ``--checkpoint NAME=PATH`` a feed-forward sample of ``--duration`` seconds (seed
  fixed). ``PATH`` may contain ``{clip}`` (the clip's stem).

It writes the spectrogram sheet ``docs/images/audio_quality_sheet.png`` and the section
"Sound quality: ..." of RESULTS.md. The scores are for evaluation only: never optimise
against them.

    python benchmarks/bench_audio_quality.py                   # ~10 min, 1 thread
    python benchmarks/bench_audio_quality.py --clips rain --steps 50 --no-write
    python benchmarks/bench_audio_quality.py --checkpoint ff=out/audio-recipe/{clip}.ckpt
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import audio_novelty  # noqa: E402
import audio_quality  # noqa: E402
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

SHEET = HERE.parent / "docs" / "images" / "audio_quality_sheet.png"
#: The calibration rows' names (not held to the targets).
CALIBRATION = ("other half of the exemplar", "spectrally matched noise")
#: ``(A, P, N, R)``: envelope score, spectrum distance (dB), novelty, and the envelope
#: score over the clip's floor (the other half's A).
Scores = tuple[float, float, float, float]
#: Targets a default synthesis is held to: R (A over the floor) and N.
TARGET_RELATIVE, TARGET_NOVELTY = 1.5, 0.8


def add(rows: dict[str, Row], name: str, clip: str, shown: np.ndarray, scores: Scores,
        seconds: float | None = None) -> None:
    """Record one sound's scores in the row ``name`` (made on first use)."""
    row = rows.setdefault(name, Row(name))
    row.shown[clip], row.scores[clip] = shown, scores
    if seconds is not None:
        row.seconds[clip] = seconds
    print(f"{clip:>14} | {name:<40} | A {scores[0]:6.3f} | P {scores[1]:5.2f} dB | "
          f"N {scores[2]:.2f} | R {scores[3]:.2f}"
          + (f" | {seconds:.1f} s" if seconds is not None else ""), flush=True)


def mono(signal: torch.Tensor) -> np.ndarray:
    """A ``(1, C, T)`` waveform as a mono float64 array ``(T,)``."""
    return signal[0].detach().to("cpu", torch.float64).mean(dim=0).numpy()


def scores(output: np.ndarray, exemplar: np.ndarray, ref: audio_quality.Reference,
           reference: float, floor: float) -> Scores:
    """``(A, P, N, R)`` of a mono sound against its exemplar, ``R = A / floor``."""
    envelope, spectrum = audio_quality.scores(output, ref)
    return (envelope, spectrum, audio_novelty.novelty(output, exemplar, reference=reference),
            envelope / floor)


def calibration(wave: np.ndarray, seed: int, ref: audio_quality.Reference, reference: float
                ) -> list[tuple[str, np.ndarray, Scores]]:
    """The two calibration rows for one clip: ``(name, shown sound, (A, P, N, R))``;
    the other half's N is that of each half against the other (1 by definition), and
    its A is the clip's floor (R = 1)."""
    half = wave.size // 2
    first, second = wave[:half], wave[half:]
    pairs = [audio_quality.scores(second, audio_quality.Reference(first, seed)),
             audio_quality.scores(first, audio_quality.Reference(second, seed))]
    halves = 0.5 * (audio_novelty.novelty(second, wave, reference=reference, pool=first)
                    + audio_novelty.novelty(first, wave, reference=reference, pool=second))
    envelope = statistics.fmean(p[0] for p in pairs)
    floor = (envelope, statistics.fmean(p[1] for p in pairs), halves, 1.0)
    noise = audio_quality.matched_noise(wave, seed + 1)
    return [(CALIBRATION[0], second, floor),
            (CALIBRATION[1], noise,
             scores(noise, wave, ref, reference, envelope))]


def variants(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """The optimisation rows: the defaults, then each ``--variant NAME:K=V,K=V``."""
    made: list[tuple[str, dict[str, Any]]] = \
        [] if args.no_defaults else [("optimisation, defaults", {})]
    for spec in args.variant:
        name, _, rest = spec.partition(":")
        options: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            options[key] = value
        made.append((f"optimisation, {name}", options))
    return made


def optimise(path: Path, seconds: float, args: argparse.Namespace,
             options: dict[str, Any]) -> torch.Tensor:
    """``texsynth.synthesize`` of ``seconds`` of sound with the defaults and ``options``
    (``extractor``, ``texture_loss``, ``init``, ``steps``, ``levels``, the domain's
    ``n_fft`` and ``hop_length``, and extractor options, as strings)."""
    import texsynth
    from texsynth_audio import AudioDomain

    opts = dict(options)
    domain = AudioDomain(**{key: int(opts.pop(key)) for key in ("n_fft", "hop_length")
                            if key in opts})
    steps = int(opts.pop("steps", args.steps)) if (args.steps or "steps" in opts) else None
    kwargs: dict[str, Any] = {}
    for key in ("extractor", "texture_loss", "layers", "init"):
        if key in opts:
            value = opts.pop(key)
            kwargs[key] = value.split("+") if key == "layers" else value
    if "levels" in opts:
        kwargs["levels"] = int(opts.pop("levels"))
    if opts:
        kwargs["extractor_options"] = {k: _number(v) for k, v in opts.items()}
    run: dict[str, Any] = {"steps": steps} if steps else {}
    return texsynth.synthesize(path, domain=domain, size=domain.size_from_duration(seconds),
                               seed=args.seed, device=args.device, progress=False, **run,
                               **kwargs).signal


def _number(text: str) -> Any:
    """``"3"`` → 3, ``"0.5"`` → 0.5, ``"256:1024"`` → [256, 1024], else the text."""
    if ":" in text:
        return [_number(t) for t in text.split(":")]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def feed_forward(path: Path, seconds: float, seed: int, device: str
                 ) -> tuple[torch.Tensor, float]:
    """One sample of ``seconds`` from a checkpoint and the seconds it took."""
    import texsynth

    trained = texsynth.load_trained(path, device=device)
    size = trained.domain.size_from_duration(seconds)
    start = time.perf_counter()
    sample = texsynth.sample(trained, size, seed=seed, device=device).signals[:1]
    return sample, time.perf_counter() - start


def evaluate(args: argparse.Namespace, clip: Path, rows: dict[str, Row]) -> None:
    """Make and score every row's sound for one clip."""
    import texsynth

    exemplar = mono(texsynth.load(clip))
    name = clip.stem
    ref = audio_quality.Reference(exemplar, args.seed)
    reference = audio_novelty.halves_reference(exemplar)
    rows.setdefault("exemplar", Row("exemplar")).shown[name] = exemplar
    made_rows = calibration(exemplar, args.seed, ref, reference)
    floor = made_rows[0][2][0]
    for row, shown, made in made_rows:
        add(rows, row, name, shown, made)
    for label, options in variants(args):
        start = time.perf_counter()
        out = mono(optimise(clip, args.duration, args, options))
        add(rows, label, name, out, scores(out, exemplar, ref, reference, floor),
            time.perf_counter() - start)
    for spec in args.checkpoint:
        label, _, template = spec.partition("=")
        path = Path(template.format(clip=name))
        if not path.is_file():
            continue
        signal, seconds = feed_forward(path, args.duration, args.seed, args.device)
        out = mono(signal)
        add(rows, label, name, out, scores(out, exemplar, ref, reference, floor), seconds)


def evaluate_alone(job: tuple[argparse.Namespace, Path]) -> dict[str, Row]:
    """:func:`evaluate` of one clip in a worker process (``--jobs``), its own rows."""
    args, clip = job
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rows: dict[str, Row] = {}
    evaluate(args, clip, rows)
    return rows


def merge(rows: dict[str, Row], made: dict[str, Row]) -> None:
    """Add one clip's rows to ``rows``, keeping the order rows first appeared in."""
    for name, row in made.items():
        into = rows.setdefault(name, Row(name))
        into.shown.update(row.shown)
        into.scores.update(row.scores)
        into.seconds.update(row.seconds)


def table(rows: list[Row], clips: list[str], which: int, timed: bool) -> str:
    """A markdown table of score ``which`` (0: A, 1: P), a column per clip + mean."""
    return score_table(rows, clips, which, digits=2, timed=timed, first="sound",
                       time_label="seconds per clip")


def verdict(rows: list[Row], clips: list[str]) -> str:
    """One line per optimisation or feed-forward row: the clips that miss the targets
    (R above :data:`TARGET_RELATIVE` or N below :data:`TARGET_NOVELTY`) and by how much."""
    lines = []
    for row in rows:
        if row.name in CALIBRATION or not row.scores:
            continue
        misses = [f"{clip} R {row.scores[clip][3]:.2f}" for clip in clips
                  if clip in row.scores and row.scores[clip][3] > TARGET_RELATIVE]
        misses += [f"{clip} N {row.scores[clip][2]:.2f}" for clip in clips
                   if clip in row.scores and row.scores[clip][2] < TARGET_NOVELTY]
        reached = sum(1 for clip in clips if clip in row.scores
                      and row.scores[clip][3] <= TARGET_RELATIVE
                      and row.scores[clip][2] >= TARGET_NOVELTY)
        lines.append(f"* {row.name}: targets met on {reached} of {len(clips)} clips"
                     + (f"; missed: {', '.join(misses)}" if misses else ""))
    return "\n".join(lines)


def short_name(name: str) -> str:
    """A row's name in a few words, for the sheet's panels."""
    known = {"other half of the exemplar": "other half",
             "spectrally matched noise": "matched noise",
             "optimisation, defaults": "optimisation"}
    if name in known:
        return known[name]
    if name.startswith("optimisation, "):
        return "opt " + name.removeprefix("optimisation, ")[:14]
    return name[:18]


def spectrogram_sheet(rows: list[Row], clips: list[str], path: Path, seconds: float) -> None:
    """One strip per clip: the spectrograms of every row's sound (the exemplar and the
    calibration sounds cut to ``seconds``), labelled with the row and its score."""
    from PIL import Image

    from texsynth_audio import save_spectrogram_comparison

    rate = audio_quality.SAMPLE_RATE
    length = int(seconds * rate)
    strips = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            panels = []
            for row in rows:
                if clip not in row.shown:
                    continue
                label = f"{clip}" if row.name == "exemplar" else short_name(row.name)
                if clip in row.scores:
                    label += f" A {row.scores[clip][0]:.2f}"
                wave = torch.from_numpy(row.shown[clip][:length].astype(np.float32))
                panels.append((label, wave))
            strip = Path(tmp) / f"{clip}.png"
            save_spectrogram_comparison(panels, strip, rate=rate, height=160)
            strips.append(Image.open(strip).convert("RGB"))
    width = max(s.width for s in strips)
    sheet = Image.new("RGB", (width, sum(s.height for s in strips)), "white")
    y = 0
    for strip in strips:
        sheet.paste(strip, (0, y))
        y += strip.height
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=EXAMPLES, help="folder of clips")
    parser.add_argument("--clips", nargs="+", help="stems to use (default: every *.wav)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per output")
    parser.add_argument("--steps", type=int, default=0,
                        help="L-BFGS steps (default 0: the audio domain's default)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:K=V,...",
                        help="a further optimisation row, e.g. 'sw:texture_loss=sw' or "
                             "'short STFT:n_fft=512,hop_length=128'")
    parser.add_argument("--no-defaults", action="store_true",
                        help="leave out the optimisation row with the defaults")
    parser.add_argument("--jobs", type=int, default=1,
                        help="clips scored at once, in worker processes (each with "
                             "--threads threads)")
    add_quality_arguments(parser, SHEET)
    args = parse_quality_arguments(parser, argv)
    return args


def describe(args: argparse.Namespace, seconds: float) -> str:
    """What the tables measure, for RESULTS.md."""
    return (
        f"Measured on: {machine()}, device `{args.device}`. Outputs {args.duration:g} s at "
        f"22 050 Hz, seed {args.seed}; whole run {seconds / 60:.1f} min. Clips: "
        "`examples/data` (the sample set).\n"
        "Envelope score A (lower is better; 1 = spectrally matched noise): McDermott & "
        "Simoncelli (2011) statistics of 32 gammatone subband envelopes (50 Hz–8 kHz, "
        "ERB-spaced, compressed ^0.3, 400 Hz): coefficient of variation, skewness, log "
        "kurtosis, cross-band correlations and modulation power in 12 bands (1–128 Hz); "
        "per group the RMS difference to the exemplar's divided by that of the exemplar "
        "with random Fourier phases, averaged over the five groups. P: RMS difference of "
        "the subbands' power in dB (the coarse spectrum, which matched noise shares). No "
        "texsynth loss uses either. Novelty N: median distance of the output's 93 ms "
        "log-spectrogram segments (8 STFT frames, n_fft 1024, hop 256) to their nearest "
        "exemplar segment, over the same between the exemplar's halves: ≈ 1 new sound, "
        "well below 1 the recording replayed. R = A over the clip's floor (the other "
        "half's A): 1 = as close as a genuine piece of the recording; targets R ≤ 1.5 "
        "and N ≥ 0.8. Definitions in `benchmarks/audio_quality.py` "
        "and `benchmarks/audio_novelty.py`. Rows: "
        "other half = each half of the exemplar scored against the other (the floor for a "
        "genuine piece of the sound, from half as much sound); matched noise = another "
        "draw of random phases. Spectrograms: `docs/images/audio_quality_sheet.png`.")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the tables, write the sheet and RESULTS.md."""
    args = parse(argv)
    paths = quality_inputs(args, args.data, ".wav", args.clips, "clips")
    start = time.perf_counter()
    rows: dict[str, Row] = {}
    if args.jobs > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            for made in pool.map(evaluate_alone, [(args, path) for path in paths]):
                merge(rows, made)
    else:
        for path in paths:
            evaluate(args, path, rows)
    seconds = time.perf_counter() - start
    names = [p.stem for p in paths]
    scored = [row for row in rows.values() if row.scores]
    tables = (f"Envelope score A (× spectrally matched noise; lower is better)\n\n"
              f"{table(scored, names, 0, timed=True)}\n\n"
              f"Spectrum distance P (dB)\n\n{table(scored, names, 1, timed=False)}\n\n"
              f"Novelty N (≈ 1 new sound, well below 1 the recording replayed; target "
              f"≥ {TARGET_NOVELTY:g})\n\n"
              f"{table(scored, names, 2, timed=False)}\n\n"
              f"Envelope score over the clip's floor R = A / A(other half) (1 = as close "
              f"as a genuine piece of the recording; target ≤ {TARGET_RELATIVE:g})\n\n"
              f"{table(scored, names, 3, timed=False)}\n\n"
              f"{verdict(scored, names)}")
    print(tables)
    print(f"whole run: {seconds:.0f} s")
    spectrogram_sheet(list(rows.values()), names, args.sheet, args.duration)
    publish(f"Sound quality: McDermott–Simoncelli envelope statistics ({args.device})",
            describe(args, seconds), tables, write=not args.no_write)


if __name__ == "__main__":
    main()
