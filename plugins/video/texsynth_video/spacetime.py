"""``random-spacetime``: random filters over frames and over time, computed with FFTs.

A dynamic texture is described by two kinds of statistics (the two-stream idea of
Tesfaldet, Brubaker & Derpanis, 2018): what single frames look like (*appearance*) and
how they change (*dynamics*). Both come here from one layer of random filters followed
by a ReLU, the shallow random networks of Ustyuzhaninov et al. (2016) carried to clips,
so nothing is downloaded:

* **appearance** layers ``a<s>``: filters of one frame and ``s × s`` pixels, i.e. 2-D
  filters run on every frame. Their Gram matrices, pooled over all frames, are the
  frames' texture statistics;
* **dynamics** layers ``d<t>x<s>``: filters ``t`` frames deep and ``s × s`` pixels. A
  filter that spans frames responds to how a pattern moves (a random filter is a mixture
  of oriented spatio-temporal frequencies, i.e. of velocities), so their Grams hold the
  joint statistics of appearance and motion;
* **scales**: a layer named ``…@p`` (``a7@2``, ``d3x5@4``) runs on the clip averaged over
  ``p × p`` pixels (every frame kept), so its filters span ``p`` times as many pixels at
  ``1 / p²`` of the cost. The defaults, ``a3 d3x5`` at full resolution and ``a3 a7 d3x5
  d7x5`` at 2 and 4, cover 3 to 28 pixels and 3 to 7 frames, motions from a fraction of a
  pixel to several pixels per frame; 64 filters each.

Design choices, as for the image plugin's ``random-multiscale``:

* filters are standard normal from a generator seeded per layer shape (a layer's filters
  do not depend on which other layers are used), made zero-mean and unit-norm, with no
  bias;
* ``padding="circular"``: every axis is a torus, so outputs loop in time and tile in
  space; the exemplar's wrapped positions are left out of its statistics
  (:meth:`RandomSpacetimeExtractor.wrap_margin`, per axis: a filter one frame deep does
  not wrap in time);
* the correlation is done in the frequency domain (:func:`fft_conv3d`: the clip is
  transformed once, each filter's spectrum is cached, the 3 input channels are summed
  there), so a ``9×9×9`` filter costs what a ``1×3×3`` one does; filters with at most
  ``direct_max`` taps go through ``F.conv3d``, which is faster for them;
* the input (RGB in [0, 1]) is centred and scaled per channel with ImageNet's statistics
  (:meth:`preprocess`), so these filters see what the image plugin's do.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from texsynth.domain import Domain
from texsynth.errors import UsageError
from texsynth.extractor import ExtractorConfig, FeatureExtractor
from texsynth.validation import check_choice, check_options

__all__ = [
    "DEFAULT_APPEARANCE",
    "DEFAULT_DYNAMICS",
    "OPTIONS",
    "RandomSpacetimeExtractor",
    "build_random_spacetime",
    "circular_pool",
    "fft_conv3d",
    "kernel_spectrum3d",
    "layer_name",
    "layer_shape",
    "random_filters3d",
]

#: One-frame appearance filters: ``(pixels, pooling)``.
DEFAULT_APPEARANCE: tuple[tuple[int, int], ...] = ((3, 1), (3, 2), (7, 2), (3, 4), (7, 4))
#: Spatio-temporal dynamics filters: ``(frames, pixels, pooling)``.
DEFAULT_DYNAMICS: tuple[tuple[int, int, int], ...] = ((3, 5, 1), (3, 5, 2), (7, 5, 2),
                                                      (3, 5, 4), (7, 5, 4))
#: Filters per full-resolution layer. 64 against 32 (and no full-resolution ``a7``):
#: appearance score 1.40 against 1.49 on gravel_stream, 1.45 against 1.42 on grass_wind,
#: frame-to-frame change 1.12 / 1.19 of the exemplar's against 1.17 / 1.27, for 1.4 times
#: the time (16×128×128, 150 steps; ``benchmarks/RESULTS.md``, "Video: extractor
#: settings").
DEFAULT_FILTERS = 64
#: Filters per pooled layer: they cost ``1 / p²`` as much per filter.
DEFAULT_POOLED_FILTERS = 64
#: Largest pooling factor of a layer.
MAX_POOLING = 64
#: Filters per chunk of the frequency-domain correlation (smaller chunks stay in caches).
_CHUNK = 8
#: Filters with at most this many taps are convolved directly when ``method="auto"``.
DEFAULT_DIRECT_MAX = 27
_METHODS = ("auto", "fft", "direct")
_OWNER = "extractor 'random-spacetime'"
#: ImageNet's per-channel mean and standard deviation of RGB in [0, 1].
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_APPEARANCE = re.compile(r"^(\d+)(?:@(\d+))?$")
_DYNAMICS = re.compile(r"^(\d+)x(\d+)(?:@(\d+))?$")

#: Options (``ExtractorConfig.options``) with one-line help, as registered.
OPTIONS: dict[str, str] = {
    "appearance": "one-frame filters PIXELS[@POOLING], odd sizes, e.g. 3:7:7@2 (default "
                  "3:3@2:7@2:3@4:7@4; 'none' for no appearance layers)",
    "dynamics": "spatio-temporal filters FRAMESxPIXELS[@POOLING], odd sizes, e.g. 3x5:5x5@2 "
                "(default 3x5:3x5@2:7x5@2:3x5@4:7x5@4; 'none' for none)",
    "filters": "random filters per full-resolution layer (default 64)",
    "pooled_filters": "random filters per pooled layer (…@p; default 64)",
    "method": "auto (default: direct up to direct_max taps, FFT above), fft or direct",
    "direct_max": "most taps (frames x pixels x pixels) method=auto convolves directly "
                  "(default 27)",
}
#: Spectra are cached for this many input shapes (exemplar and output, at every pooling).
_CACHED_SHAPES = 8


#: A filter shape: ``(frames, pixels, pooling)``.
Shape = tuple[int, int, int]


def layer_name(shape: Shape) -> str:
    """``a<pixels>`` for one-frame filters, ``d<frames>x<pixels>`` for deeper ones, with
    ``@<pooling>`` when the layer runs on a pooled clip.

    >>> layer_name((1, 7, 1)), layer_name((3, 5, 4))
    ('a7', 'd3x5@4')
    """
    frames, pixels, pooling = shape
    base = f"a{pixels}" if frames == 1 else f"d{frames}x{pixels}"
    return base if pooling == 1 else f"{base}@{pooling}"


def layer_shape(name: str) -> Shape:
    """Inverse of :func:`layer_name`."""
    base, _, pooling = name.partition("@")
    scale = int(pooling) if pooling else 1
    if base.startswith("a"):
        return 1, int(base[1:]), scale
    frames, pixels = base[1:].split("x")
    return int(frames), int(pixels), scale


def _shape_seed(seed: int, frames: int, pixels: int) -> int:
    return (int(seed) * 1_000_003 + int(frames) * 104_729 + int(pixels) * 7_919) % (2**63 - 1)


def random_filters3d(count: int, channels: int, frames: int, pixels: int, seed: int
                     ) -> torch.Tensor:
    """Random zero-mean, unit-norm filters ``(count, channels, frames, pixels, pixels)``.

    Standard normal entries from a generator seeded by ``seed`` and the shape; each filter
    then loses its mean (over channels and taps) and is divided by its L2 norm.
    """
    gen = torch.Generator().manual_seed(_shape_seed(seed, frames, pixels))
    weight = torch.randn(count, channels, frames, pixels, pixels, generator=gen)
    weight = weight - weight.mean(dim=(1, 2, 3, 4), keepdim=True)
    norm = weight.flatten(1).norm(dim=1).clamp_min(1e-12)
    return weight / norm.view(-1, 1, 1, 1, 1)


def kernel_spectrum3d(weight: torch.Tensor, extents: Sequence[int]) -> torch.Tensor:
    """Spectrum ``(C, F, T, H, W // 2 + 1)`` of filters ``(F, C, t, s, s)`` (odd sizes)
    such that ``irfftn(sum_c rfftn(x)[:, c] * S[c])`` is their circular
    cross-correlation with ``x`` ``(N, C, T, H, W)``, centred like ``F.conv3d`` with
    circular padding of half the kernel. Kernels larger than the clip are folded (taps
    that wrap add up), which is exactly circular correlation at that size."""
    count, channels = weight.shape[:2]
    taps = tuple(int(t) for t in weight.shape[2:])
    index = []
    for axis, (size, extent) in enumerate(zip(taps, extents, strict=True)):
        place = (size // 2 - torch.arange(size, device=weight.device)) % int(extent)
        view = [1, 1, 1]
        view[axis] = size
        index.append(place.view(view).expand(*taps))
    grid = torch.zeros(*(int(e) for e in extents), channels, count, dtype=weight.dtype,
                       device=weight.device)
    grid.index_put_(tuple(index), weight.permute(2, 3, 4, 1, 0), accumulate=True)
    return torch.fft.rfftn(grid.permute(3, 4, 0, 1, 2), s=tuple(extents), dim=_AXES)


_AXES = (2, 3, 4)


class _SpectralConv3d(torch.autograd.Function):
    """``relu(irfftn(sum_c rfftn(x)[:, c] * S[c]))`` over chunks of filters, written into
    one preallocated output and rectified in place; only the output is kept for
    backward. Backward (the adjoint): mask by the ReLU, ``rfftn`` of the gradient, mix
    with ``conj(S)`` over filters and one ``irfftn`` of the 3 input channels."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
        extents = tuple(int(e) for e in x.shape[2:])
        spec_x = torch.fft.rfftn(x, dim=_AXES)
        count = int(spectrum.shape[1])
        out = torch.empty(x.shape[0], count, *extents, dtype=x.dtype, device=x.device)
        for start in range(0, count, _CHUNK):
            part = spectrum[:, start:start + _CHUNK]
            mixed = spec_x[:, 0, None] * part[0]
            for channel in range(1, spec_x.shape[1]):
                mixed.addcmul_(spec_x[:, channel, None], part[channel])
            torch.fft.irfftn(mixed, s=extents, dim=_AXES, out=out[:, start:start + _CHUNK])
        out.clamp_min_(0.0)
        ctx.save_for_backward(out, spectrum)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        out, spectrum = ctx.saved_tensors
        extents = tuple(int(e) for e in out.shape[2:])
        grad = torch.ops.aten.threshold_backward(grad, out, 0.0)
        total: torch.Tensor | None = None
        for start in range(0, out.shape[1], _CHUNK):
            spec = torch.fft.rfftn(grad[:, start:start + _CHUNK], dim=_AXES)
            conj = spectrum[:, start:start + _CHUNK].conj()
            part = torch.stack([(spec * conj[c]).sum(dim=1) for c in range(conj.shape[0])],
                               dim=1)
            total = part if total is None else total.add_(part)
        assert total is not None
        return torch.fft.irfftn(total, s=extents, dim=_AXES), None


def fft_conv3d(x: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
    """``relu`` of the circular cross-correlation of ``x`` ``(N, C, T, H, W)`` with
    filters given by their ``spectrum`` ``(C, F, T, H, W // 2 + 1)``
    (:func:`kernel_spectrum3d`): ``(N, F, T, H, W)``, differentiable in ``x``."""
    out: torch.Tensor = _SpectralConv3d.apply(x, spectrum)
    return out


def circular_pool(x: torch.Tensor, pooling: int) -> torch.Tensor:
    """``x`` ``(N, C, T, H, W)`` averaged over ``pooling × pooling`` pixels (frames kept):
    ``(N, C, T, ceil(H / p), ceil(W / p))``. Extents that ``pooling`` does not divide are
    first wrapped around to a multiple of it, so the result stays a torus."""
    if pooling == 1:
        return x
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % pooling, (-width) % pooling
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h, 0, 0), mode="circular")
    return F.avg_pool3d(x, (1, pooling, pooling))


def _parse_shapes(value: Any, name: str, pattern: re.Pattern[str], frames_given: bool
                  ) -> list[Shape]:
    """Shapes of option ``name``: ``'none'``, a ``:``-separated text or a list of texts."""
    if value in ("none", [], ()):
        return []
    items = value.split(":") if isinstance(value, str) else list(value)
    shapes: list[Shape] = []
    for item in items:
        match = pattern.match(str(item).strip())
        if match is None:
            form = "FRAMESxPIXELS[@POOLING]" if frames_given else "PIXELS[@POOLING]"
            raise UsageError(f"{_OWNER}: {name} filters are {form} (e.g. "
                             f"{'3x5:5x5@2' if frames_given else '3:7@2'}), got {item!r}")
        numbers = [int(g) if g is not None else 1 for g in match.groups()]
        frames, pixels, pooling = numbers if frames_given else (1, *numbers)
        if pixels % 2 == 0 or frames % 2 == 0 or max(frames, pixels) > 255 \
                or (frames_given and frames < 3):
            least = "3 frames and " if frames_given else ""
            raise UsageError(f"{_OWNER}: {name} filters need odd sizes of at least "
                             f"{least}at most 255, got {item!r}")
        if not 1 <= pooling <= MAX_POOLING:
            raise UsageError(f"{_OWNER}: pooling must be from 1 to {MAX_POOLING}, got "
                             f"{item!r}")
        shapes.append((frames, pixels, pooling))
    return shapes


def parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` of ``random-spacetime`` checked and completed with the defaults."""
    check_options(options, OPTIONS, owner=_OWNER)
    appearance = _parse_shapes(options.get("appearance", [
        layer_name((1, s, p))[1:] for s, p in DEFAULT_APPEARANCE]), "appearance", _APPEARANCE,
        False)
    dynamics = _parse_shapes(options.get("dynamics", [
        layer_name(shape)[1:] for shape in DEFAULT_DYNAMICS]), "dynamics", _DYNAMICS, True)
    shapes = appearance + dynamics
    if not shapes:
        raise UsageError(f"{_OWNER}: no layers (appearance and dynamics are both 'none')")
    if len(set(shapes)) != len(shapes):
        raise UsageError(f"{_OWNER}: a filter shape is given twice")
    filters = options.get("filters", DEFAULT_FILTERS)
    pooled = options.get("pooled_filters", DEFAULT_POOLED_FILTERS)
    direct_max = options.get("direct_max", DEFAULT_DIRECT_MAX)
    for name, value, most in (("filters", filters, 4096), ("pooled_filters", pooled, 4096),
                              ("direct_max", direct_max, 10**6)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise UsageError(f"{_OWNER}: {name} must be an integer from 1 to {most}, got "
                             f"{value!r}")
    method = check_choice(options.get("method", "auto"), _METHODS, owner=_OWNER,
                          name="method")
    return {"shapes": shapes, "filters": filters, "pooled_filters": pooled, "method": method,
            "direct_max": direct_max}


class RandomSpacetimeExtractor(FeatureExtractor):
    """One layer of random spatio-temporal filters at several shapes and scales, then ReLU.

    Input: ``(N, 3, T, H, W)``, clips with RGB in [0, 1]. Output: ``{name: (N, F, T,
    H / p, W / p)}`` per layer, ``p`` its pooling and ``F`` the option ``filters`` (or
    ``pooled_filters`` when ``p > 1``); circular padding, so full-resolution maps have
    the clip's extents. Default texture layers: all of them; default content layer:
    ``a3`` (where edges are, per frame).
    """

    spatial_dims = 3

    def __init__(self, layers: Sequence[str] | None = None, *, seed: int = 0,
                 options: Mapping[str, Any] | None = None) -> None:
        opts = parse_options(dict(options or {}))
        names = tuple(layer_name(shape) for shape in opts["shapes"])
        self.available_layers = names
        self.default_texture_layers = names
        self.default_content_layers = tuple(n for n in ("a3",) if n in names) or names[:1]
        super().__init__(layers)
        self.filters: int = opts["filters"]
        self.pooled_filters: int = opts["pooled_filters"]
        self.method: str = opts["method"]
        self.direct_max: int = opts["direct_max"]
        self.seed = int(seed)
        for name in self.layers:
            frames, pixels, pooling = layer_shape(name)
            count = self.filters if pooling == 1 else self.pooled_filters
            self.register_buffer(_buffer(name), random_filters3d(
                count, 3, frames, pixels, self.seed), persistent=False)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1, 1), persistent=False)
        self._spectra: OrderedDict[tuple[Any, ...], dict[str, torch.Tensor]] = OrderedDict()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] centred and scaled per channel (ImageNet's statistics)."""
        mean, std = self.mean, self.std
        assert isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)
        return (x - mean.to(x)) / std.to(x)

    def trim(self, layers: Sequence[str]) -> RandomSpacetimeExtractor:
        """Keep only ``layers`` and drop the other filters."""
        super().trim(layers)
        for name in self.available_layers:
            if name not in self.layers and hasattr(self, _buffer(name)):
                delattr(self, _buffer(name))
        self._spectra.clear()
        return self

    def wrap_margin(self, layer: str) -> tuple[int, int, int]:
        """Half the filter's extent per axis (time, height, width), in the layer's
        positions."""
        frames, pixels, _ = layer_shape(layer)
        return frames // 2, pixels // 2, pixels // 2

    def weight(self, layer: str) -> torch.Tensor:
        """The filters ``(F, 3, t, s, s)`` of ``layer``."""
        value = getattr(self, _buffer(layer))
        assert isinstance(value, torch.Tensor)
        return value

    def _apply(self, fn: Any, recurse: bool = True) -> RandomSpacetimeExtractor:
        self._spectra.clear()  # cached spectra would stay on the old device
        super()._apply(fn, recurse)
        return self

    def _spectrum(self, layer: str, extents: tuple[int, ...], dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
        key = (extents, dtype, device)
        cache = self._spectra.get(key)
        if cache is None:
            cache = {}
            self._spectra[key] = cache
            while len(self._spectra) > _CACHED_SHAPES:
                self._spectra.popitem(last=False)
        else:
            self._spectra.move_to_end(key)
        if layer not in cache:
            cache[layer] = kernel_spectrum3d(self.weight(layer).to(device, dtype), extents)
        return cache[layer]

    def _direct(self, layer: str, extents: tuple[int, ...]) -> bool:
        frames, pixels, _ = layer_shape(layer)
        if self.method != "auto":
            return self.method == "direct"
        fits = frames <= extents[0] and pixels <= min(extents[1:])
        return fits and frames * pixels * pixels <= self.direct_max

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        pooled: dict[int, torch.Tensor] = {}
        out: dict[str, torch.Tensor] = {}
        for name in layers:
            frames, pixels, pooling = layer_shape(name)
            if pooling not in pooled:
                pooled[pooling] = circular_pool(x, pooling)
            clip = pooled[pooling]
            extents = tuple(int(e) for e in clip.shape[2:])
            if self._direct(name, extents):
                pad = (pixels // 2,) * 4 + (frames // 2,) * 2
                out[name] = F.relu(F.conv3d(F.pad(clip, pad, mode="circular"),
                                            self.weight(name).to(clip)))
            else:
                out[name] = fft_conv3d(clip, self._spectrum(name, extents, clip.dtype,
                                                            clip.device))
        return out


def _buffer(layer: str) -> str:
    return "filters_" + layer.replace("@", "_at")


def build_random_spacetime(config: ExtractorConfig, domain: Domain) -> RandomSpacetimeExtractor:
    """Factory registered as ``random-spacetime`` (``config.weights`` is refused: the
    filters are random, made from ``config.seed``)."""
    del domain
    if config.weights:
        raise UsageError(f"{_OWNER} has random filters; it loads no weights file")
    return RandomSpacetimeExtractor(config.layers, seed=config.seed, options=config.options)
