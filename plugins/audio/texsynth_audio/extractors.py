"""Random-weight spectrogram feature extractors for audio textures.

Both take the audio domain's model input ``(N, F, frames)`` (``F = n_fft // 2 + 1``
log1p-magnitude frequency bins as channels, STFT frames as the one spatial axis) and
convolve over time only, with frozen random weights drawn from ``config.seed``. Both also
offer the layer ``spectrum``: the input itself, whose Gram matrix is the (uncentred)
covariance of log-magnitudes across frequency, so matching it pins down the average
spectrum and which bands rise and fall together.

``ulyanov``
    One ``Conv1d`` with 4096 filters of width 11 frames, Xavier-normal weights with ReLU
    gain, no bias, then ReLU (Ulyanov & Lebedev 2016, "Audio texture synthesis and style
    transfer"). Layers ``spectrum``, ``conv`` (before the ReLU) and ``relu``; texture and
    content default to ``relu``, as in the paper. Options: ``filters`` (4096), ``width``
    (11 frames), ``padding`` (``"zeros"``).

``multikernel`` (the audio domain's default)
    Several independent single-layer random networks with different widths over time,
    each ``Conv1d`` + ReLU (Antognini, Hoffman & Weiss 2019 found a bank of single-layer
    nets of several widths better than one stacked net). Layers ``w2, w4, …, w128`` (one
    per width, ``(N, filters, frames)``), ``all`` (every width's maps concatenated along
    channels, ``(N, filters · widths, frames)``) and ``spectrum``.

    Texture defaults to ``spectrum`` + ``all``: one Gram over all widths' features
    together (cross-width correlations included) rather than one Gram per width.
    Measured on rain, fire and crickets (5 s, 300 L-BFGS steps), the joint Gram with 256
    filters per width reproduced the crickets' silent gaps between chirps and the fire's
    crackles clearly better than per-width Grams with 256 or 512 filters, and as well as
    or better than ``ulyanov`` at about a third of its cost; adding ``spectrum`` brought
    the average spectrum closer still. Content defaults to ``w2, w4`` (the short
    kernels follow the content's timing closely; the long ones would also copy its slow
    envelope). Options: ``widths`` ((2, 4, 8, 16, 32, 64, 128) frames, ≈46 ms to ≈3 s
    at 22 050 Hz with hop 512), ``filters`` (256 per width), ``padding``
    (``"circular"``), ``max_dense_width`` (16).

    A dense kernel of 128 frames × 1025 bins × 256 filters costs 33 M multiply-adds per
    frame, so widths above ``max_dense_width`` are computed at reduced resolution: the
    input is first averaged over ``s = ceil(width / max_dense_width)`` frames (stride 1)
    and then convolved with a kernel of ``max_dense_width`` taps dilated by ``s``. That
    equals a dense kernel of ``s · max_dense_width`` frames whose taps are constant over
    runs of ``s`` frames: the same span, a fraction of the cost. Set
    ``max_dense_width`` to the widest width for exact dense kernels.

Padding (option ``padding``, the command line's ``--padding``): ``"zeros"`` pads with
zeros (silence in log1p magnitude), ``"reflect"`` mirrors the frames at the ends,
``"circular"`` wraps them around (every window is a real piece of the signal, so kernels
wider than a short exemplar still see only sound), ``"valid"`` pads nothing (signals must
then have at least as many frames as the widest kernel). Every mode but ``"valid"`` gives
one output per input frame and works for any number of frames, also fewer than the
kernel width (reflection and wrapping repeat as often as needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from texsynth.domain import Domain
from texsynth.errors import UsageError
from texsynth.extractor import ExtractorConfig, FeatureExtractor
from texsynth.validation import check_choice, check_options

__all__ = [
    "MULTIKERNEL_OPTIONS",
    "PADDINGS",
    "ULYANOV_OPTIONS",
    "MultiKernelExtractor",
    "UlyanovExtractor",
    "multikernel_factory",
    "positive_ints",
    "ulyanov_factory",
]

#: Padding modes over time; ``"zero"`` is accepted for ``"zeros"``.
PADDINGS = ("zeros", "reflect", "circular", "valid")

#: Options of ``ulyanov`` (``ExtractorConfig.options``) with one-line help, as registered.
ULYANOV_OPTIONS: dict[str, str] = {
    "filters": "random filters, a positive int (default 4096)",
    "width": "kernel width in STFT frames, a positive int (default 11)",
    "padding": "zeros, reflect, circular or valid, over time (default zeros)",
}
#: Options of ``multikernel`` (``ExtractorConfig.options``) with one-line help, as
#: registered.
MULTIKERNEL_OPTIONS: dict[str, str] = {
    "widths": "kernel widths in STFT frames, comma-separated positive ints "
              "(default 2,4,8,16,32,64,128)",
    "filters": "random filters per width, a positive int (default 256)",
    "padding": "zeros, reflect, circular or valid, over time (default circular)",
    "max_dense_width": "widest kernel convolved densely, a positive int; wider ones are "
                       "smoothed and dilated (default 16)",
}


def _input_channels(domain: Domain) -> int:
    n_freqs = getattr(domain, "n_freqs", None)
    if n_freqs is None:
        n_fft = getattr(domain, "n_fft", None)
        if n_fft is None:
            raise UsageError(f"domain {domain.name!r} does not say how many frequency bins "
                             "its model input has (no n_freqs / n_fft attribute)")
        n_freqs = int(n_fft) // 2 + 1
    return int(n_freqs)


def _xavier_relu(shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    """Xavier-normal weights ``(out, in, k)`` scaled by the ReLU gain √2."""
    out_ch, in_ch, k = shape
    std = math.sqrt(2.0) * math.sqrt(2.0 / (in_ch * k + out_ch * k))
    return torch.randn(shape, generator=generator) * std


def _pad_time(x: torch.Tensor, total: int, mode: str) -> torch.Tensor:
    """Pad ``(N, C, T)`` by ``total`` frames (left ``total // 2``) with ``mode``."""
    if total <= 0 or mode == "valid":
        return x
    left, right = total // 2, total - total // 2
    if mode == "zeros":
        return F.pad(x, (left, right))
    frames = x.shape[-1]
    index = torch.arange(-left, frames + right, device=x.device)
    if mode == "circular" or frames == 1:
        index = index % frames
    else:  # reflect about the first and last frame, any number of times
        period = 2 * (frames - 1)
        index = index % period
        index = torch.where(index < frames, index, period - index)
    return x.index_select(-1, index)


def _positive_int(value: Any, what: str) -> int:
    """``value`` as an int >= 1 (ints, integral floats and digit strings are accepted)."""
    if isinstance(value, bool):
        raise UsageError(f"{what} must be a positive integer, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise UsageError(f"{what} must be a positive integer, got {value!r}")
    if number < 1:
        raise UsageError(f"{what} must be a positive integer, got {value!r}")
    return number


def positive_ints(raw: Any, what: str) -> tuple[int, ...]:
    """An option holding one or more positive integers: an int, a list of them, or a
    comma-separated string (``"2,4,8"``, as the command line gives it)."""
    if isinstance(raw, str):
        raw = [part for part in raw.replace(" ", "").split(",") if part]
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise UsageError(f"{what} must be one or more positive integers, got {raw!r}")
    return tuple(_positive_int(value, what) for value in raw)


def _padding(value: Any, extractor: str) -> str:
    """``value`` as one of :data:`PADDINGS` (``"zero"`` means ``"zeros"``).

    Raises:
        UsageError: ``value`` is none of them; the message names ``extractor``.
    """
    if str(value).lower() == "zero":
        return "zeros"
    return check_choice(value, PADDINGS, owner=f"extractor {extractor!r}", name="padding")


class _TimeConv(nn.Module):
    """One random conv over time, optionally on input smoothed over ``pool`` frames.

    Receptive field ``span = pool · taps`` frames (``pool = 1``: a dense kernel).
    """

    def __init__(self, in_channels: int, filters: int, taps: int, pool: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.taps = taps
        self.pool = pool
        self.span = taps * pool
        self.weight = nn.Parameter(_xavier_relu((filters, in_channels, taps), generator),
                                   requires_grad=False)

    def forward(self, x: torch.Tensor, padding: str) -> torch.Tensor:
        if padding == "valid" and x.shape[-1] < self.span:
            raise UsageError(
                f"a kernel spanning {self.span} frames does not fit a signal of "
                f"{x.shape[-1]} frames with padding 'valid'; use padding 'zeros', "
                "'reflect' or 'circular', smaller widths, or a longer signal")
        x = _pad_time(x, self.span - 1, padding)
        if self.pool > 1:
            x = F.avg_pool1d(x, kernel_size=self.pool, stride=1)
        return F.conv1d(x, self.weight, dilation=self.pool)


class UlyanovExtractor(FeatureExtractor):
    """One random ``Conv1d`` over time + ReLU (Ulyanov & Lebedev 2016).

    Input ``(N, F, frames)``; output ``conv`` and ``relu`` maps ``(N, filters, frames')``
    with ``frames' = frames`` (``zero``/``circular`` padding) or ``frames - width + 1``
    (``valid``). Defaults: 4096 filters of width 11 frames, texture and content layer
    ``relu``.
    """

    available_layers: tuple[str, ...] = ("spectrum", "conv", "relu")
    default_texture_layers: tuple[str, ...] = ("relu",)
    default_content_layers: tuple[str, ...] = ("relu",)
    spatial_dims: ClassVar[int] = 1

    def __init__(self, in_channels: int, *, filters: int = 4096, width: int = 11,
                 padding: str = "zeros", seed: int = 0,
                 layers: Sequence[str] | None = None) -> None:
        super().__init__(layers)
        self.in_channels = in_channels
        self.padding = _padding(padding, "ulyanov")
        generator = torch.Generator().manual_seed(seed)
        self.conv = _TimeConv(in_channels, filters, width, 1, generator)

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        _check_input(x, self.in_channels)
        out: dict[str, torch.Tensor] = {}
        if "spectrum" in layers:
            out["spectrum"] = x
        if "conv" not in layers and "relu" not in layers:
            return out
        conv = self.conv(x, self.padding)
        if "conv" in layers:
            out["conv"] = conv
        if "relu" in layers:
            out["relu"] = F.relu(conv)
        return out


class MultiKernelExtractor(FeatureExtractor):
    """A bank of single-layer random nets, one per kernel width (Antognini et al. 2019).

    Input ``(N, F, frames)``. Layer ``w<width>`` is ``ReLU(conv_width(x))`` of shape
    ``(N, filters, frames')`` (``frames' = frames`` unless padding is ``valid``); ``all``
    concatenates every width's maps along channels (with ``valid`` padding each is
    cropped to the common centre); ``spectrum`` is ``x`` itself. Each width has its own
    weights; only the widths needed are computed. Defaults: widths 2, 4, …, 128 frames,
    256 filters each, circular padding, texture layers ``spectrum`` + ``all``, content
    layers ``w2, w4``.
    """

    spatial_dims: ClassVar[int] = 1
    default_widths: ClassVar[tuple[int, ...]] = (2, 4, 8, 16, 32, 64, 128)

    def __init__(self, in_channels: int, *, widths: Sequence[int] = default_widths,
                 filters: int = 256, padding: str = "circular", max_dense_width: int = 16,
                 seed: int = 0, layers: Sequence[str] | None = None) -> None:
        widths = tuple(widths)
        if not widths:
            raise UsageError("multikernel needs at least one width")
        if len(set(widths)) != len(widths):
            raise UsageError(f"multikernel widths repeat: {widths}")
        names = tuple(f"w{w}" for w in widths)
        # Instance attributes shadow the class defaults before the base class checks layers.
        self.available_layers = ("spectrum", *names, "all")
        self.default_texture_layers = ("spectrum", "all")
        self.default_content_layers = tuple(n for n, w in zip(names, widths, strict=True)
                                            if w <= 4) or names[:1]
        super().__init__(layers)
        self.in_channels = in_channels
        self.widths = widths
        self.padding = _padding(padding, "multikernel")
        self.nets = nn.ModuleDict()
        for index, (name, width) in enumerate(zip(names, widths, strict=True)):
            generator = torch.Generator().manual_seed(seed * 1009 + index)
            pool = max(1, math.ceil(width / max_dense_width))
            taps = width if pool == 1 else max_dense_width
            self.nets[name] = _TimeConv(in_channels, filters, taps, pool, generator)

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        _check_input(x, self.in_channels)
        wanted = tuple(self.nets) if "all" in layers else layers
        maps: dict[str, torch.Tensor] = {}
        for name in wanted:
            if name == "spectrum":
                continue
            net = self.nets[name]
            assert isinstance(net, _TimeConv)
            maps[name] = F.relu(net(x, self.padding))
        out = {name: maps[name] for name in layers if name not in ("all", "spectrum")}
        if "spectrum" in layers:
            out["spectrum"] = x
        if "all" in layers:
            frames = min(m.shape[-1] for m in maps.values())
            parts = [m[..., (m.shape[-1] - frames) // 2:][..., :frames] for m in maps.values()]
            out["all"] = torch.cat(parts, dim=1)
        return out


def _check_input(x: torch.Tensor, channels: int) -> None:
    if x.dim() != 3 or x.shape[1] != channels:
        raise UsageError(f"expected spectrogram input (N, {channels}, frames), "
                         f"got shape {tuple(x.shape)}")


def ulyanov_factory(config: ExtractorConfig, domain: Domain) -> UlyanovExtractor:
    """Build :class:`UlyanovExtractor` for ``domain`` from ``config``.

    Options: ``filters`` (4096), ``width`` (11 frames), ``padding`` (``"zeros"``).
    """
    options = dict(config.options)
    check_options(options, ULYANOV_OPTIONS, owner="extractor 'ulyanov'")
    if config.weights:
        raise UsageError("extractor 'ulyanov' has random weights; it takes no weights file")
    return UlyanovExtractor(
        _input_channels(domain),
        filters=_positive_int(options.get("filters", 4096), "filters"),
        width=_positive_int(options.get("width", 11), "width"),
        padding=str(options.get("padding", "zeros")),
        seed=config.seed, layers=config.layers)


def multikernel_factory(config: ExtractorConfig, domain: Domain) -> MultiKernelExtractor:
    """Build :class:`MultiKernelExtractor` for ``domain`` from ``config``.

    Options: ``widths`` (list of frame counts, or a comma-separated string), ``filters``
    (per width, 256), ``padding`` (``"circular"``), ``max_dense_width`` (16).
    """
    options = dict(config.options)
    check_options(options, MULTIKERNEL_OPTIONS, owner="extractor 'multikernel'")
    if config.weights:
        raise UsageError("extractor 'multikernel' has random weights; it takes no weights "
                         "file")
    widths = positive_ints(options.get("widths", MultiKernelExtractor.default_widths),
                           "widths")
    return MultiKernelExtractor(
        _input_channels(domain), widths=widths,
        filters=_positive_int(options.get("filters", 256), "filters"),
        padding=str(options.get("padding", "circular")),
        max_dense_width=_positive_int(options.get("max_dense_width", 16), "max_dense_width"),
        seed=config.seed, layers=config.layers)
