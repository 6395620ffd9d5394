"""texsynth hook implementations of the built-in audio plugin (entry point ``audio``)."""

from __future__ import annotations

import texsynth
from texsynth.hookspecs import RegisterDomain, RegisterExtractor

from .domain import AudioDomain
from .extractors import (
    MULTIKERNEL_OPTIONS,
    ULYANOV_OPTIONS,
    multikernel_factory,
    ulyanov_factory,
)
from .multistft import MULTIRES_OPTIONS, multires_factory


@texsynth.hookimpl
def texsynth_register_domains(register: RegisterDomain) -> None:
    """Register the ``audio`` domain."""
    register(AudioDomain)


@texsynth.hookimpl
def texsynth_register_extractors(register: RegisterExtractor) -> None:
    """Register the random-weight spectrogram extractors ``ulyanov``, ``multikernel`` and
    ``multires``."""
    register("ulyanov", ulyanov_factory, domains=("audio",),
             description="one random Conv1d (4096 filters, width 11 frames) + ReLU over "
                         "log1p STFT magnitudes (Ulyanov & Lebedev 2016)",
             options=ULYANOV_OPTIONS)
    register("multikernel", multikernel_factory, domains=("audio",),
             description="single-layer random Conv1d nets of widths 2…128 frames, one joint "
                         "Gram, plus the log-spectrum's Gram (after Antognini et al. 2019)",
             options=MULTIKERNEL_OPTIONS)
    register("multires", multires_factory, domains=("audio",),
             description="multikernel random nets over log1p STFTs of 256, 1024 and 4096 "
                         "samples at once (clicks and pitch), reading the waveform",
             options=MULTIRES_OPTIONS)
