"""Built-in audio plugin of texsynth: sound files as waveform signals.

Registers the ``audio`` domain (:class:`AudioDomain`) and the random-weight spectrogram
extractors ``ulyanov`` and ``multikernel`` through the ``texsynth`` entry point
``audio = "texsynth_audio.hooks"``.
"""

from __future__ import annotations

from .domain import AudioDomain
from .extractors import MultiKernelExtractor, UlyanovExtractor

__all__ = ["AudioDomain", "MultiKernelExtractor", "UlyanovExtractor"]
