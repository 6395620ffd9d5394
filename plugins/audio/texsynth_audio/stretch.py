"""Changing a waveform's length in time: stretching at the same pitch, and resampling.

:func:`time_stretch` is the audio domain's :meth:`~texsynth_audio.AudioDomain.rescale`
(``--exemplar-scale``): events last longer and come more seldom, the pitch stays. It runs
a phase vocoder on the STFT and then :data:`STRETCH_ITERS` Griffin-Lim iterations.

:func:`resample_length` is the domain's :meth:`~texsynth_audio.AudioDomain.resample`
(coarse-to-fine levels): a band-limited resampling to a new number of samples, which,
played at the working rate, changes speed and pitch together.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

__all__ = ["STRETCH_ITERS", "resample_length", "time_stretch"]

#: Griffin-Lim iterations that make a time stretch's phases consistent
#: (:func:`time_stretch`): 8 brought a stretched tone back to its amplitude.
STRETCH_ITERS = 16


def time_stretch(signal: torch.Tensor, factor: float, *, n_fft: int,
                 hop_length: int) -> torch.Tensor:
    """A waveform ``(1, C, T)`` stretched in time ``factor``-fold at the same pitch:
    ``(1, C, max(1, round(T · factor)))`` samples, not clipped.

    A phase vocoder on the STFT (Hann window of ``n_fft`` samples, hop ``hop_length``
    samples; ``torchaudio.functional.phase_vocoder``) gives the stretched magnitudes; its
    phases drift apart between neighbouring bins (a tone then loses up to half its
    amplitude), so :data:`STRETCH_ITERS` Griffin-Lim iterations started from them make
    the phases consistent again.
    """
    import torchaudio.functional as AF

    hop = hop_length
    window = torch.hann_window(n_fft, dtype=signal.dtype, device=signal.device)
    flat = signal.reshape(-1, signal.shape[-1])
    spec = torch.stft(flat, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, math.pi * hop, spec.shape[-2],
                             device=signal.device)[..., None]
    length = max(1, round(signal.shape[-1] * factor))
    frames = length // hop + 1
    stretched = AF.phase_vocoder(spec, 1.0 / factor, advance)[..., :frames]
    stretched = torch.nn.functional.pad(stretched, (0, frames - stretched.shape[-1]))
    target = stretched.abs()
    for _ in range(STRETCH_ITERS):
        wave = torch.istft(stretched, n_fft, hop, window=window, length=length)
        phase = torch.stft(wave, n_fft, hop, window=window, return_complex=True).angle()
        stretched = target * torch.exp(1j * phase)
    out = torch.istft(stretched, n_fft, hop, window=window, length=length)
    return out.reshape(*signal.shape[:-1], length)


def resample_length(signal: torch.Tensor, samples: int) -> torch.Tensor:
    """A waveform ``(N, C, T)`` resampled to ``(N, C, samples)`` with a band-limited
    (windowed sinc) filter, ``torchaudio.functional.resample``.

    Played at the working rate, the coarse version of a coarse-to-fine run is the sound
    sped up (an octave higher per halving) with what lies above the new Nyquist frequency
    removed, not aliased: linear interpolation of samples would fold it back.
    """
    import torchaudio.functional as AF

    target = int(samples)
    length = int(signal.shape[-1])
    if target == length:
        return signal.clone()
    # a ratio of small integers near target / length (exact for halvings of even
    # lengths); coprime lengths would make the filter bank as long as the signal
    ratio = Fraction(target, length).limit_denominator(64)
    out = AF.resample(signal, ratio.denominator, ratio.numerator)
    if out.shape[-1] != target:  # rounding: pad or cut the last samples
        out = torch.nn.functional.pad(out, (0, max(0, target - out.shape[-1])))
        out = out[..., :target]
    return out
