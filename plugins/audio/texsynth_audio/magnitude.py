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

The core reaches this through
:class:`~texsynth_audio.griffinlim.MagnitudeRepresentation`, which the audio domain
offers as its :meth:`~texsynth_audio.AudioDomain.representation` when built with
``phase="griffin-lim"`` (command line: ``--phase griffin-lim``); from Python,
:func:`synthesize_magnitude` is a shortcut for the same.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import torch
from typing_extensions import Unpack

from texsynth.errors import UsageError
from texsynth.optim.loop import OptimizationResult, OptimizerName, StepCallback
from texsynth.optim.synthesis import synthesize
from texsynth.plugins import PluginManager
from texsynth.stats.features import FeatureOptions, FeatureSpec

from .domain import AudioDomain

__all__ = ["synthesize_magnitude"]

Source = torch.Tensor | str | os.PathLike[str]


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
    if domain is not None and not isinstance(domain, AudioDomain):
        raise UsageError(f"magnitude synthesis needs the audio domain, got {domain.name!r}")
    dom = copy.copy(domain) if domain is not None else AudioDomain()
    dom.phase = "griffin-lim"
    dom.griffin_lim_iters = int(griffin_lim_iters)
    spec = (features or FeatureSpec()).replace(**options)
    return synthesize(exemplar, features=spec, domain=dom, size=size, steps=steps,
                      optimizer=optimizer, lr=lr, seed=seed, device=device,
                      progress=progress, callback=callback, manager=manager)
