"""Griffin-Lim phase recovery, and the log-magnitude spectrogram as the optimisation
variable that it decodes (the representation named ``"griffin-lim"``).

:func:`griffin_lim` turns linear STFT magnitudes ``(B, n_fft // 2 + 1, frames)`` into
waveforms ``(B, samples)`` (``torchaudio.transforms.GriffinLim``, ``power=1``, momentum
0.99, random initial phase). :class:`MagnitudeRepresentation` is what the audio domain
offers as its :meth:`~texsynth_audio.AudioDomain.representation` with
``phase="griffin-lim"``; :mod:`texsynth_audio.magnitude` explains the method.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol

import torch

from texsynth.domain import Representation
from texsynth.errors import UsageError

from .stft import magnitude as stft_magnitude

__all__ = ["MagnitudeRepresentation", "SpectrogramDomain", "griffin_lim"]


class SpectrogramDomain(Protocol):
    """What :class:`MagnitudeRepresentation` needs of its domain (the audio domain): the
    STFT window and hop in samples, and the log1p-magnitude model input of a waveform."""

    n_fft: int
    hop_length: int

    def to_features_input(self, signal: torch.Tensor) -> torch.Tensor:
        """``(N·C, n_fft // 2 + 1, frames)`` of a waveform ``(N, C, T)``."""
        ...


def griffin_lim(magnitude: torch.Tensor, *, length: int, n_fft: int, hop_length: int,
                n_iter: int = 100, momentum: float = 0.99) -> torch.Tensor:
    """Waveforms ``(B, length)`` (samples) from linear STFT magnitudes ``(B, F, frames)``.

    ``F = n_fft // 2 + 1``; Hann window of ``n_fft`` samples, hop ``hop_length`` samples,
    ``center=True`` (as :func:`texsynth_audio.stft.magnitude`). The initial phase is
    random (torch's global generator).
    """
    import torchaudio

    if n_iter < 1:
        raise UsageError(f"Griffin-Lim needs at least one iteration, got {n_iter}")
    transform = torchaudio.transforms.GriffinLim(
        n_fft=n_fft, n_iter=n_iter, win_length=n_fft, hop_length=hop_length,
        window_fn=torch.hann_window, power=1.0, momentum=momentum, length=length,
        rand_init=True,
    ).to(magnitude.device)
    with torch.no_grad():
        return transform(magnitude.detach().float())


class MagnitudeRepresentation(Representation):
    """The log1p-magnitude spectrogram as the optimisation variable.

    The variable is what :meth:`AudioDomain.to_features_input` gives for a waveform:
    ``(N·C, n_fft // 2 + 1, frames)``. It is kept non-negative after every step and
    decoded with :func:`griffin_lim` (``n_iter`` iterations), then scaled to the
    spectrogram's energy and limited to [-1, 1] (see the module docstring).
    """

    name: ClassVar[str] = "griffin-lim"

    def __init__(self, domain: SpectrogramDomain, n_iter: int = 100) -> None:
        if n_iter < 1:
            raise UsageError(f"Griffin-Lim needs at least one iteration, got {n_iter}")
        self.domain = domain
        self.n_iter = int(n_iter)

    def encode(self, signal: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.domain.to_features_input(signal).detach()

    def to_features_input(self, variable: torch.Tensor) -> torch.Tensor:
        return variable

    def project(self, variable: torch.Tensor) -> torch.Tensor:
        return variable.clamp_min(0.0)

    def decode(self, variable: torch.Tensor, extents: tuple[int, ...]) -> torch.Tensor:
        """Waveform ``(1, C, samples)`` of a spectrogram ``(C, F, frames)``."""
        samples = int(extents[0])
        dom = self.domain
        magnitude = torch.expm1(variable.detach().clamp_min(0.0))
        wave = griffin_lim(magnitude, length=samples, n_fft=dom.n_fft,
                           hop_length=dom.hop_length, n_iter=self.n_iter)
        # An optimised spectrogram is rarely the STFT of any signal, and Griffin-Lim's
        # overlap-add then loses energy: restore the optimised spectrogram's energy.
        with torch.no_grad():
            found = stft_magnitude(wave, n_fft=dom.n_fft, hop_length=dom.hop_length)
            energy = float(found.pow(2).sum())
            if energy > 0:
                wave = wave * math.sqrt(float(magnitude.pow(2).sum()) / energy)
        peak = float(wave.abs().max()) if wave.numel() else 0.0
        if peak > 1.0:
            wave = wave / peak
        return wave.reshape(1, -1, samples)

    def settings(self) -> dict[str, Any]:
        return {"griffin_lim_iters": self.n_iter}
