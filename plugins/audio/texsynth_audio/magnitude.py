"""Texture synthesis in the log-magnitude domain, with Griffin-Lim phase recovery.

The default audio pipeline optimises the waveform itself through a differentiable STFT
(the phase is then whatever the optimiser finds). This module offers the alternative of
Ulyanov & Lebedev's original code: optimise the model input, the log1p-magnitude
spectrogram ``S`` of shape ``(C, n_fft // 2 + 1, frames)``, directly with the same
extractor and texture loss (projected onto ``S >= 0`` after every step), then turn
``|X| = expm1(S)`` into a waveform with Griffin-Lim (``torchaudio.transforms.GriffinLim``,
``power=1``, momentum 0.99, random initial phase). An optimised spectrogram is rarely
exactly the STFT of a signal, and Griffin-Lim's overlap-add then loses energy, so the
waveform is finally scaled to the optimised spectrogram's energy (and down again if it
would exceed [-1, 1]).

The core reaches this through :class:`MagnitudeRepresentation`, which the audio domain
offers as its :meth:`~texsynth_audio.AudioDomain.representation` when built with
``phase="griffin-lim"`` (command line: ``--phase griffin-lim``); from Python,
:func:`synthesize_magnitude` is a shortcut for the same.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from typing_extensions import Unpack

from texsynth.domain import Representation
from texsynth.errors import UsageError
from texsynth.optim.synthesis import (
    OptimizationResult,
    OptimizerName,
    StepCallback,
    synthesize,
)
from texsynth.plugins import PluginManager
from texsynth.stats.features import FeatureOptions, FeatureSpec

from .stft import magnitude as stft_magnitude

if TYPE_CHECKING:
    from .domain import AudioDomain

__all__ = ["MagnitudeRepresentation", "griffin_lim", "synthesize_magnitude"]

Source = torch.Tensor | str | os.PathLike[str]


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

    def __init__(self, domain: AudioDomain, n_iter: int = 100) -> None:
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


def synthesize_magnitude(
    exemplar: Source | Sequence[Source],
    *,
    features: FeatureSpec | None = None,
    size: tuple[int, ...] | None = None,
    domain: AudioDomain | None = None,
    steps: int | None = None,
    optimizer: OptimizerName = "lbfgs",
    lr: float | None = None,
    griffin_lim_iters: int = 100,
    seed: int | None = None,
    device: str | torch.device | None = "auto",
    progress: bool = True,
    callback: StepCallback | None = None,
    manager: PluginManager | None = None,
    **options: Unpack[FeatureOptions],
) -> OptimizationResult:
    """Synthesise a sound texture by optimising its log1p-magnitude spectrogram.

    :func:`texsynth.synthesize` with the domain switched to ``phase="griffin-lim"``;
    arguments are those of :func:`texsynth.synthesize` (``features`` and its keyword
    ``options`` included; ``size`` is ``(samples,)``, default the first exemplar's
    length), plus ``griffin_lim_iters``, the number of Griffin-Lim iterations used to
    recover a phase at the end. ``callback(step, loss, S)`` sees the current spectrogram
    ``S`` ``(C, F, frames)``, not a waveform.

    Returns:
        :class:`texsynth.OptimizationResult` whose ``signal`` is a waveform
        ``(1, C, samples)`` in [-1, 1] and whose ``settings`` record
        ``"representation": {"name": "griffin-lim", ...}``.
    """
    from .domain import AudioDomain

    if domain is not None and not isinstance(domain, AudioDomain):
        raise UsageError(f"magnitude synthesis needs the audio domain, got {domain.name!r}")
    dom = copy.copy(domain) if domain is not None else AudioDomain()
    dom.phase = "griffin-lim"
    dom.griffin_lim_iters = int(griffin_lim_iters)
    spec = (features or FeatureSpec()).replace(**options)
    return synthesize(exemplar, features=spec, domain=dom, size=size, steps=steps,
                      optimizer=optimizer, lr=lr, seed=seed, device=device,
                      progress=progress, callback=callback, manager=manager)
