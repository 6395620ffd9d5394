"""``random-multiscale``: one layer of random filters at several sizes, computed with FFTs.

After Ustyuzhaninov, Brendel, Gatys & Bethge (2016), "Texture synthesis using shallow
convolutional networks with random filters": a single convolutional layer whose filters
are random, at kernel sizes from 3 to 55 pixels, followed by a ReLU, already gives
Gram-matrix textures comparable to VGG19's, without any training or download.

Design choices here:

* filters are drawn from a standard normal with a seeded generator per kernel size (so a
  size's filters do not depend on which other sizes are used), made **zero-mean** (over
  channels and taps: a flat grey patch gives no response, so brightness is set by the
  start image rather than dominating the large kernels) and scaled to **unit L2 norm**
  (every size responds to white noise with the same variance, so sizes contribute
  comparably under ``"chw"`` Gram normalisation);
* 64 filters per size by default (the paper used 128: ``options["filters"]``), no bias,
  ReLU after the convolution;
* one output layer per kernel size, named ``k3, k5, ..., k55``, so Grams and layer
  weights are per size;
* the convolution is a cross-correlation (like ``F.conv2d``) done in the frequency domain
  with ``torch.fft.rfft2``/``irfft2``: the image is transformed once, multiplied by each
  filter's cached spectrum and summed over the 3 input channels there, so a 55×55 filter
  costs the same as a 3×3 one. Small kernels (``<= direct_max``, default 5) go through
  ``F.conv2d`` instead, which is faster for them on CPUs;
* ``padding="circular"`` (default): the output has the input's size and wraps around,
  so synthesised textures tile seamlessly; ``padding="valid"``: only positions where the
  whole kernel lies inside the image are kept (``(H - k + 1) × (W - k + 1)``);
* the input, RGB in [0, 1], is ImageNet-normalised first (:meth:`preprocess
  <RandomMultiscaleExtractor.preprocess>`). Random filters do not need it, but it is what
  the defaults here (filter count, content layers, the image domain's noise spread and
  loss weights) were tuned with, so results stay as they were when the image domain did
  this normalisation for every extractor.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from texsynth.domain import Domain
from texsynth.errors import UsageError
from texsynth.extractor import BlockGeometry, ExtractorConfig, FeatureExtractor
from texsynth.validation import check_choice, check_int_list, check_options

from .normalization import imagenet_normalize

__all__ = [
    "DEFAULT_FILTERS",
    "DEFAULT_SIZES",
    "OPTIONS",
    "RandomMultiscaleExtractor",
    "build_random_multiscale",
    "fft_conv2d",
    "random_filters",
]

#: Kernel sizes (pixels) of Ustyuzhaninov et al.
DEFAULT_SIZES: tuple[int, ...] = (3, 5, 7, 11, 15, 23, 37, 55)
#: Filters per kernel size. Ustyuzhaninov et al. used 128; 64 gave textures we could not
#: tell apart from 128's on bricks, gravel and grass at about a third of the cost (the
#: Gram matrices, ``O(F² · H · W)`` per size, dominate at 128 filters).
DEFAULT_FILTERS = 64
#: Largest kernel computed as a direct convolution when ``method="auto"``.
DEFAULT_DIRECT_MAX = 5
_PADDING = ("circular", "valid")
_METHODS = ("auto", "fft", "direct")
_OWNER = "extractor 'random-multiscale'"
#: Options of ``random-multiscale`` (``ExtractorConfig.options``) with one-line help, as
#: registered (``texsynth plugins`` shows them).
OPTIONS: dict[str, str] = {
    "sizes": "distinct odd kernel sizes in pixels, e.g. 3:5:7 "
             "(default 3:5:7:11:15:23:37:55)",
    "filters": "random filters per size: one positive int or one per size (default 64)",
    "padding": "circular (default; the output tiles) or valid (windows that wrap are "
               "left out)",
    "method": "auto (default: direct up to direct_max, FFT above), fft or direct",
    "direct_max": "largest kernel size method=auto convolves directly (default 5)",
}
#: Spectra are kept for this many input shapes: only the latest, since the exemplar is
#: seen once and the output size for the rest of a run. They take
#: ``8 · 3 · F · H · (W / 2 + 1)`` bytes per kernel size.
_CACHED_SHAPES = 1
#: Bytes of complex spectra processed per chunk of filters: chunks that stay in the CPU's
#: caches make the product and inverse FFT about twice as fast as one big batch.
_CHUNK_BYTES = 2 << 20


def _size_seed(seed: int, size: int) -> int:
    """A generator seed for the filters of one kernel size."""
    return (int(seed) * 1_000_003 + int(size) * 7_919) % (2**63 - 1)


def random_filters(count: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Random zero-mean, unit-norm filters ``(count, channels, size, size)``, float32.

    Entries are standard normal from ``torch.Generator().manual_seed(...)`` of ``seed``
    and ``size``; each filter then has its mean (over channels and taps) removed and is
    divided by its L2 norm.
    """
    gen = torch.Generator().manual_seed(_size_seed(seed, size))
    weight = torch.randn(count, channels, size, size, generator=gen)
    if weight[0].numel() > 1:
        weight = weight - weight.mean(dim=(1, 2, 3), keepdim=True)
    norm = weight.flatten(1).norm(dim=1).clamp_min(1e-12)
    return weight / norm.view(-1, 1, 1, 1)


def kernel_spectrum(weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Spectrum ``(C, F, H, W // 2 + 1)`` of filters ``(F, C, k, k)`` (odd ``k``) such
    that ``irfft2(sum_c rfft2(x)[:, c] * S[c])`` is their circular cross-correlation with
    ``x``, centred like ``F.conv2d`` with ``k // 2`` circular padding.

    Kernels larger than the image are folded (taps that wrap land on the same pixel and
    add up), which is exactly circular correlation at that size.
    """
    count, channels, size, _ = weight.shape
    half = size // 2
    taps = torch.arange(size, device=weight.device)
    rows = ((half - taps) % height).view(size, 1).expand(size, size)
    cols = ((half - taps) % width).view(1, size).expand(size, size)
    grid = torch.zeros(height, width, channels, count, dtype=weight.dtype,
                       device=weight.device)
    grid.index_put_((rows, cols), weight.permute(2, 3, 1, 0), accumulate=True)
    return torch.fft.rfft2(grid.permute(2, 3, 0, 1), s=(height, width)).contiguous()


def _mix(x_spec: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
    """``Y[n, f] = sum_c X[n, c] * S[c, f]``: ``(N, C, H, W')`` × ``(C, F, H, W')``."""
    mixed = x_spec[:, 0, None] * spectrum[0]
    for channel in range(1, x_spec.shape[1]):
        mixed.addcmul_(x_spec[:, channel, None], spectrum[channel])
    return mixed


class _SpectralConv(torch.autograd.Function):
    """Fused ``[relu](crop(irfft2(sum_c X[:, c] * S[c])))`` over filter chunks.

    Forward: ``X`` ``(N, C, H, W')`` is the input's ``rfft2``; each chunk ``S``
    ``(C, F_i, H, W')`` is mixed over channels, inverse-transformed and written into
    one preallocated output ``(N, F, H', W')`` (no concatenation), then rectified in
    place. Backward (the adjoint, chunk by chunk): mask by the ReLU, zero-pad the crop
    back, ``rfft2`` with ``1 / (H W)`` scaling and the one-sided doubling of the inner
    columns (the adjoint of ``irfft2``), then ``dX[n, c] = sum_f dY[n, f] * conj(S[c, f])``.
    """

    @staticmethod
    def forward(ctx: Any, x_spec: torch.Tensor, chunks: tuple[torch.Tensor, ...],
                height: int, width: int, crop: int, relu: bool) -> torch.Tensor:
        total = sum(int(chunk.shape[1]) for chunk in chunks)
        batch = x_spec.shape[0]
        out = torch.empty(batch, total, height - 2 * crop, width - 2 * crop,
                          dtype=x_spec.real.dtype, device=x_spec.device)
        start = 0
        for chunk in chunks:
            stop = start + int(chunk.shape[1])
            if crop:
                maps = torch.fft.irfft2(_mix(x_spec, chunk), s=(height, width))
                out[:, start:stop] = maps[..., crop: height - crop, crop: width - crop]
            else:  # straight into the output, no copy
                torch.fft.irfft2(_mix(x_spec, chunk), s=(height, width),
                                 out=out[:, start:stop])
            start = stop
        if relu:
            out.clamp_min_(0.0)
        ctx.chunks = chunks
        ctx.geometry = (height, width, crop, relu)
        ctx.save_for_backward(out if relu else None)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        height, width, crop, relu = ctx.geometry
        chunks: tuple[torch.Tensor, ...] = ctx.chunks
        if relu:
            (out,) = ctx.saved_tensors
            grad = torch.ops.aten.threshold_backward(grad, out, 0.0)  # ReLU's own
        if crop:
            full = grad.new_zeros(grad.shape[0], grad.shape[1], height, width)
            full[..., crop: height - crop, crop: width - crop] = grad
            grad = full
        doubled = width - (width // 2 + 1)
        grad_x: torch.Tensor | None = None
        start = 0
        for chunk in chunks:
            stop = start + int(chunk.shape[1])
            spec = torch.fft.rfft2(grad[:, start:stop], norm="forward")
            if doubled > 0:
                spec[..., 1: 1 + doubled] *= 2
            conj = chunk.conj()
            parts = torch.stack([(spec * conj[c]).sum(dim=1) for c in range(conj.shape[0])],
                                dim=1)
            grad_x = parts if grad_x is None else grad_x.add_(parts)
            start = stop
        return grad_x, None, None, None, None, None


def fft_conv2d(x: torch.Tensor, spectrum: torch.Tensor | Sequence[torch.Tensor], *,
               size: int | None = None, valid: bool = False, relu: bool = False,
               x_spectrum: torch.Tensor | None = None) -> torch.Tensor:
    """Circular cross-correlation of ``x`` ``(N, C, H, W)`` with filters given by their
    ``spectrum`` ``(C, F, H, W // 2 + 1)`` (see :func:`kernel_spectrum`), or a sequence
    of such chunks along ``F`` (processed one at a time, which is faster on CPUs).

    Returns ``(N, F, H, W)``; with ``valid=True`` (needs ``size``, the kernel size) only
    the ``(H - size + 1, W - size + 1)`` positions whose window does not wrap are kept,
    which equals an unpadded ``F.conv2d``; ``relu=True`` rectifies the result (fused,
    saving memory). ``x_spectrum`` (``rfft2(x)``) may be passed to share one transform
    between several filter banks. Differentiable in ``x``.
    """
    height, width = int(x.shape[-2]), int(x.shape[-1])
    spec_x = torch.fft.rfft2(x) if x_spectrum is None else x_spectrum
    chunks = (spectrum,) if isinstance(spectrum, torch.Tensor) else tuple(spectrum)
    crop = 0
    if valid:
        if size is None:
            raise ValueError("valid=True needs the kernel size")
        crop = size // 2
    out: torch.Tensor = _SpectralConv.apply(spec_x, chunks, height, width, crop, relu)
    return out


class RandomMultiscaleExtractor(FeatureExtractor):
    """One layer of random filters at several kernel sizes, then ReLU (no bias).

    Input: ``(N, 3, H, W)``, the image domain's signal (RGB in [0, 1]), which
    :meth:`preprocess` ImageNet-normalises, as the defaults were tuned with. Output:
    ``{"k<size>": (N, filters, H', W')}`` per kernel size, with ``H' = H`` for circular
    padding or ``H - size + 1`` for valid padding.

    Default texture layers: every size (``k3 … k55``). Default content layers:
    ``k3, k5, k7`` (the small kernels pin down where edges are; with the default
    weights ``k11`` or ``k23`` alone gave nearly the same stylisations). Weights:
    random (see :func:`random_filters`), 64 per size by default, seeded by ``seed``;
    nothing is downloaded. Only the sizes of the requested layers are built.

    Memory: the filter spectra for the current input size are cached, 24 bytes per
    filter and pixel (about 300 MB at 256 × 256 with the defaults); moving or casting
    the module, or :meth:`clear_cache`, drops them.

    Args:
        layers: layers :meth:`forward` returns by default (default: all sizes).
        sizes: odd kernel sizes, in pixels.
        filters: filters per size (one number, or one per size).
        padding: ``"circular"`` or ``"valid"``.
        method: ``"auto"`` (direct convolution up to ``direct_max``, FFT above),
            ``"fft"`` or ``"direct"``.
        direct_max: largest kernel size ``"auto"`` computes directly.
        seed: seed of the random filters.
        in_channels: input channels (3 for RGB).
        normalize: apply ImageNet normalisation in :meth:`preprocess`; ``None`` (the
            default) means "when ``in_channels`` is 3".
    """

    default_content_layers: tuple[str, ...] = ("k3", "k5", "k7")

    def __init__(self, layers: Sequence[str] | None = None, *,
                 sizes: Sequence[int] = DEFAULT_SIZES,
                 filters: int | Sequence[int] = DEFAULT_FILTERS,
                 padding: str = "circular", method: str = "auto",
                 direct_max: int = DEFAULT_DIRECT_MAX, seed: int = 0,
                 in_channels: int = 3, normalize: bool | None = None) -> None:
        sizes = tuple(int(s) for s in sizes)
        names = tuple(f"k{s}" for s in sizes)
        counts = ([int(filters)] * len(sizes) if isinstance(filters, int)
                  else [int(f) for f in filters])
        self.available_layers = names
        self.default_texture_layers = names
        self.default_content_layers = tuple(
            n for n in type(self).default_content_layers if n in names) or names[:1]
        super().__init__(layers)
        self.sizes = sizes
        self.filters = dict(zip(names, counts, strict=True))
        self.padding = padding
        self.method = method
        self.direct_max = int(direct_max)
        self.seed = int(seed)
        self.normalize = in_channels == 3 if normalize is None else bool(normalize)
        self._size_of = dict(zip(names, sizes, strict=True))
        for name in self.layers:
            weight = random_filters(self.filters[name], in_channels, self._size_of[name],
                                    self.seed)
            self.register_buffer(f"weight_{name}", weight, persistent=False)
        self._spectra: OrderedDict[tuple[Any, ...], dict[str, list[torch.Tensor]]] = (
            OrderedDict())

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet normalisation of RGB ``(N, 3, H, W)`` in [0, 1] (unless built with
        ``normalize=False``); same shape, differentiable.

        The random filters do not need it, but this extractor's defaults were tuned on
        ImageNet-normalised input (the image domain applied it before extractors owned
        their preprocessing), and keeping it keeps results bit-identical.
        """
        return imagenet_normalize(x) if self.normalize else x

    def trim(self, layers: Sequence[str]) -> RandomMultiscaleExtractor:
        """Keep only ``layers``: the filters of the other sizes are dropped (each size's
        filters are seeded on their own, so the kept ones are unchanged)."""
        super().trim(layers)
        for name in self.available_layers:
            if name not in self.layers and hasattr(self, f"weight_{name}"):
                delattr(self, f"weight_{name}")
        self.clear_cache()
        return self

    def wrap_margin(self, layer: str) -> int:
        """``size // 2`` for layer ``k<size>`` with circular padding (the positions whose
        window wraps around), 0 with valid padding."""
        return self._size_of[layer] // 2 if self.padding == "circular" else 0

    def block_geometry(self, layers: Sequence[str]) -> BlockGeometry | None:
        """Blocks for ``layers`` with circular padding: a halo of half the largest
        kernel, no alignment (every map has the input's size), wrapping crops. Valid
        padding has no blocks (its maps are smaller than the input)."""
        if self.padding != "circular":
            return None
        halo = max(self._size_of[name] for name in layers) // 2
        return BlockGeometry(halo=halo, align=1, strides=dict.fromkeys(layers, 1),
                             wrap=True)

    def weight(self, layer: str) -> torch.Tensor:
        """Filters ``(F, C, k, k)`` of ``layer`` (``"k<size>"``)."""
        value = getattr(self, f"weight_{layer}", None)
        if not isinstance(value, torch.Tensor):
            raise UsageError(f"layer {layer} was not built in this extractor (built: "
                             f"{', '.join(self.layers)}); rebuild it with that layer")
        return value

    def _apply(self, fn: Any, recurse: bool = True) -> RandomMultiscaleExtractor:
        # Moving or casting the module invalidates the cached spectra.
        self._spectra = OrderedDict()
        return super()._apply(fn, recurse)

    def clear_cache(self) -> None:
        """Drop the cached filter spectra (they are rebuilt on the next call)."""
        self._spectra.clear()

    def spectrum(self, layer: str, height: int, width: int, dtype: torch.dtype,
                 device: torch.device) -> list[torch.Tensor]:
        """Cached :func:`kernel_spectrum` of ``layer``'s filters for an ``H × W`` input,
        as chunks ``(C, F_chunk, H, W // 2 + 1)`` along the filter axis."""
        key = (height, width, dtype, device)
        bank = self._spectra.get(key)
        if bank is None:
            bank = {}
            self._spectra[key] = bank
            while len(self._spectra) > _CACHED_SHAPES:
                self._spectra.popitem(last=False)
        else:
            self._spectra.move_to_end(key)
        if layer not in bank:
            with torch.no_grad():
                weight = self.weight(layer).to(device=device, dtype=dtype)
                per_map = height * (width // 2 + 1) * 2 * weight.element_size()
                chunk = max(1, _CHUNK_BYTES // per_map)
                bank[layer] = [kernel_spectrum(part, height, width)
                               for part in weight.split(chunk, dim=0)]
        return bank[layer]

    def _use_direct(self, size: int, height: int, width: int) -> bool:
        if self.method == "fft":
            return False
        fits = size // 2 <= min(height, width) if self.padding == "circular" else True
        if self.method == "direct":
            return fits
        return size <= self.direct_max and fits

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        height, width = int(x.shape[-2]), int(x.shape[-1])
        valid = self.padding == "valid"
        out: dict[str, torch.Tensor] = {}
        x_spec: torch.Tensor | None = None
        for name in layers:
            size = self._size_of[name]
            if valid and (size > height or size > width):
                raise UsageError(
                    f"input {width}x{height} is smaller than the {size}x{size} kernel of "
                    f"layer {name}; use circular padding or drop that layer"
                )
            if self._use_direct(size, height, width):
                weight = self.weight(name).to(dtype=x.dtype)
                if valid:
                    maps = F.conv2d(x, weight)
                else:
                    half = size // 2
                    maps = F.conv2d(F.pad(x, (half, half, half, half), mode="circular"),
                                    weight)
                # the convolution's backward needs only its input, so rectify in place
                out[name] = F.relu(maps, inplace=True)
            else:
                if x_spec is None:
                    x_spec = torch.fft.rfft2(x)
                spec = self.spectrum(name, height, width, x.dtype, x.device)
                out[name] = fft_conv2d(x, spec, size=size, valid=valid, relu=True,
                                       x_spectrum=x_spec)
        return out


def _int_list(value: Any, what: str) -> list[int]:
    return check_int_list(value, owner=_OWNER, name=what)


def _parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :class:`RandomMultiscaleExtractor` from ``config.options``."""
    check_options(options, OPTIONS, owner=_OWNER)
    sizes = _int_list(options.get("sizes", DEFAULT_SIZES), "sizes")
    if not sizes or any(s < 1 or s % 2 == 0 for s in sizes) or len(set(sizes)) != len(sizes):
        raise UsageError(f"{_OWNER}: sizes must be distinct odd positive integers, "
                         f"got {sizes}")
    raw = options.get("filters", DEFAULT_FILTERS)
    counts = _int_list(raw, "filters")
    if len(counts) == 1:
        filters: int | list[int] = counts[0]
    elif len(counts) == len(sizes):
        filters = counts
    else:
        raise UsageError(f"{_OWNER}: filters must be one number or one per size "
                         f"({len(sizes)}), got {len(counts)}")
    if any(c < 1 for c in counts):
        raise UsageError(f"{_OWNER}: filters must be positive")
    padding = check_choice(options.get("padding", "circular"), _PADDING, owner=_OWNER,
                           name="padding")
    method = check_choice(options.get("method", "auto"), _METHODS, owner=_OWNER,
                          name="method")
    direct_max = _int_list(options.get("direct_max", DEFAULT_DIRECT_MAX), "direct_max")[0]
    return {"sizes": sizes, "filters": filters, "padding": padding, "method": method,
            "direct_max": direct_max}


def build_random_multiscale(config: ExtractorConfig, domain: Domain
                            ) -> RandomMultiscaleExtractor:
    """Factory for ``random-multiscale`` (Ustyuzhaninov et al. 2016).

    Defaults: kernel sizes 3, 5, 7, 11, 15, 23, 37, 55 with 64 random zero-mean,
    unit-norm filters each, circular padding, ReLU; texture layers ``k3 … k55``,
    content layers ``k3, k5, k7``; filters seeded by ``config.seed``. Options:
    ``sizes`` (odd ints; a list, or ``"3:5:7"`` on the command line), ``filters`` (one
    int or one per size), ``padding`` (``circular``, the default: the output tiles;
    ``valid``: statistics leave out positions whose window wraps around, an option for
    exemplars that do not tile, though on such a one (bark) both looked alike),
    ``method`` (``auto``/``fft``/``direct``), ``direct_max``. Takes no weights file.
    """
    del domain
    if config.weights:
        raise UsageError("extractor 'random-multiscale' uses random filters and takes no "
                         "--weights")
    opts = _parse_options(config.options)
    net = RandomMultiscaleExtractor(config.layers, seed=config.seed, **opts)
    net.freeze()
    return net
