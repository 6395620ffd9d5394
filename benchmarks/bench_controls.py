"""The controls measured on the image quality benchmark (:mod:`quality`).

For every sample exemplar ``A`` (``examples/data``) paired with the next one
``B`` (alphabetically, wrapping round), by optimisation with the image domain's default
extractor and ``--steps`` L-BFGS steps:

* **guide**: a ``size × 2·size`` output whose left half is region 0 (exemplar ``A``) and
  right half region 1 (``B``). Each half is scored with the texture score ``T`` against
  its own exemplar and against the other one; the reference is an unguided ``size²``
  synthesis of the same exemplar (same steps, same seed). A region that took its own
  texture scores like the unguided synthesis against its own exemplar and far worse
  against the other.
* **blend**: ``A:w B:(1-w)`` for ``w`` in ``--weights``; the colour distance ``C`` to
  ``A`` and to ``B`` (a blend should move from one to the other as ``w`` falls).
* **exemplar scale**: ``--exemplar-scale S`` for ``S`` in ``--scales``; the element size
  is measured as the inverse of the mean spatial frequency of the luminance power
  spectrum (DC left out), relative to ``S = 1``: it should come out about ``S``.
* **colour preservation**: stylisation of ``B`` (content) with ``A`` (style); the mean
  absolute chrominance (YIQ ``I, Q``) difference to the content for each mode, and the
  colour distance ``C`` to the content.

Writes the section "Controls ..." of RESULTS.md and the sheet
``docs/images/controls_sheet.png``. The scores are never optimised against.

    python benchmarks/bench_controls.py                     # ~40 min, 1 thread
    python benchmarks/bench_controls.py --images bricks grass --steps 50 --no-write
    python benchmarks/bench_controls.py --parts sound --sound-steps 150  # ~15 min

``--parts sound`` measures ``--exemplar-scale`` on every sample clip instead: the
power-weighted mean modulation frequency of the cochlear envelopes (:mod:`audio_quality`)
of optimised sounds, relative to ``S = 1``; a stretch by ``S`` should divide it by ``S``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quality  # noqa: E402
from common import EXAMPLES, machine, publish, sample_paths  # noqa: E402

SHEET = HERE.parent / "docs" / "images" / "controls_sheet.png"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=EXAMPLES)
    parser.add_argument("--images", nargs="*", help="exemplar stems (default: all)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=float, nargs="*", default=[0.7, 0.3])
    parser.add_argument("--scales", type=float, nargs="*", default=[0.5, 2.0])
    parser.add_argument("--parts", nargs="*", default=["guide", "blend", "scale", "color"],
                        help="guide, blend, scale, color; sound (own section) on request")
    parser.add_argument("--seconds", type=float, default=3.0, help="sound part: duration")
    parser.add_argument("--sound-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sheet", type=Path, default=SHEET)
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args(argv)


class Runs:
    """Optimisation runs with the benchmark's settings, timed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.seconds: list[float] = []
        self._plain: dict[tuple[str, tuple[int, int]], torch.Tensor] = {}

    def synthesize(self, exemplars: list[Path], extents: tuple[int, int],
                   **controls: Any) -> torch.Tensor:
        """A synthesis (a plain one of one exemplar is made once and reused)."""
        key = (str(exemplars[0]), extents)
        if len(exemplars) == 1 and not controls and key in self._plain:
            return self._plain[key]
        signal = self._synthesize(exemplars, extents, **controls)
        if len(exemplars) == 1 and not controls:
            self._plain[key] = signal
        return signal

    def _synthesize(self, exemplars: list[Path], extents: tuple[int, int],
                    **controls: Any) -> torch.Tensor:
        import texsynth

        start = time.perf_counter()
        signal = texsynth.synthesize(exemplars, size=extents, steps=self.args.steps,
                                     seed=self.args.seed, progress=False,
                                     **controls).signal
        self.seconds.append(time.perf_counter() - start)
        return signal

    def stylize(self, content: Path, style: Path, **controls: Any) -> torch.Tensor:
        import texsynth

        start = time.perf_counter()
        size = self.args.size
        content_signal = torch.nn.functional.interpolate(
            texsynth.load(content), size=(size, size), mode="area")
        signal = texsynth.stylize(content_signal, style, domain="image",
                                  steps=self.args.steps,
                                  seed=self.args.seed, progress=False, **controls).signal
        self.seconds.append(time.perf_counter() - start)
        return signal


def halves(signal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    width = signal.shape[-1] // 2
    return signal[..., :width], signal[..., width:]


def guide_rows(runs: Runs, pairs: list[tuple[Path, Path]], loaded: dict[str, torch.Tensor],
               shown: dict[str, torch.Tensor]) -> str:
    """The guide table: per pair, each half against its own and the other exemplar."""
    size = runs.args.size
    alone = {}
    lines = ["| region (exemplar) | T, unguided synthesis | T of the region, own exemplar "
             "| T of the region, other exemplar |", "|---|---|---|---|"]
    for a, _ in pairs:
        alone[a.stem] = quality.texture_score(runs.synthesize([a], (size, size)),
                                              loaded[a.stem])
    own, other, plain = [], [], []
    for a, b in pairs:
        guide = torch.zeros(3, size, 2 * size)
        guide[:, :, size:] = 1.0
        out = runs.synthesize([a, b], (size, 2 * size), guide=guide)
        shown[f"guide {a.stem}|{b.stem}"] = out
        for part, mine, theirs in zip(halves(out), (a, b), (b, a), strict=True):
            t_own = quality.texture_score(part, loaded[mine.stem])
            t_other = quality.texture_score(part, loaded[theirs.stem])
            own.append(t_own)
            other.append(t_other)
            plain.append(alone[mine.stem])
            lines.append(f"| {mine.stem} (with {theirs.stem}) | {alone[mine.stem]:.2f} | "
                         f"{t_own:.2f} | {t_other:.2f} |")
    lines.append(f"| mean | {statistics.fmean(plain):.2f} | {statistics.fmean(own):.2f} | "
                 f"{statistics.fmean(other):.2f} |")
    return "\n".join(lines)


def blend_rows(runs: Runs, pairs: list[tuple[Path, Path]], loaded: dict[str, torch.Tensor],
               shown: dict[str, torch.Tensor]) -> str:
    """The blend table: colour distance to ``A`` and ``B`` along the weights."""
    size = runs.args.size
    weights = [1.0, *runs.args.weights, 0.0]
    head = " | ".join(f"w = {w:g}" for w in weights)
    lines = [f"| pair A, B: C to A / C to B | {head} |", "|---|" + "---|" * len(weights)]
    for a, b in pairs:
        cells = []
        for w in weights:
            if w in (0.0, 1.0):
                out = runs.synthesize([a if w == 1.0 else b], (size, size))
            else:
                out = runs.synthesize([a, b], (size, size), exemplar_weights=[w, 1 - w])
                if w == 0.5:
                    shown[f"blend {a.stem}+{b.stem}"] = out
            pix = quality.pixels(out)
            cells.append(f"{quality.colour_distance(pix, quality.pixels(loaded[a.stem])):.3f}"
                         f" / {quality.colour_distance(pix, quality.pixels(loaded[b.stem])):.3f}")
        lines.append(f"| {a.stem}, {b.stem} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def element_size(signal: torch.Tensor) -> float:
    """``1 / f̄``: the inverse power-weighted mean spatial frequency (cycles per pixel) of
    the luminance, DC left out; in pixels."""
    luma = quality.luminance(signal)[0, 0].double()
    power = torch.fft.fft2(luma - luma.mean()).abs().pow(2)
    fy = torch.fft.fftfreq(luma.shape[0], dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(luma.shape[1], dtype=torch.float64)[None, :]
    radius = (fy.pow(2) + fx.pow(2)).sqrt()
    return float(power.sum() / (power * radius).sum())


def scale_rows(runs: Runs, paths: list[Path], shown: dict[str, torch.Tensor]) -> str:
    """The scale table: element size relative to ``S = 1``."""
    size = runs.args.size
    scales = runs.args.scales
    lines = ["| exemplar | element size at S = 1 (px) | "
             + " | ".join(f"ratio at S = {s:g}" for s in scales) + " |",
             "|---|---|" + "---|" * len(scales)]
    ratios: dict[float, list[float]] = {s: [] for s in scales}
    for path in paths:
        base = element_size(runs.synthesize([path], (size, size)))
        cells = []
        for s in scales:
            out = runs.synthesize([path], (size, size), exemplar_scale=s)
            shown[f"scale {s:g} {path.stem}"] = out
            ratios[s].append(element_size(out) / base)
            cells.append(f"{ratios[s][-1]:.2f}")
        lines.append(f"| {path.stem} | {base:.1f} | " + " | ".join(cells) + " |")
    lines.append("| mean | | " + " | ".join(f"{statistics.fmean(ratios[s]):.2f}"
                                            for s in scales) + " |")
    return "\n".join(lines)


def modulation_rate(wave: torch.Tensor) -> float:
    """The power-weighted geometric mean modulation frequency (Hz) of the cochlear
    envelopes of a waveform ``(1, 1, T)`` (:mod:`audio_quality`), over 0.5–32 Hz: how
    often events come. A time stretch by ``S`` should divide it by ``S``."""
    import audio_quality
    import numpy as np

    env = audio_quality.envelopes(audio_quality.subbands(wave[0, 0].double().numpy()))
    centred = env - env.mean(axis=-1, keepdims=True)
    power = np.abs(np.fft.rfft(centred, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(env.shape[-1], 1 / audio_quality.ENV_RATE)
    band = (freqs >= 0.5) & (freqs <= 32.0)
    weights = power[:, band].sum(axis=0)
    return float(np.exp((weights * np.log(freqs[band])).sum() / weights.sum()))


def sound_rows(args: argparse.Namespace) -> str:
    """The sound table: modulation rate of optimised sounds relative to ``S = 1``."""
    import texsynth

    domain = texsynth.get_domain("audio")
    clips = sample_paths(args.data, ".wav")
    scales = args.scales
    lines = ["| clip | rate of the output at S = 1 (Hz) | "
             + " | ".join(f"S = {s:g}: stretched exemplar / output" for s in scales) + " |",
             "|---|---|" + "---|" * len(scales)]
    ratios: dict[float, list[float]] = {s: [] for s in scales}
    size = domain.size_from_duration(args.seconds)
    for clip in clips:
        exemplar = domain.load(clip)
        rates = {}
        for s in (1.0, *scales):
            out = texsynth.synthesize(clip, size=size, steps=args.sound_steps,
                                      seed=args.seed, progress=False, exemplar_scale=s)
            rates[s] = modulation_rate(out.signal)
        cells = []
        for s in scales:
            ratios[s].append(rates[1.0] / rates[s])
            stretched = modulation_rate(exemplar) / modulation_rate(domain.rescale(exemplar, s))
            cells.append(f"{stretched:.2f} / {ratios[s][-1]:.2f}")
        lines.append(f"| {clip.stem} | {rates[1.0]:.2f} | " + " | ".join(cells) + " |")
    lines.append("| mean | | " + " | ".join(f"{statistics.fmean(ratios[s]):.2f}"
                                            for s in scales) + " |")
    return "\n".join(lines)


def chrominance(signal: torch.Tensor) -> torch.Tensor:
    """``(2, H, W)`` YIQ ``I, Q`` of an RGB picture."""
    from texsynth_image.color import rgb_to_yiq

    return rgb_to_yiq(signal)[0, 1:]


def color_rows(runs: Runs, pairs: list[tuple[Path, Path]],
               shown: dict[str, torch.Tensor]) -> str:
    """The colour table: chrominance error and colour distance to the content."""
    import texsynth

    size = runs.args.size
    lines = ["| content, style | mode | mean abs. I, Q error to the content | C to the "
             "content |", "|---|---|---|---|"]
    for style, content in pairs:
        target = torch.nn.functional.interpolate(texsynth.load(content), size=(size, size),
                                                 mode="area")
        for mode in (None, "luminance", "histogram"):
            out = runs.stylize(content, style, preserve_color=mode)
            shown[f"{mode or 'plain'} {content.stem}<-{style.stem}"] = out
            error = float((chrominance(out) - chrominance(target)).abs().mean())
            dist = quality.colour_distance(quality.pixels(out), quality.pixels(target))
            lines.append(f"| {content.stem}, {style.stem} | {mode or 'none'} | {error:.4f} "
                         f"| {dist:.3f} |")
    return "\n".join(lines)


def contact_sheet(shown: dict[str, torch.Tensor], path: Path, height: int = 128) -> None:
    """The outputs side by side, each ``height`` pixels high, with its name above."""
    from PIL import Image, ImageDraw

    tiles = []
    for name, signal in shown.items():
        array = (signal[0].clamp(0, 1).permute(1, 2, 0) * 255).round().byte().numpy()
        image = Image.fromarray(array)
        width = round(image.width * height / image.height)
        tiles.append((name, image.resize((width, height), Image.Resampling.LANCZOS)))
    columns = 4
    cell_w = max(t.width for _, t in tiles) + 8
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell_w, rows * (height + 20)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (name, tile) in enumerate(tiles):
        x, y = (index % columns) * cell_w, (index // columns) * (height + 20)
        draw.text((x + 2, y + 2), name, fill="black")
        sheet.paste(tile, (x, y + 18))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main(argv: list[str] | None = None) -> None:
    import texsynth

    args = parse(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    paths = sample_paths(args.data, ".png", args.images)
    pairs = [(p, paths[(i + 1) % len(paths)]) for i, p in enumerate(paths)]
    loaded = {p.stem: texsynth.load(p) for p in paths}
    runs, shown, tables = Runs(args), {}, []
    start = time.perf_counter()
    if "guide" in args.parts:
        tables.append("Guide: texture score T of each half (≈ 1 is the floor)\n\n"
                      + guide_rows(runs, pairs, loaded, shown))
    if "blend" in args.parts:
        tables.append("Blend A:w B:(1 − w): colour distance C to A / to B\n\n"
                      + blend_rows(runs, pairs, loaded, shown))
    if "scale" in args.parts:
        tables.append("Exemplar scale S: element size relative to S = 1 (target: S)\n\n"
                      + scale_rows(runs, paths, shown))
    if "color" in args.parts:
        tables.append("Colour preservation (stylisation, content B, style A)\n\n"
                      + color_rows(runs, pairs[:2], shown))
    if "sound" in args.parts:
        sound_start = time.perf_counter()
        body = ("Exemplar scale S on sound (a time stretch at the same pitch): how often "
                "events come, the modulation rate at S = 1 over that at S (target: S), of "
                "the stretched exemplar itself and of the output synthesised from it\n\n"
                + sound_rows(args))
        print(body)
        publish("Controls: exemplar scale on sound (cpu)",
                f"{machine()}. Every sample clip, {args.seconds:g} s outputs, default "
                f"extractor, {args.sound_steps} L-BFGS steps, seed {args.seed}; "
                f"{time.perf_counter() - sound_start:.0f} s in all.", body,
                write=not args.no_write)
        if args.parts == ["sound"]:
            return
    seconds = time.perf_counter() - start
    text = "\n\n".join(tables)
    print(text)
    print(f"whole run: {seconds:.0f} s")
    if shown:
        contact_sheet(shown, args.sheet)
    description = (f"{machine()}. {args.size}² outputs (guide: {args.size} × "
                   f"{2 * args.size}), default extractor, {args.steps} L-BFGS steps, seed "
                   f"{args.seed}; {len(runs.seconds)} runs, {seconds:.0f} s in all. "
                   f"Sheet: `docs/images/{args.sheet.name}`.")
    publish("Controls: guides, blends, exemplar scale, colour preservation (cpu)",
            description, text, write=not args.no_write)


if __name__ == "__main__":
    main()
