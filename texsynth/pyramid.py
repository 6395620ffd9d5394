"""Multi-scale generator of Ulyanov et al. ("Texture Networks", 2016), over 1 or 2 axes.

The network turns a pyramid of ``K`` noise tensors into a signal::

    z_{K-1} ─block─▶ up×2 ─norm─┐
    z_{K-2} ─block──────────norm─┴─concat─block─▶ up×2 ─norm─┐
      ...                                                   ...
    z_0     ─block──────────────────────────────────────norm─┴─concat─block─▶ 1×1 conv ─▶ range

* scale ``k`` (0 = finest) has extent ``ceil(size / 2**k)`` along every axis; its noise has
  ``noise_channels`` channels drawn uniformly from [0, 1) as in the authors' code (see
  *Noise* below for how it is drawn);
* every *block* is conv 3 → norm → LeakyReLU, conv 3 → norm → LeakyReLU,
  conv 1 → norm → LeakyReLU; the branch of one scale has ``channels`` (8) maps;
* branches are joined coarse to fine by nearest ×2 upsampling (cropped to the finer
  extent when it is odd), normalisation of both inputs and channel concatenation, so the
  width grows by ``channels`` per joined scale (8, 16, ..., 8·K);
* a final 1×1 convolution maps to the signal's channels and a scaled sigmoid maps the
  result into ``value_range`` (the domain's range, e.g. [0, 1] for images).

The defaults follow the authors' ``pyramid`` model (six scales with ratios 32 … 1,
8 filters per branch, uniform noise with 3 channels, LeakyReLU with slope 0.01, batch
normalisation). ``norm="instance"`` gives the instance normalisation of *Improved Texture
Networks* (Ulyanov et al. 2017), which also removes the train/eval difference of batch
normalisation (batch norm uses running statistics in eval mode, i.e. when sampling).

**Stylisation.** With ``content_channels > 0`` (registered as ``pyramid-stylize``), the
content signal, downsampled by area averaging to each scale's extent, is concatenated with
that scale's noise, as in Ulyanov et al.'s stylisation network.

**Sizes and tileability.** Any extent larger than ``2**(K-1)`` can be generated (the
coarsest scale needs at least 2 positions for normalisation and padding), whatever the
training size. With ``padding="circular"`` (the default) every convolution sees its scale
as a torus, so the output wraps around without a seam and the network cannot learn
positions from the borders. When an extent is a multiple of ``2**(K-1)`` the construction
is exactly equivariant to circular shifts by ``2**(K-1)`` and the wrap is statistically
like any interior position. For other extents the ×2 upsampling of a coarse scale is
cropped by one position where the finer extent is odd: the wrap stays continuous (the
last coarse cell meets the first, as on the coarse torus) but that one cell is half as
wide, a small irregularity of the grid rather than a seam. ``reflect`` and ``zeros``
padding give outputs that do not tile.

**Noise.** The noise is *counter-based*: the value of sample ``n``, scale ``k``, channel
``c`` at position ``(y, x)`` is a hash (splitmix64) of a 64-bit key and those five
numbers, so any region of the noise can be made on its own, in any order, without
materialising the rest. :meth:`PyramidGenerator.make_noise` draws the key from the
``torch.Generator`` it is given (two 32-bit draws per call, so a seeded training stream
moves on by the same amount every step) and :meth:`PyramidGenerator.noise_region` makes
any window of it; positions are taken modulo the scale's extent, so the noise of an
output of size ``S`` is periodic with period ``S``, like the torus the circular
convolutions see. Uniform noise uses the top
24 bits of the hash (exact in float32, bit-identical on every device); normal noise uses
Box–Muller on the top and bottom 24 bits (equal across devices up to float rounding).
Sample ``n`` of a batch does not depend on the batch size.

**Regions (tiled sampling).** :meth:`PyramidGenerator.forward_region` computes any window
of the output that :meth:`~PyramidGenerator.forward` would give for a size, from the
noise of that window plus a margin (*halo*) per scale that follows from the architecture:
every 3-tap convolution needs one more position on each side, so a branch or join block
(two 3-taps and a 1-tap) needs 2; at scale ``k`` the join needs its block's 2 around the
window, the branch 2 more around that, and the coarser scale the positions the nearest
×2 upsampling reads for the widened window (see :meth:`PyramidGenerator.halo`).
Convolutions run without padding on the widened windows, so the result is exact: with
batch normalisation in eval mode (running statistics, pointwise) a window equals the
same positions of the whole output up to float rounding. Instance normalisation needs
statistics over the whole extent of each scale; :mod:`texsynth.tiled` computes them in
passes over tiles first and hands them in as ``norm_stats``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UsageError
from .generators import Generator, GeneratorConfig

__all__ = ["DEFAULT_OPTIONS", "NormStats", "PyramidGenerator", "Region", "create_pyramid",
           "create_pyramid_stylize", "noise_lane", "scale_sizes"]

#: Options of the ``pyramid`` generators and their defaults (see the module docstring).
DEFAULT_OPTIONS: dict[str, Any] = {
    "num_scales": 6,          # authors' code: ratios 32, 16, 8, 4, 2, 1
    "channels": 8,            # filters per branch (paper: 8)
    "noise_channels": 3,      # authors' code: 3 uniform noise channels per scale
    "noise": "uniform",       # "uniform" in [0, 1) (authors) or "normal"
    "padding": "circular",    # "circular", "reflect" or "zeros"
    "norm": "batch",          # "batch" (2016 paper) or "instance" (Improved TN, 2017)
    "negative_slope": 0.01,   # LeakyReLU slope (Torch's nn.LeakyReLU default)
    "value_range": [0.0, 1.0],  # output range; the trainer passes the domain's
}
_PADDINGS = ("circular", "reflect", "zeros")
_NORMS = ("batch", "instance")
_NOISES = ("uniform", "normal")


#: A window of one scale: ``(start, stop)`` per spatial axis, in positions of that scale.
#: Positions may lie outside ``[0, extent)``: they wrap around (circular padding).
Region = tuple[tuple[int, int], ...]
#: Whole-extent statistics of instance-norm layers for :meth:`PyramidGenerator.forward_region`:
#: ``{module: (mean, var)}``, each ``(N, C)`` (biased variance, as instance norm uses).
NormStats = dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]

# -- counter-based noise -----------------------------------------------------------------
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d)
_CONVS = (nn.Conv1d, nn.Conv2d)


def _signed64(value: int) -> int:
    """The int64 with the same 64 bits as ``value`` (torch tensors hold signed words)."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _mix64(value: int) -> int:
    """splitmix64's finaliser on a Python int: a bijection of 64-bit words."""
    z = value & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _shr(z: torch.Tensor, bits: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Logical right shift of int64 words (``>>`` on int64 tensors is arithmetic)."""
    shifted = torch.bitwise_right_shift(z, bits, out=out) if out is not None else z >> bits
    return shifted.bitwise_and_((1 << (64 - bits)) - 1)


def _mix64_(z: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`_mix64` on every int64 word of ``z``, in place (multiplication wraps);
    ``scratch`` (like ``z``) avoids allocating temporaries."""
    scratch = torch.empty_like(z) if scratch is None else scratch
    for bits, factor in ((30, _MIX1), (27, _MIX2), (31, None)):
        z.bitwise_xor_(_shr(z, bits, out=scratch))
        if factor is not None:
            z.mul_(_signed64(factor))
    return z


def noise_lane(key: int, sample: int, scale: int, channel: int) -> int:
    """The 64-bit seed of one (sample, scale, channel) plane of the noise of ``key``."""
    packed = ((sample & 0xFFFFFFFF) << 32) | ((scale & 0xFF) << 24) | (channel & 0xFFFFFF)
    return _mix64(_mix64(key) ^ _mix64(packed ^ _GOLDEN))


def _counter_noise(key: int, samples: Sequence[int], scale: int, channels: int,
                   coords: Sequence[torch.Tensor], kind: str) -> torch.Tensor:
    """Noise ``(len(samples), channels, *[len(c) for c in coords])`` at the positions
    ``coords`` (one int64 vector per axis, already wrapped into the scale's extent).

    Position ``(y, x)`` (or ``t``) is the counter ``y·2**32 + x`` of a splitmix64 stream
    seeded with :func:`noise_lane`; the hash is computed in int64 (wrapping) arithmetic on
    the coordinates' device, in place.
    """
    if len(coords) == 1:
        counter = coords[0].clone()
    elif len(coords) == 2:
        counter = (coords[0][:, None] << 32) | coords[1][None, :]
    else:  # pragma: no cover - the generator checks its dims
        raise UsageError("counter noise supports 1 or 2 axes")
    base = (counter + 1).mul_(_signed64(_GOLDEN))
    lanes = torch.tensor([[_signed64(noise_lane(key, s, scale, c)) for c in range(channels)]
                          for s in samples], dtype=torch.int64, device=counter.device)
    z = base.expand(len(samples), channels, *base.shape) \
        + lanes.view(len(samples), channels, *([1] * base.dim()))
    scratch = torch.empty_like(z)
    _mix64_(z, scratch)
    high = _shr(z, 40, out=scratch).to(torch.float32)  # 24 bits: exact in float32
    if kind == "uniform":
        return high.mul_(2.0 ** -24)
    # Box-Muller on two independent 24-bit halves.
    radius = high.add_(1.0).mul_(2.0 ** -24).log_().mul_(-2.0).sqrt_()
    angle = z.bitwise_and_(0xFFFFFF).to(torch.float32).mul_(2.0 * math.pi * 2.0 ** -24)
    return radius.mul_(angle.cos_())


def _conv_margin(layers: Iterable[nn.Module]) -> int:
    """Positions a stack of "same" convolutions reads beyond its output on each side."""
    margin = 0
    for layer in layers:
        if isinstance(layer, _CONVS):
            kernel, dilation = int(layer.kernel_size[0]), int(layer.dilation[0])
            margin += (kernel - 1) * dilation // 2
    return margin


def _grow(region: Region, margin: int) -> Region:
    return tuple((lo - margin, hi + margin) for lo, hi in region)


def _coarse_index(positions: torch.Tensor, fine: int, coarse: int) -> torch.Tensor:
    """Unwrapped coarse positions the nearest ×2 upsampling reads for fine ``positions``.

    On the torus of extent ``fine``, position ``p = m·fine + r`` reads coarse position
    ``r // 2`` of period ``m``, i.e. unwrapped ``m·coarse + r // 2`` (this is the
    upsample-and-crop of :meth:`PyramidGenerator.forward`, including the half-wide last
    cell when ``fine`` is odd).
    """
    period = torch.div(positions, fine, rounding_mode="floor")
    return period * coarse + torch.div(positions - period * fine, 2, rounding_mode="floor")


def _resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise UsageError(f"unknown pyramid generator option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(DEFAULT_OPTIONS)}")
    opts = {**DEFAULT_OPTIONS, **options}
    for key in ("num_scales", "channels", "noise_channels"):
        value = opts[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"generator option {key} must be a positive integer, got {value!r}")
    for key, allowed in (("padding", _PADDINGS), ("norm", _NORMS), ("noise", _NOISES)):
        if opts[key] not in allowed:
            raise UsageError(f"generator option {key}={opts[key]!r}; use one of "
                             f"{', '.join(allowed)}")
    low, high = (float(v) for v in opts["value_range"])
    if not low < high:
        raise UsageError(f"generator option value_range must be [low, high] with low < high, "
                         f"got {opts['value_range']!r}")
    opts["value_range"] = [low, high]
    opts["negative_slope"] = float(opts["negative_slope"])
    return opts


def scale_sizes(size: Sequence[int], num_scales: int) -> list[tuple[int, ...]]:
    """Spatial extents of every scale, finest first: ``ceil(size / 2**k)`` per axis.

    >>> scale_sizes((37, 64), 3)
    [(37, 64), (19, 32), (10, 16)]
    """
    return [tuple(math.ceil(int(s) / 2**k) for s in size) for k in range(num_scales)]


class _Layers:
    """Conv/norm factories for one number of spatial dims."""

    def __init__(self, dims: int, padding: str, norm: str, slope: float) -> None:
        if dims not in (1, 2):
            raise UsageError(f"the pyramid generator supports 1 or 2 spatial dims, got {dims}")
        self.conv_class: type[nn.Module] = nn.Conv1d if dims == 1 else nn.Conv2d
        self.padding = padding
        self.norm_class: type[nn.Module]
        if norm == "batch":
            self.norm_class = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        else:
            self.norm_class = nn.InstanceNorm1d if dims == 1 else nn.InstanceNorm2d
        self.slope = slope

    def norm(self, channels: int) -> nn.Module:
        if self.norm_class in (nn.InstanceNorm1d, nn.InstanceNorm2d):
            return self.norm_class(channels, affine=True)
        return self.norm_class(channels)

    def block(self, in_channels: int, out_channels: int) -> nn.Sequential:
        """conv 3 → norm → act, conv 3 → norm → act, conv 1 → norm → act (no conv bias:
        the norm's shift replaces it)."""
        layers: list[nn.Module] = []
        for index, kernel in enumerate((3, 3, 1)):
            source = in_channels if index == 0 else out_channels
            layers += [
                self.conv_class(source, out_channels, kernel, padding=kernel // 2,
                                padding_mode=self.padding, bias=False),
                self.norm(out_channels),
                nn.LeakyReLU(self.slope),
            ]
        return nn.Sequential(*layers)


class _Join(nn.Module):
    """Normalise the upsampled coarse maps and the new branch, concatenate, run a block."""

    def __init__(self, layers: _Layers, coarse_channels: int, branch_channels: int) -> None:
        super().__init__()
        self.norm_coarse = layers.norm(coarse_channels)
        self.norm_branch = layers.norm(branch_channels)
        self.block = layers.block(coarse_channels + branch_channels,
                                  coarse_channels + branch_channels)

    def forward(self, coarse: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([self.norm_coarse(coarse), self.norm_branch(branch)], dim=1)
        out: torch.Tensor = self.block(joined)
        return out


def _crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Keep the first ``size`` positions of every spatial axis."""
    index = (slice(None), slice(None), *(slice(0, s) for s in size))
    return x[index]


class PyramidGenerator(Generator):
    """Ulyanov et al.'s multi-scale texture (and stylisation) generator.

    Built from a :class:`~texsynth.GeneratorConfig`; ``config.options`` takes the keys of
    :data:`DEFAULT_OPTIONS` and is stored back fully resolved, so a checkpoint names every
    setting. ``config.spatial_dims`` picks Conv1d (1) or Conv2d (2).

    Shapes: :meth:`make_noise` returns ``K`` tensors ``(N, noise_channels, *size_k)`` with
    ``size_k = ceil(size / 2**k)``; :meth:`forward` maps them (and, when
    ``content_channels > 0``, a content signal ``(N or 1, content_channels, *size)``) to
    ``(N, out_channels, *size)`` within ``value_range``.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        opts = _resolve_options(config.options)
        config = GeneratorConfig(name=config.name, spatial_dims=config.spatial_dims,
                                 out_channels=config.out_channels,
                                 content_channels=config.content_channels, options=opts)
        super().__init__(config)
        if config.out_channels < 1 or config.content_channels < 0:
            raise UsageError(f"bad generator channels: out {config.out_channels}, "
                             f"content {config.content_channels}")
        self.num_scales: int = opts["num_scales"]
        self.noise_channels: int = opts["noise_channels"]
        self.noise_kind: str = opts["noise"]
        self.low, self.high = opts["value_range"]
        width: int = opts["channels"]
        layers = _Layers(config.spatial_dims, opts["padding"], opts["norm"],
                         opts["negative_slope"])
        in_channels = self.noise_channels + config.content_channels
        #: ``branches[k]`` processes the inputs of scale ``k`` (0 = finest).
        self.branches = nn.ModuleList(layers.block(in_channels, width)
                                      for _ in range(self.num_scales))
        #: ``joins[k]`` merges the upsampled scales ``> k`` (``width·(K-1-k)`` maps) with
        #: branch ``k``.
        self.joins = nn.ModuleList(_Join(layers, width * (self.num_scales - 1 - k), width)
                                   for k in range(self.num_scales - 1))
        self.to_signal = layers.conv_class(width * self.num_scales, config.out_channels, 1)

    # -- typed access to the blocks -----------------------------------------------------
    def _branch_block(self, k: int) -> nn.Sequential:
        block = self.branches[k]
        assert isinstance(block, nn.Sequential)
        return block

    def _join(self, k: int) -> _Join:
        join = self.joins[k]
        assert isinstance(join, _Join)
        return join

    # -- sizes ------------------------------------------------------------------------
    def min_extent(self) -> int:
        """Smallest extent this generator can produce along any axis (``2**(K-1) + 1``)."""
        return 2 ** (self.num_scales - 1) + 1

    def scale_sizes(self, size: Sequence[int]) -> list[tuple[int, ...]]:
        """Extents of every scale for an output of ``size``, finest first (checked)."""
        size = tuple(int(s) for s in size)
        if len(size) != self.config.spatial_dims:
            raise UsageError(f"the generator makes signals with {self.config.spatial_dims} "
                             f"spatial axes; got size {size}")
        low = self.min_extent()
        if any(s < low for s in size):
            raise UsageError(
                f"size {size} is too small for a {self.num_scales}-scale generator: every "
                f"extent must be at least {low} (2**(K-1) + 1) so that the coarsest scale "
                "has 2 positions"
            )
        return scale_sizes(size, self.num_scales)

    # -- noise -------------------------------------------------------------------------
    def noise_key(self, generator: torch.Generator | None = None) -> int:
        """Draw the 64-bit key of one noise batch from ``generator`` (the global RNG when
        ``None``): two 32-bit draws, so a seeded stream moves on by the same amount every
        call."""
        device = generator.device if generator is not None else torch.device("cpu")
        high = int(torch.randint(0, 1 << 32, (1,), generator=generator, device=device))
        low = int(torch.randint(0, 1 << 32, (1,), generator=generator, device=device))
        return (high << 32) | low

    def noise_region(self, key: int, samples: Sequence[int], size: Sequence[int], scale: int,
                     region: Region, *, device: torch.device | str = "cpu") -> torch.Tensor:
        """Noise of scale ``scale`` over ``region`` for outputs of ``size``.

        Args:
            key: from :meth:`noise_key`.
            samples: sample numbers within the batch (``range(N)`` for a whole batch).
            size: output extents (tensor order); the noise wraps with the scale's extent.
            scale: 0 (finest) to ``num_scales - 1``.
            region: ``(start, stop)`` per axis in positions of that scale, may wrap.
            device: where to compute it (the values do not depend on it for uniform noise).

        Returns:
            ``(len(samples), noise_channels, *(stop - start))``.
        """
        extent = self.scale_sizes(size)[scale]
        coords = [torch.arange(lo, hi, device=device).remainder_(n)
                  for (lo, hi), n in zip(region, extent, strict=True)]
        return _counter_noise(key, list(samples), scale, self.noise_channels, coords,
                              self.noise_kind)

    # -- Generator interface -------------------------------------------------------------
    def make_noise(self, batch: int, size: tuple[int, ...], *,
                   generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """``K`` noise tensors ``(batch, noise_channels, *ceil(size / 2**k))``, finest first.

        One key is drawn from ``generator`` (:meth:`noise_key`) and the noise is the
        counter-based noise of that key (see the module docstring), computed on ``device``:
        the same seed gives the same noise on every device, and any window of it can be
        remade by :meth:`noise_region`. Sample ``n`` of a batch does not depend on the
        batch size, so a batch split into slices sees the same noise.
        """
        if batch < 1:
            raise UsageError(f"batch must be at least 1, got {batch}")
        sizes = self.scale_sizes(size)
        key = self.noise_key(generator)
        return [self.noise_region(key, range(batch), size, k,
                                  tuple((0, e) for e in extent), device=device)
                for k, extent in enumerate(sizes)]

    def forward(self, noise: list[torch.Tensor], content: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Signals ``(N, out_channels, *size)`` from :meth:`make_noise` output.

        Args:
            noise: ``K`` tensors, finest first, as returned by :meth:`make_noise`.
            content: for stylisation generators, ``(N or 1, content_channels, *size)``
                with ``size`` the finest noise extent; must be ``None`` otherwise.
        """
        sizes = self._check_inputs(noise, content)
        batch = noise[0].shape[0]
        if content is not None and content.shape[0] != batch:
            content = content.expand(batch, *content.shape[1:])
        out: torch.Tensor | None = None
        for k in reversed(range(self.num_scales)):
            inputs = noise[k]
            if content is not None:
                scaled = content if k == 0 else F.interpolate(content, size=sizes[k],
                                                              mode="area")
                inputs = torch.cat([inputs, scaled.to(inputs.dtype)], dim=1)
            branch: torch.Tensor = self.branches[k](inputs)
            if out is None:
                out = branch
            else:
                up = _crop(F.interpolate(out, scale_factor=2.0, mode="nearest"), sizes[k])
                out = self.joins[k](up, branch)
        assert out is not None
        logits: torch.Tensor = self.to_signal(out)
        return self.low + (self.high - self.low) * torch.sigmoid(logits)

    def _check_inputs(self, noise: list[torch.Tensor], content: torch.Tensor | None
                      ) -> list[tuple[int, ...]]:
        if len(noise) != self.num_scales:
            raise UsageError(f"expected {self.num_scales} noise tensors, got {len(noise)}")
        sizes = self.scale_sizes(noise[0].shape[2:])
        for k, (tensor, extent) in enumerate(zip(noise, sizes, strict=True)):
            if tuple(tensor.shape[2:]) != extent or tensor.shape[1] != self.noise_channels:
                raise UsageError(f"noise tensor {k} has shape {tuple(tensor.shape)}, expected "
                                 f"(N, {self.noise_channels}, {', '.join(map(str, extent))})")
        wanted = self.config.content_channels
        if wanted and content is None:
            raise UsageError("this stylisation generator needs a content signal")
        if content is not None:
            if not wanted:
                raise UsageError("this texture generator takes no content signal")
            if content.shape[1] != wanted or tuple(content.shape[2:]) != sizes[0]:
                raise UsageError(f"content has shape {tuple(content.shape)}, expected "
                                 f"(N, {wanted}, {', '.join(map(str, sizes[0]))})")
            if content.shape[0] not in (1, noise[0].shape[0]):
                raise UsageError(f"content batch {content.shape[0]} differs from the noise "
                                 f"batch {noise[0].shape[0]}")
        return sizes

    # -- windows of the output (tiled sampling) --------------------------------------------
    def tileable(self) -> str | None:
        """``None`` if :meth:`forward_region` can make windows of this generator, else why
        not (only circular padding makes a window independent of the output's borders,
        and stylisation generators need their content)."""
        if self.config.options.get("padding") != "circular":
            return (f"the generator has {self.config.options.get('padding')} padding; only "
                    "circular padding can be sampled in tiles")
        if self.config.content_channels:
            return "stylisation generators cannot be sampled in tiles"
        return None

    def instance_norms(self) -> list[tuple[int, nn.Module]]:
        """``(scale, module)`` of every instance-norm layer, in the order :meth:`forward`
        runs them (each one's input depends only on those before it)."""
        found: list[tuple[int, nn.Module]] = []
        for k in reversed(range(self.num_scales)):
            modules: list[nn.Module] = list(self._branch_block(k))
            if k < self.num_scales - 1:
                join = self._join(k)
                modules += [join.norm_coarse, join.norm_branch, *join.block]
            found += [(k, m) for m in modules if isinstance(m, _INSTANCE_NORMS)]
        return found

    def halo(self, size: Sequence[int]) -> list[int]:
        """Noise positions, per scale, that one output position depends on beyond itself.

        Entry ``k`` is the radius (in positions of scale ``k``, along the first axis) of
        the noise window :meth:`forward_region` reads at scale ``k`` for a single output
        position: at scale 0 the join block's 2 plus the branch's 2 (= 4); each coarser
        scale reads what the nearest ×2 upsampling needs for the widened window, plus its
        own blocks' margins (5, 6, 6, ... for the defaults). A tile reads its own
        footprint at every scale plus these halos, so its work stays proportional to its
        size, and the receptive field at the output is about ``Σ_k 2**k · halo[k]``
        positions (about 310 for six scales).
        """
        sizes = self.scale_sizes(size)
        lo, hi = 0, 1
        halos = []
        for k in range(self.num_scales):
            last = k == self.num_scales - 1
            margin = 0 if last else _conv_margin(self._join(k).block)
            lo, hi = lo - margin, hi + margin
            reach = _conv_margin(self._branch_block(k))
            halos.append(max(-(lo - reach), hi + reach - 1))
            if not last:
                ends = _coarse_index(torch.tensor([lo, hi - 1]), sizes[k][0], sizes[k + 1][0])
                lo, hi = int(ends[0]), int(ends[1]) + 1
        return halos

    def forward_region(self, key: int, samples: Sequence[int], size: Sequence[int],
                       region: Region, *, norm_stats: NormStats | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """Positions ``region`` of the output :meth:`forward` gives for ``size``.

        Args:
            key: noise key (:meth:`noise_key`); the noise is that of :meth:`make_noise`.
            samples: sample numbers within the batch.
            size: extents of the whole output (tensor order).
            region: ``(start, stop)`` per axis at the finest scale; may wrap around.
            norm_stats: whole-extent statistics of every instance-norm layer (see
                :mod:`texsynth.tiled`); not needed with batch norm.
            device: where to compute (default: the generator's).

        Returns:
            ``(len(samples), out_channels, *(stop - start))``, equal to the same positions
            of ``forward(noise)`` up to float rounding. Batch norm must be in eval mode.
        """
        out = _Windows(self, key, samples, size, norm_stats, device).output(0, region)
        logits: torch.Tensor = self.to_signal(out)
        return self.low + (self.high - self.low) * torch.sigmoid(logits)

    def norm_input(self, key: int, samples: Sequence[int], size: Sequence[int],
                   module: nn.Module, region: Region, *, norm_stats: NormStats | None = None,
                   device: torch.device | str | None = None) -> torch.Tensor:
        """The input of instance-norm layer ``module`` over ``region`` of its scale
        (``(len(samples), C, *extent)``), for computing its whole-extent statistics;
        ``norm_stats`` must hold every instance-norm layer before it."""
        for scale, candidate in self.instance_norms():
            if candidate is module:
                windows = _Windows(self, key, samples, size, norm_stats, device)
                return windows.output(scale, region, stop=module)
        raise UsageError("norm_input: the module is not an instance-norm layer of this "
                         "generator")


class _Windows:
    """Evaluates the pyramid on windows of its scales with unpadded convolutions.

    ``output(k, R)`` is the output of scale ``k`` (after its join) exactly on window ``R``:
    it computes the inputs of the last block on ``R`` widened by the block's margin and
    runs the block's convolutions without padding, which shrinks them back to ``R``.
    """

    def __init__(self, gen: PyramidGenerator, key: int, samples: Sequence[int],
                 size: Sequence[int], norm_stats: NormStats | None,
                 device: torch.device | str | None) -> None:
        self.gen = gen
        self.key = key
        self.samples = list(samples)
        self.size = tuple(int(s) for s in size)
        self.sizes = gen.scale_sizes(self.size)
        self.stats = norm_stats or {}
        self.device = torch.device(device) if device is not None else \
            next(gen.parameters()).device
        reason = gen.tileable()
        if reason is not None:
            raise UsageError(f"cannot compute a window of the output: {reason}")
        if gen.training and any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                for m in gen.modules()):
            raise UsageError("windows of a batch-norm generator need eval mode "
                             "(running statistics)")

    def _norm(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(layer, _INSTANCE_NORMS):
            out: torch.Tensor = layer(x)  # batch norm in eval mode: pointwise
            return out
        if layer not in self.stats:
            raise UsageError("windows of an instance-norm generator need the whole-extent "
                             "statistics of every instance-norm layer (texsynth.tiled)")
        mean, var = (t.to(x.device, x.dtype) for t in self.stats[layer])
        shape = (*mean.shape, *([1] * (x.dim() - 2)))
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + layer.eps)
        if layer.affine:
            channel = (1, -1, *([1] * (x.dim() - 2)))
            y = y * layer.weight.view(channel) + layer.bias.view(channel)
        return y

    def _run(self, layers: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            if isinstance(layer, _CONVS):
                conv = F.conv1d if x.dim() == 3 else F.conv2d
                x = conv(x, layer.weight, layer.bias, layer.stride, 0, layer.dilation,
                         layer.groups)
            elif isinstance(layer, (*_INSTANCE_NORMS, nn.modules.batchnorm._BatchNorm)):
                x = self._norm(layer, x)
            else:
                x = layer(x)
        return x

    def _branch(self, k: int, region: Region, stop: nn.Module | None = None) -> torch.Tensor:
        layers = _until(self.gen._branch_block(k), stop)
        noise = self.gen.noise_region(self.key, self.samples, self.size, k,
                                      _grow(region, _conv_margin(layers)), device=self.device)
        return self._run(layers, noise)

    def _upsampled(self, k: int, region: Region) -> torch.Tensor:
        """Scale ``k+1``'s output upsampled onto window ``region`` of scale ``k``."""
        indices = [_coarse_index(torch.arange(lo, hi), fine, coarse)
                   for (lo, hi), fine, coarse in zip(region, self.sizes[k], self.sizes[k + 1],
                                                     strict=True)]
        coarse_region = tuple((int(i[0]), int(i[-1]) + 1) for i in indices)
        out = self.output(k + 1, coarse_region)
        for axis, (index, (lo, _)) in enumerate(zip(indices, coarse_region, strict=True)):
            out = out.index_select(2 + axis, (index - lo).to(out.device))
        return out

    def output(self, k: int, region: Region, stop: nn.Module | None = None) -> torch.Tensor:
        """Output of scale ``k`` on ``region`` (or the input of ``stop``, a layer of that
        scale)."""
        gen = self.gen
        if stop is not None and any(m is stop for m in gen._branch_block(k)):
            return self._branch(k, region, stop)
        if k == gen.num_scales - 1:
            return self._branch(k, region)
        join = gen._join(k)
        if stop is join.norm_coarse:
            return self._upsampled(k, region)
        if stop is join.norm_branch:
            return self._branch(k, region)
        layers = _until(join.block, stop)
        widened = _grow(region, _conv_margin(layers))
        joined = torch.cat([self._norm(join.norm_coarse, self._upsampled(k, widened)),
                            self._norm(join.norm_branch, self._branch(k, widened))], dim=1)
        return self._run(layers, joined)


def _until(block: nn.Sequential, stop: nn.Module | None) -> list[nn.Module]:
    """The layers of ``block`` before ``stop`` (all of them if it is not in the block)."""
    layers = list(block)
    for index, layer in enumerate(layers):
        if layer is stop:
            return layers[:index]
    return layers


def create_pyramid(config: GeneratorConfig) -> PyramidGenerator:
    """Factory registered as ``pyramid`` (a texture generator unless the config asks for
    content channels)."""
    return PyramidGenerator(config)


def create_pyramid_stylize(config: GeneratorConfig) -> PyramidGenerator:
    """Factory registered as ``pyramid-stylize``: content channels default to the output's."""
    if config.content_channels == 0:
        config = GeneratorConfig(name=config.name, spatial_dims=config.spatial_dims,
                                 out_channels=config.out_channels,
                                 content_channels=config.out_channels,
                                 options=dict(config.options))
    return PyramidGenerator(config)
