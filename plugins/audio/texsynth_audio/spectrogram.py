"""Spectrogram pictures (PNG, Pillow only) to compare exemplars and results by eye.

Each panel is the STFT magnitude in dB (Hann window of ``n_fft`` samples, hop ``hop``
samples) mapped through a magma-like colour map: time runs left to right at one pixel
per frame (so panels of different durations keep the same time scale), frequency runs
bottom (0 Hz) to top (``rate / 2`` Hz) on a linear axis. All panels share one dB scale:
0 dB is the loudest bin of any panel and the scale spans ``dynamic_range`` dB below it,
so loudness differences between panels stay visible. Multichannel signals are shown as
the mean of their channels' magnitudes. A picture that cannot be written (a full disk)
is an :class:`~texsynth.errors.InputError` naming it, with nothing left behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from texsynth.errors import UsageError

from .io import atomic_output
from .stft import magnitude

__all__ = ["colorize", "save_spectrogram_comparison", "spectrogram_db"]

#: Anchor colours (position, RGB) of a dark-purple → orange → pale-yellow map.
_ANCHORS = np.array([
    [0.00, 0, 0, 4],
    [0.13, 28, 16, 68],
    [0.25, 79, 18, 123],
    [0.38, 129, 37, 129],
    [0.50, 181, 54, 122],
    [0.63, 229, 80, 100],
    [0.75, 251, 135, 97],
    [0.88, 254, 194, 135],
    [1.00, 252, 253, 191],
], dtype=np.float64)

_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)


def colorize(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to ``uint8`` RGB (shape ``(..., 3)``)."""
    clipped = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)
    channels = [np.interp(clipped, _ANCHORS[:, 0], _ANCHORS[:, i]) for i in (1, 2, 3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def spectrogram_db(signal: torch.Tensor, *, n_fft: int, hop: int) -> np.ndarray:
    """Magnitude spectrogram in dB re 1, ``(n_fft // 2 + 1, frames)``, channels averaged.

    ``signal`` is a waveform ``(1, C, T)``, ``(C, T)`` or ``(T,)``.
    """
    wave = signal.detach().to("cpu", torch.float32)
    if wave.dim() == 3:
        wave = wave[0]
    if wave.dim() == 1:
        wave = wave.unsqueeze(0)
    if wave.shape[-1] <= n_fft // 2:
        raise UsageError(f"a signal of {wave.shape[-1]} samples is too short for a "
                         f"spectrogram with n_fft={n_fft}")
    with torch.no_grad():
        mag = magnitude(wave, n_fft=n_fft, hop_length=hop, eps=1e-20).mean(dim=0)
    return (20.0 * torch.log10(mag.clamp_min(1e-10))).numpy()


def save_spectrogram_comparison(
    signals: Sequence[tuple[str, torch.Tensor]],
    path: str | os.PathLike[str],
    *,
    rate: int,
    n_fft: int = 2048,
    hop: int = 512,
    height: int = 256,
    dynamic_range: float = 80.0,
) -> Path:
    """Write labelled spectrograms of ``signals`` side by side to a PNG, atomically.

    Args:
        signals: ``(label, waveform)`` pairs, waveforms ``(1, C, T)``, ``(C, T)`` or
            ``(T,)`` in samples at ``rate`` Hz; typically the exemplar then the result.
        path: output PNG.
        rate: sample rate in Hz (labels the time and frequency axes).
        n_fft: STFT window in samples.
        hop: STFT hop in samples (one pixel column per hop).
        height: pixel height of each panel (the ``n_fft // 2 + 1`` bins are averaged
            into this many rows).
        dynamic_range: dB range shown below the loudest bin of all panels.

    Returns:
        ``path``.

    Raises:
        UsageError: no signals, a path that is not ``.png``, or a signal too short.
        InputError: the picture cannot be written (no space left, ...).
    """
    from PIL import Image, ImageDraw, ImageFont

    if not signals:
        raise UsageError("no signals to draw")
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise UsageError(f"{target}: spectrogram pictures are written as PNG; "
                         "give a .png path")
    specs = [spectrogram_db(sig, n_fft=n_fft, hop=hop) for _, sig in signals]
    top = max(float(s.max()) for s in specs)
    floor = top - dynamic_range
    font = ImageFont.load_default()
    margin_left, margin_top, margin_bottom, gap = 44, 18, 18, 12
    widths = [s.shape[1] for s in specs]
    total_w = margin_left + sum(widths) + gap * (len(specs) - 1) + 8
    total_h = margin_top + height + margin_bottom
    canvas = Image.new("RGB", (total_w, total_h), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    x = margin_left
    for (label, sig), spec in zip(signals, specs, strict=True):
        scaled = ((spec - floor) / dynamic_range).astype(np.float32)
        # Average frequency bins into `height` rows, low frequencies at the bottom.
        column = Image.fromarray(scaled, mode="F").resize((spec.shape[1], height),
                                                            Image.Resampling.BOX)
        rows = np.asarray(column)[::-1]
        canvas.paste(Image.fromarray(colorize(rows), mode="RGB"), (x, margin_top))
        seconds = sig.shape[-1] / rate
        draw.text((x, 3), label, fill=_TEXT, font=font)
        draw.text((x, margin_top + height + 4), f"{seconds:.2f} s", fill=_TEXT, font=font)
        x += spec.shape[1] + gap
    nyquist = rate / 2
    step = 2000 if nyquist <= 12000 else 5000
    freq = 0.0
    while freq <= nyquist:
        y = margin_top + height - 1 - round(freq / nyquist * (height - 1))
        draw.line([(margin_left - 4, y), (margin_left - 1, y)], fill=_TEXT)
        text = f"{freq / 1000:g}k" if freq else "0"
        draw.text((2, max(0, y - 5)), text, fill=_TEXT, font=font)
        freq += step
    draw.text((2, total_h - 14), "Hz", fill=_TEXT, font=font)
    with atomic_output(target) as tmp:
        canvas.save(tmp, format="PNG")
    return target
