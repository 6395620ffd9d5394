"""Sound-texture quality against an exemplar, in a space no texsynth loss uses.

texsynth matches statistics of STFT magnitudes (and of random filters over them). This
module scores sounds with the auditory texture statistics of McDermott & Simoncelli
(Neuron, 2011, "Sound texture perception via statistics of the auditory periphery"):
moments and correlations of cochlear subband envelopes and their modulation power.
**Nothing may be trained or optimised against these scores**; they are an independent
check, and stop being one the moment a loss uses them.

Definition of the statistics ``S(x)`` of a mono waveform ``x`` at 22 050 Hz:

1. Cochlear filterbank: :data:`N_BANDS` = 32 fourth-order gammatone filters
   (``scipy.signal.gammatone``, IIR) with centre frequencies equally spaced on the ERB-
   number scale (Glasberg & Moore 1990) from 50 Hz to 8 kHz, applied forwards.
2. Envelopes: the magnitude of each subband's analytic signal (``scipy.signal.hilbert``),
   compressed by raising to the power 0.3 (cochlear compression, as in the paper),
   resampled to :data:`ENV_RATE` = 400 Hz (``scipy.signal.resample_poly``), the first and
   last 50 ms dropped (filter and resampling edges).
3. Per band ``k`` with envelope ``e_k``: ``log`` of the mean (M1), the coefficient of
   variation ``σ/μ`` (M2), skewness (M3) and ``log`` kurtosis (M4); the correlation
   coefficients between every pair of bands' envelopes (C, 496 values); the modulation
   power (MP): the variance of ``e_k`` in each of :data:`N_MOD` = 12 modulation bands
   (half-cosine filters on a log-frequency axis with Q = 2 as in the paper, centres
   spaced equally in log frequency from 1 to 128 Hz), divided by the variance of
   ``e_k``, in ``log10``.
4. That is six groups ``g`` (M1, M2, M3, M4, C, MP), plus the power of each subband in
   dB (P, before compression, floored at :data:`FLOOR_DB` = 60 dB below the loudest
   band so that nearly silent bands do not dominate), which is the coarse spectrum.

Definition of the **envelope score** ``A(output, exemplar)``: for each group the RMS
difference ``d_g(x, y) = sqrt(mean((S_g(x) - S_g(y))²))``; the score is the mean over the
five groups M2, M3, M4, C and MP (:data:`SCORED`) of ``d_g(output, exemplar) /
d_g(noise, exemplar)``, where *noise* is
spectrally matched noise: the exemplar with the phases of its Fourier transform
replaced by random ones (one draw, seeded; same power spectrum, no temporal structure).
So spectrally matched noise scores 1 by construction; an output that keeps the
exemplar's envelope statistics better than noise with the right spectrum scores below 1,
and a genuine other piece of the exemplar scores near the floor (the benchmark's
"other half" row: the exemplar's second half scored against its first half).
Lower is better. Per-group ratios are kept as well (:func:`group_scores`). M1 and P are
left out of the ratio: matched noise has the exemplar's spectrum by construction, so its
distance there is near zero and any ratio to it is meaningless; the benchmark reports
the **spectrum distance** ``d_P`` (RMS over bands of the power difference, in dB) on its
own.

The filterbank and envelope follow the paper; the modulation filterbank is smaller (12
bands from 1 Hz, as the sample clips are 3–8 s long, too short for modulation rates
below about 1 Hz), and the paper's modulation correlations (C1, C2) are left out.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import signal as sps

SAMPLE_RATE = 22050
N_BANDS = 32
LOW_HZ, HIGH_HZ = 50.0, 8000.0
COMPRESSION = 0.3
ENV_RATE = 400
EDGE_S = 0.05
N_MOD = 12
MOD_LOW_HZ, MOD_HIGH_HZ = 1.0, 128.0
MOD_Q = 2.0
FLOOR_DB = 60.0
GROUPS = ("P", "M1", "M2", "M3", "M4", "C", "MP")
#: The groups of the envelope score (see the module docstring for why not P and M1).
SCORED = ("M2", "M3", "M4", "C", "MP")

Array = NDArray[np.float64]


def erb_number(hz: Array | float) -> Array:
    """ERB-number (Cams) of frequencies in Hz (Glasberg & Moore 1990)."""
    return 21.4 * np.log10(1 + 0.00437 * np.asarray(hz, dtype=np.float64))


def centre_frequencies(bands: int = N_BANDS) -> Array:
    """``bands`` centre frequencies in Hz, equally spaced in ERB number from
    :data:`LOW_HZ` to :data:`HIGH_HZ`."""
    cams = np.linspace(erb_number(LOW_HZ), erb_number(HIGH_HZ), bands)
    return (10 ** (cams / 21.4) - 1) / 0.00437


@functools.cache
def _filters(rate: int) -> tuple[Array, ...]:
    """Second-order sections of every gammatone filter at ``rate`` Hz."""
    sections = []
    for hz in centre_frequencies():
        b, a = sps.gammatone(float(hz), "iir", fs=rate)
        sections.append(sps.tf2sos(b, a))
    return tuple(sections)


def subbands(wave: Sequence[float] | Array, rate: int = SAMPLE_RATE) -> Array:
    """The cochlear subbands ``(N_BANDS, samples)`` of a mono waveform ``(samples,)`` in
    [-1, 1] at ``rate`` Hz."""
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim != 1 or x.size < rate // 2:
        raise ValueError(f"need a mono waveform of at least 0.5 s, got shape {x.shape}")
    return np.stack([sps.sosfilt(sos, x) for sos in _filters(rate)])


def envelopes(bands: Array, rate: int = SAMPLE_RATE) -> Array:
    """Compressed envelopes ``(N_BANDS, frames)`` at :data:`ENV_RATE` Hz of
    :func:`subbands` output at ``rate`` Hz."""
    env = np.abs(sps.hilbert(bands, axis=-1)) ** COMPRESSION
    g = math.gcd(ENV_RATE, rate)
    env = sps.resample_poly(env, ENV_RATE // g, rate // g, axis=-1)
    edge = int(EDGE_S * ENV_RATE)
    return np.maximum(env[:, edge:-edge], 0.0)


def modulation_power(env: Array) -> Array:
    """``(N_BANDS, N_MOD)``: the fraction of each envelope's variance in every modulation
    band (half-cosine filters on log frequency, Q = :data:`MOD_Q`), ``log10``."""
    centred = env - env.mean(axis=-1, keepdims=True)
    spectrum = np.abs(np.fft.rfft(centred, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(env.shape[-1], 1 / ENV_RATE)
    centres = np.geomspace(MOD_LOW_HZ, MOD_HIGH_HZ, N_MOD)
    total = spectrum[:, 1:].sum(axis=-1, keepdims=True) + 1e-20
    power = []
    for fc in centres:
        # Half-cosine over [fc / r, fc * r] in log frequency, bandwidth fc / Q.
        half = math.asinh(1 / (2 * MOD_Q))  # half-bandwidth in natural-log units
        with np.errstate(divide="ignore"):
            dist = np.abs(np.log(np.where(freqs > 0, freqs, np.nan) / fc)) / (2 * half)
        weight = np.where(dist < 0.5, np.cos(np.pi * np.nan_to_num(dist, nan=1.0)), 0.0)
        power.append((spectrum * weight**2).sum(axis=-1) / total[:, 0])
    return np.log10(np.stack(power, axis=-1) + 1e-10)


def statistics(wave: Sequence[float] | Array, rate: int = SAMPLE_RATE) -> dict[str, Array]:
    """The groups of statistics (see the module docstring) of a mono waveform."""
    bands = subbands(wave, rate)
    env = envelopes(bands, rate)
    mean = env.mean(axis=-1)
    std = env.std(axis=-1)
    centred = env - mean[:, None]
    safe = np.maximum(std, 1e-12)
    skew = (centred**3).mean(axis=-1) / safe**3
    kurt = (centred**4).mean(axis=-1) / safe**4
    corr = np.corrcoef(env)
    upper = corr[np.triu_indices(N_BANDS, 1)]
    power = (bands**2).mean(axis=-1)
    power = 10 * np.log10(np.maximum(power, power.max() * 10 ** (-FLOOR_DB / 10)) + 1e-30)
    return {"P": power, "M1": np.log(mean + 1e-12), "M2": std / np.maximum(mean, 1e-12), "M3": skew,
            "M4": np.log(kurt + 1e-12), "C": np.nan_to_num(upper), "MP": modulation_power(env)}


def distances(a: dict[str, Array], b: dict[str, Array]) -> dict[str, float]:
    """RMS difference of every group between two statistics dicts."""
    return {g: float(np.sqrt(np.mean((a[g] - b[g]) ** 2))) for g in GROUPS}


def matched_noise(wave: Sequence[float] | Array, seed: int) -> Array:
    """The waveform with random Fourier phases (same power spectrum), same length."""
    x = np.asarray(wave, dtype=np.float64)
    spectrum = np.fft.rfft(x)
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, spectrum.shape)
    phases[0] = 0.0
    if x.size % 2 == 0:
        phases[-1] = 0.0
    return np.fft.irfft(np.abs(spectrum) * np.exp(1j * phases), n=x.size)


class Reference:
    """The statistics of an exemplar and the distances of its matched noise to them."""

    def __init__(self, exemplar: Sequence[float] | Array, seed: int = 0,
                 rate: int = SAMPLE_RATE) -> None:
        self.rate = rate
        self.stats = statistics(exemplar, rate)
        self.noise = distances(statistics(matched_noise(exemplar, seed), rate), self.stats)


def group_scores(output: Sequence[float] | Array, ref: Reference) -> dict[str, float]:
    """Per scored group, the output's distance to the exemplar over matched noise's, and
    under ``"P"`` the spectrum distance in dB (not a ratio)."""
    dist = distances(statistics(output, ref.rate), ref.stats)
    ratios = {g: dist[g] / max(ref.noise[g], 1e-12) for g in SCORED}
    return {"P": dist["P"], **ratios}


def scores(output: Sequence[float] | Array, ref: Reference) -> tuple[float, float]:
    """``(A, d_P)``: the envelope score (mean of the scored groups' ratios; 1 = matched
    noise) and the spectrum distance in dB."""
    groups = group_scores(output, ref)
    return float(np.mean([groups[g] for g in SCORED])), groups["P"]
