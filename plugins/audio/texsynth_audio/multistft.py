"""The multi-resolution STFT extractor ``multires``: random-filter statistics of STFTs at
several window sizes at once.

One STFT trades time against frequency: the audio domain's 2048-sample window (93 ms,
hop 23 ms at 22 050 Hz) resolves pitch but smears a click over a whole frame, and
nothing shorter than a hop is constrained. ``multires`` reads the waveform itself
(:attr:`~texsynth.extractor.FeatureExtractor.reads` is ``"signal"``) and analyses it
with several windows, e.g. 256 samples (12 ms, hop 3 ms) for clicks and onsets, 1024
for the bulk of the spectrum and 4096 (186 ms, 5.4 Hz bins) for pitch and slow rhythm.
Each resolution ``n`` gets the ``multikernel`` treatment of its ``log1p`` magnitudes
(:class:`~texsynth_audio.extractors.MultiKernelExtractor`: single-layer random
``Conv1d`` nets of several widths in frames, Antognini, Hoffman & Weiss 2019), so the
same widths in frames span times in proportion to the hop.

Input: a waveform ``(N, C, T)``; channels are folded into the batch. Layers, for every
``n`` in ``n_ffts``: ``spectrum<n>`` (the ``(N·C, n // 2 + 1, 1 + T // hop)`` log-
magnitudes, whose Gram is the covariance of bins), ``all<n>`` (every width's ReLU maps
concatenated, ``(N·C, filters · widths, frames)``); texture defaults to all of them,
content to ``all<n>`` of the middle resolution. Options: ``n_ffts`` (256, 1024, 4096
samples), ``hop_divisor`` (hop = ``n // hop_divisor``, 4), ``widths`` (2, 4, 8, 16, 32,
64 frames), ``filters`` (per width and resolution, 256), ``padding`` (``"circular"``),
``max_dense_width`` (16). Signals need more than ``max(n_ffts) // 2`` samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from texsynth.domain import Domain
from texsynth.errors import UsageError
from texsynth.extractor import ExtractorConfig, FeatureExtractor
from texsynth.validation import check_options

from .extractors import MultiKernelExtractor, positive_ints
from .stft import log_magnitude

__all__ = ["MULTIRES_OPTIONS", "MultiResolutionExtractor", "multires_factory"]

#: Options of ``multires`` with one-line help, as registered.
MULTIRES_OPTIONS: dict[str, str] = {
    "n_ffts": "STFT windows in samples, comma-separated (default 256,1024,4096)",
    "hop_divisor": "hop = window // hop_divisor, a positive int (default 4)",
    "widths": "kernel widths in frames of each resolution, comma-separated "
              "(default 2,4,8,16,32,64)",
    "filters": "random filters per width and resolution, a positive int (default 256)",
    "padding": "zeros, reflect, circular or valid, over time (default circular)",
    "max_dense_width": "widest kernel convolved densely (default 16)",
}
#: Largest STFT window ``multires`` accepts (the audio domain's own limit).
MAX_WINDOW = 1 << 16


class MultiResolutionExtractor(FeatureExtractor):
    """Random-filter banks over ``log1p`` STFT magnitudes at several window sizes.

    See the module docstring for layers and options. ``forward`` takes a waveform
    ``(N, C, T)`` with ``T > max(n_ffts) // 2``.
    """

    spatial_dims: ClassVar[int] = 1
    reads: ClassVar[str] = "signal"
    default_n_ffts: ClassVar[tuple[int, ...]] = (256, 1024, 4096)
    default_widths: ClassVar[tuple[int, ...]] = (2, 4, 8, 16, 32, 64)

    def __init__(self, *, n_ffts: Sequence[int] = default_n_ffts, hop_divisor: int = 4,
                 widths: Sequence[int] = default_widths, filters: int = 256,
                 padding: str = "circular", max_dense_width: int = 16, seed: int = 0,
                 layers: Sequence[str] | None = None) -> None:
        n_ffts = tuple(n_ffts)
        if not n_ffts or len(set(n_ffts)) != len(n_ffts):
            raise UsageError(f"multires needs distinct STFT windows, got {n_ffts}")
        if any(n < 16 or n > MAX_WINDOW for n in n_ffts):
            raise UsageError(f"multires windows must be 16 to {MAX_WINDOW} samples, got "
                             f"{n_ffts}")
        if any(n // hop_divisor < 1 for n in n_ffts):
            raise UsageError(f"hop_divisor {hop_divisor} leaves no hop for window "
                             f"{min(n_ffts)}")
        self.available_layers = tuple(name for n in n_ffts
                                      for name in (f"spectrum{n}", f"all{n}"))
        self.default_texture_layers = self.available_layers
        self.default_content_layers = (f"all{n_ffts[len(n_ffts) // 2]}",)
        super().__init__(layers)
        self.n_ffts = n_ffts
        self.hops = tuple(n // hop_divisor for n in n_ffts)
        self.banks = nn.ModuleDict({
            str(n): MultiKernelExtractor(n // 2 + 1, widths=widths, filters=filters,
                                         padding=padding, max_dense_width=max_dense_width,
                                         seed=seed * 7919 + index, layers=("all",))
            for index, n in enumerate(n_ffts)})

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        if x.dim() != 3:
            raise UsageError(f"multires expects a waveform (N, C, T), got shape "
                             f"{tuple(x.shape)}")
        if x.shape[-1] <= max(self.n_ffts) // 2:
            raise UsageError(f"a signal of {x.shape[-1]} samples is too short for the "
                             f"{max(self.n_ffts)}-sample window of multires")
        out: dict[str, torch.Tensor] = {}
        for n, hop in zip(self.n_ffts, self.hops, strict=True):
            wanted = [name for name in (f"spectrum{n}", f"all{n}") if name in layers]
            if not wanted:
                continue
            spec = log_magnitude(x, n_fft=n, hop_length=hop)
            if f"spectrum{n}" in layers:
                out[f"spectrum{n}"] = spec
            if f"all{n}" in layers:
                bank = self.banks[str(n)]
                out[f"all{n}"] = bank(spec, layers=("all",))["all"]
        return out


def multires_factory(config: ExtractorConfig, domain: Domain) -> MultiResolutionExtractor:
    """Build :class:`MultiResolutionExtractor` from ``config`` (``domain`` is unused:
    the extractor makes its own STFTs of the waveform)."""
    del domain
    options: dict[str, Any] = dict(config.options)
    check_options(options, MULTIRES_OPTIONS, owner="extractor 'multires'")
    if config.weights:
        raise UsageError("extractor 'multires' has random weights; it takes no weights file")
    cls = MultiResolutionExtractor
    return cls(
        n_ffts=positive_ints(options.get("n_ffts", cls.default_n_ffts), "n_ffts"),
        hop_divisor=positive_ints(options.get("hop_divisor", 4), "hop_divisor")[0],
        widths=positive_ints(options.get("widths", cls.default_widths), "widths"),
        filters=positive_ints(options.get("filters", 256), "filters")[0],
        padding=str(options.get("padding", "circular")),
        max_dense_width=positive_ints(options.get("max_dense_width", 16),
                                      "max_dense_width")[0],
        seed=config.seed, layers=config.layers)
