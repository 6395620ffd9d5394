"""Novelty of a sound against its exemplar: new sound of the same kind, or the recording
replayed? A score no texsynth loss optimises, beside :mod:`audio_quality`'s.

``N(output, exemplar)``:

1. Frames: the log-magnitude STFT (``n_fft`` 1024, hop 256 samples at 22 050 Hz, Hann
   window), ``log(1 + 100·|X|)``; a *segment* is ``CONTEXT`` = 8 consecutive frames
   (about 93 ms) flattened into one vector.
2. ``d(s)``: for each output segment (every 4th frame), the Euclidean distance to its
   nearest exemplar segment, the exemplar's taken at every ``POOL_SHIFT`` = 32 samples
   (so a replayed stretch is found whatever its offset within a hop);
   ``D(output, exemplar)`` is their median.
3. Reference: ``D`` between the exemplar's own halves, first against second and second
   against first, averaged.
4. ``N = D(output, exemplar) / reference``: a genuinely different piece of the same
   recording scores about 1, a synthesiser that replays stretches of the recording well
   below 1 (an exact copy 0), a sound unlike the exemplar above 1.
"""

from __future__ import annotations

import numpy as np
import torch
from novelty_order import median_nearest

N_FFT = 1024
HOP = 256
CONTEXT = 8
OUTPUT_STRIDE = 4
POOL_SHIFT = 32


def segments(wave: np.ndarray, stride: int) -> torch.Tensor:
    """``(S, CONTEXT · (N_FFT / 2 + 1))`` log-magnitude segments of a mono wave."""
    signal = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    spec = torch.stft(signal, N_FFT, HOP, window=torch.hann_window(N_FFT),
                      return_complex=True).abs()
    frames = torch.log1p(100.0 * spec).T  # (frames, bins)
    if frames.shape[0] < CONTEXT:
        raise ValueError(f"a sound of {signal.numel()} samples is shorter than one segment")
    windows = frames.unfold(0, CONTEXT, stride)  # (S, bins, CONTEXT)
    return windows.reshape(windows.shape[0], -1).contiguous()


def pool_segments(wave: np.ndarray) -> torch.Tensor:
    """Every segment of a mono wave, starting at every ``POOL_SHIFT`` samples."""
    return torch.cat([segments(wave[shift:], 1) for shift in range(0, HOP, POOL_SHIFT)])


def halves_reference(exemplar: np.ndarray) -> float:
    """Step 3: the exemplar's halves against each other."""
    half = exemplar.size // 2
    first, second = exemplar[:half], exemplar[half:]
    return 0.5 * (median_nearest(segments(first, OUTPUT_STRIDE), pool_segments(second))
                  + median_nearest(segments(second, OUTPUT_STRIDE), pool_segments(first)))


def novelty(output: np.ndarray, exemplar: np.ndarray, *, reference: float | None = None,
            pool: np.ndarray | None = None) -> float:
    """``N`` of a mono ``output`` against ``exemplar`` (compared with ``pool`` instead
    when given, e.g. the other half for the calibration row)."""
    ref = halves_reference(exemplar) if reference is None else reference
    against = exemplar if pool is None else pool
    return median_nearest(segments(output, OUTPUT_STRIDE), pool_segments(against)) / ref
