"""Built-in audio plugin of texsynth: sound files as waveform signals.

Registers the ``audio`` domain (:class:`AudioDomain`) and the random-weight spectrogram
extractors ``ulyanov`` and ``multikernel`` through the ``texsynth`` entry point
``audio = "texsynth_audio.hooks"``.

Besides waveform optimisation through the core (:func:`texsynth.synthesize`), it offers
log-magnitude optimisation with Griffin-Lim phase recovery
(:func:`synthesize_magnitude`) and spectrogram pictures
(:func:`texsynth_audio.spectrogram.save_spectrogram_comparison`).
"""

from __future__ import annotations

from .domain import AudioDomain
from .extractors import MultiKernelExtractor, UlyanovExtractor
from .griffinlim import griffin_lim
from .magnitude import synthesize_magnitude
from .spectrogram import save_spectrogram_comparison

__all__ = [
    "AudioDomain",
    "MultiKernelExtractor",
    "UlyanovExtractor",
    "griffin_lim",
    "save_spectrogram_comparison",
    "synthesize_magnitude",
]
