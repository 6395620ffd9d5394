"""Multi-scale generator of Ulyanov et al. ("Texture Networks", 2016), over 1 to 3 axes.

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
* branches are joined coarse to fine by ×2 upsampling (cropped to the finer extent when
  it is odd), normalisation of both inputs and channel concatenation, so the width grows
  by ``channels`` per joined scale (8, 16, ..., 8·K). The upsampling (option
  ``upsample``) is ``"nearest"`` (the authors' code: every coarse cell becomes a 2×2
  block) or ``"linear"`` (each fine position is ¾ of its coarse cell plus ¼ of the
  neighbour on its side, along every axis; with circular padding the neighbour wraps, so
  it is exact on the torus). Nearest upsampling of the coarse scales leaves steps on a
  grid of 2**k-sized cells that the 3-tap convolutions after it do not smooth away: on a
  smooth exemplar a generator paints axis-aligned rectangles with it (see
  ``benchmarks/RESULTS.md``), linear upsampling has no such grid;
* a final 1×1 convolution maps to the signal's channels and a scaled sigmoid maps the
  result into ``value_range`` (the domain's range, e.g. [0, 1] for images).

**Stride.** With ``stride`` ``s > 1`` the pyramid runs on a grid ``s`` times coarser than
the output along every axis (``ceil(size / s)`` *frames*, which are its finest scale) and
the final layer is a transposed convolution with a kernel of ``2s`` and a stride of ``s``
per axis: every frame draws ``2s`` positions, centred on its own cell and overlapping each
neighbour by half (overlap-add of learned frames, as an inverse STFT adds windowed frames).
The work per output position falls by about ``s`` (sound: 64 samples per frame make a
generator that samples far faster than real time). On the grid's torus the decoder wraps
too, so outputs whose extent is a multiple of ``s·2**(K-1)`` tile exactly; for other
extents the last frame is cropped, which breaks the wrap by up to ``s`` positions.

**Detail.** Frames drawn from a few smooth feature maps repeat their shapes at the frame
rate (sound: a comb of partials at multiples of ``rate / s``), and cannot make the
broadband noise most sound textures are made of. With ``detail`` ``D > 0`` (strided
generators only) the output also gets ``D`` channels of white normal noise at the
output's own resolution (counter-based, like the rest), each filtered by a learned FIR of
``2s + 1`` taps per axis and mixed into every output channel with gains that the frames
draw (a second overlap-added decoder): a learned filter bank of noise whose levels
follow the texture, as the filtered-noise half of a harmonic-plus-noise synthesiser.

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

**Noise** is counter-based (:mod:`texsynth.feedforward.noise`): any window of it is made on its own
(:meth:`PyramidGenerator.noise_region`), and the same seed gives the same noise on every
device (bit-identical for uniform noise). **Windows** of the output (tiled sampling) are
computed by :mod:`texsynth.feedforward.windows` (:meth:`PyramidGenerator.forward_region`); the
generator implements :class:`texsynth.generator.WindowedGenerator`, the protocol
:mod:`texsynth.feedforward.tiled` uses.

The options, their checks and the weight count live in
:mod:`texsynth.feedforward.pyramid_options`, the layers, joins, upsampling and
overlap-add in :mod:`texsynth.feedforward.pyramid_layers`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..generator import Generator, GeneratorConfig, NormStats, Region
from .noise import counter_noise
from .pyramid_layers import TRANSPOSED, Join, Layers, crop, overlap_add, upsample2
from .pyramid_options import resolve_config, scale_sizes
from .windows import Windows, instance_norm_layers, scale_halos

__all__ = [
    "PyramidGenerator",
    "create_pyramid",
    "create_pyramid_stylize",
]


class PyramidGenerator(Generator):
    """Ulyanov et al.'s multi-scale texture (and stylisation) generator.

    Built from a :class:`~texsynth.GeneratorConfig`; ``config.options`` takes the keys of
    :data:`~texsynth.feedforward.pyramid_options.DEFAULT_OPTIONS` and is stored back fully
    resolved, so a checkpoint names every setting. ``config.spatial_dims`` picks Conv1d
    (1), Conv2d (2) or Conv3d (3) and the matching norms and transposed convolutions; the
    network is otherwise the same.

    Shapes: :meth:`make_noise` returns ``K`` tensors ``(N, noise_channels, *size_k)`` with
    ``size_k = ceil(size / 2**k)``; :meth:`forward` maps them (and, when
    ``content_channels > 0``, a content signal ``(N or 1, content_channels, *size)``) to
    ``(N, out_channels, *size)`` within ``value_range``.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        config = resolve_config(config)
        opts = config.options
        super().__init__(config)
        self.num_scales: int = opts["num_scales"]
        self.noise_channels: int = opts["noise_channels"]
        self.noise_kind: str = opts["noise"]
        self.low, self.high = opts["value_range"]
        self.upsample: str = opts["upsample"]
        self._circular = opts["padding"] == "circular"
        width: int = opts["channels"]
        layers = Layers(config.spatial_dims, opts["padding"], opts["norm"],
                        opts["negative_slope"])
        in_channels = self.noise_channels + config.content_channels
        #: ``branches[k]`` processes the inputs of scale ``k`` (0 = finest).
        self.branches = nn.ModuleList(layers.block(in_channels, width)
                                      for _ in range(self.num_scales))
        #: ``joins[k]`` merges the upsampled scales ``> k`` (``width·(K-1-k)`` maps) with
        #: branch ``k``.
        self.joins = nn.ModuleList(Join(layers, width * (self.num_scales - 1 - k), width)
                                   for k in range(self.num_scales - 1))
        #: Output positions per frame of the finest scale (see *Stride*).
        self.stride: int = opts["stride"]
        self.to_signal: nn.Module
        if self.stride == 1:
            self.to_signal = layers.conv_class(width * self.num_scales, config.out_channels, 1)
        else:
            self.to_signal = layers.transposed_class(width * self.num_scales,
                                                     config.out_channels, 2 * self.stride,
                                                     stride=self.stride)
        #: Channels of filtered output-rate noise (see *Detail*).
        self.detail: int = opts["detail"]
        if self.detail:
            self.detail_gains = layers.transposed_class(width * self.num_scales,
                                                        config.out_channels * self.detail,
                                                        2 * self.stride, stride=self.stride)
            self.detail_filters = layers.conv_class(self.detail, self.detail,
                                                    2 * self.stride + 1, groups=self.detail,
                                                    bias=False)

    # -- typed access to the blocks -----------------------------------------------------
    def _branch_block(self, k: int) -> nn.Sequential:
        block = self.branches[k]
        assert isinstance(block, nn.Sequential)
        return block

    def _join(self, k: int) -> Join:
        join = self.joins[k]
        assert isinstance(join, Join)
        return join

    def _branch_blocks(self) -> list[nn.Sequential]:
        """``branches[k]`` for every scale, finest first."""
        return [self._branch_block(k) for k in range(self.num_scales)]

    def _joins(self) -> list[Join]:
        """``joins[k]`` for ``k < num_scales - 1``, finest first."""
        return [self._join(k) for k in range(self.num_scales - 1)]

    # -- sizes ------------------------------------------------------------------------
    def min_extent(self) -> int:
        """Smallest extent this generator can produce along any axis
        (``stride·2**(K-1) + 1``)."""
        return self.stride * 2 ** (self.num_scales - 1) + 1

    def scale_sizes(self, size: Sequence[int]) -> list[tuple[int, ...]]:
        """Extents of every scale for an output of ``size``, finest first (checked); with
        a stride the finest scale is the grid of ``ceil(size / stride)`` frames."""
        size = tuple(int(s) for s in size)
        if len(size) != self.config.spatial_dims:
            raise UsageError(f"the generator makes signals with {self.config.spatial_dims} "
                             f"spatial axes; got size {size}")
        low = self.min_extent()
        if any(s < low for s in size):
            raise UsageError(
                f"size {size} is too small for a {self.num_scales}-scale generator: every "
                f"extent must be at least {low} (stride·2**(K-1) + 1) so that the coarsest "
                "scale has 2 positions"
            )
        return scale_sizes(tuple(math.ceil(s / self.stride) for s in size), self.num_scales)

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
        return counter_noise(key, list(samples), scale, self.noise_channels, coords,
                             self.noise_kind)

    # -- Generator interface -------------------------------------------------------------
    def make_noise(self, batch: int, size: tuple[int, ...], *,
                   generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """``K`` noise tensors ``(batch, noise_channels, *extent_k)``, finest first, with
        ``extent_k = ceil(size / (stride·2**k))``; with a stride, a last tensor
        ``(batch, detail, *size)`` at the output's resolution (the detail noise, standard
        normal; empty without detail) carries the output's extents.

        One key is drawn from ``generator`` (:meth:`noise_key`) and the noise is the
        counter-based noise of that key (:mod:`texsynth.feedforward.noise`), computed on ``device``:
        the same seed gives the same noise on every device, and any window of it can be
        remade by :meth:`noise_region`. Sample ``n`` of a batch does not depend on the
        batch size, so a batch split into slices sees the same noise.
        """
        if batch < 1:
            raise UsageError(f"batch must be at least 1, got {batch}")
        sizes = self.scale_sizes(size)
        key = self.noise_key(generator)
        noise = [self.noise_region(key, range(batch), size, k,
                                   tuple((0, e) for e in extent), device=device)
                 for k, extent in enumerate(sizes)]
        if self.stride > 1:
            noise.append(self._detail_noise(key, range(batch), size,
                                            tuple((0, e) for e in size), device))
        return noise

    def _detail_noise(self, key: int, samples: Sequence[int], size: Sequence[int],
                      region: Region, device: torch.device | str) -> torch.Tensor:
        """Detail noise ``(len(samples), detail, *(stop - start))`` over ``region`` of the
        output (positions wrap with ``size``); its lane is scale number ``K``."""
        coords = [torch.arange(lo, hi, device=device).remainder_(n)
                  for (lo, hi), n in zip(region, size, strict=True)]
        if not self.detail:
            return torch.empty(len(samples), 0, *(c.numel() for c in coords), device=device)
        return counter_noise(key, list(samples), self.num_scales, self.detail, coords,
                             "normal")

    def forward(self, noise: list[torch.Tensor], content: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Signals ``(N, out_channels, *size)`` from :meth:`make_noise` output.

        Args:
            noise: ``K`` tensors, finest first, as returned by :meth:`make_noise`.
            content: for stylisation generators, ``(N or 1, content_channels, *size)``
                with ``size`` the output's extents; must be ``None`` otherwise.
        """
        size, sizes = self._check_inputs(noise, content)
        batch = noise[0].shape[0]
        if content is not None and content.shape[0] != batch:
            content = content.expand(batch, *content.shape[1:])
        out: torch.Tensor | None = None
        for k in reversed(range(self.num_scales)):
            inputs = noise[k]
            if content is not None:
                scaled = content if sizes[k] == size else F.interpolate(
                    content, size=sizes[k], mode="area")
                inputs = torch.cat([inputs, scaled.to(inputs.dtype)], dim=1)
            branch: torch.Tensor = self.branches[k](inputs)
            if out is None:
                out = branch
            else:
                up = crop(upsample2(out, self.upsample, self._circular), sizes[k])
                out = self.joins[k](up, branch)
        assert out is not None
        if self.stride > 1:  # the frame after the last: the first again on the torus
            for axis in range(2, out.dim()):
                after = out.narrow(axis, 0, 1)
                out = torch.cat([out, after if self._circular else torch.zeros_like(after)],
                                dim=axis)
        region = tuple((0, s) for s in size)
        detail = None
        if self.detail:
            pad = (self.stride,) * (2 * len(size))
            detail = F.pad(noise[-1], pad, mode="circular" if self._circular else "constant")
        return self._to_range(self._decode(out, region, (0,) * len(size), detail))

    def _to_range(self, logits: torch.Tensor) -> torch.Tensor:
        return self.low + (self.high - self.low) * torch.sigmoid(logits)

    def _decode(self, frames: torch.Tensor, region: Region, first: Sequence[int],
                detail: torch.Tensor | None = None) -> torch.Tensor:
        """Output logits ``(N, out_channels, *(stop - start))`` on ``region`` of the
        output from the finest scale's maps ``frames`` (``(N, C, *extent)``, frames from
        ``first`` on along each axis).

        ``frames`` must cover frames ``floor(start / stride)`` to ``floor((stop - 1) /
        stride) + 1`` (each position gets the frame of its cell and the next one); with
        a stride of 1 they are exactly the region's positions. ``detail`` (with detail
        noise) is the detail noise on the region widened by ``stride`` on every side.
        """
        if self.stride == 1:
            out: torch.Tensor = self.to_signal(frames)
            return out
        s = self.stride
        decoder = self.to_signal
        assert isinstance(decoder, TRANSPOSED)
        # frame f's 2s positions start at output position (f - 1)·s
        index = (slice(None), slice(None),
                 *(slice(lo - (f0 - 1) * s, hi - (f0 - 1) * s)
                   for (lo, hi), f0 in zip(region, first, strict=True)))
        out = overlap_add(frames, decoder.weight, decoder.bias, s)[index]
        if not self.detail:
            return out
        assert detail is not None
        filtered: torch.Tensor = self.detail_filters(detail)  # unpadded, one filter each
        mixer = self.detail_gains
        assert isinstance(mixer, TRANSPOSED)
        gains = overlap_add(frames, mixer.weight, mixer.bias, s)[index]
        gains = gains.unflatten(1, (self.config.out_channels, self.detail))
        return out + (gains * filtered.unsqueeze(1)).sum(dim=2)

    def _check_inputs(self, noise: list[torch.Tensor], content: torch.Tensor | None
                      ) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
        """The output's extents and those of every scale, after checking the inputs."""
        expected = self.num_scales + (self.stride > 1)
        if len(noise) != expected:
            raise UsageError(f"expected {expected} noise tensors, got {len(noise)}")
        size = tuple(noise[-1].shape[2:]) if self.stride > 1 else tuple(noise[0].shape[2:])
        sizes = self.scale_sizes(size)
        if self.stride > 1 and noise[-1].shape[1] != self.detail:
            raise UsageError(f"the last noise tensor has {noise[-1].shape[1]} channels, "
                             f"expected {self.detail} (detail)")
        for k, (tensor, extent) in enumerate(zip(noise, sizes, strict=False)):
            if tuple(tensor.shape[2:]) != extent or tensor.shape[1] != self.noise_channels:
                raise UsageError(f"noise tensor {k} has shape {tuple(tensor.shape)}, expected "
                                 f"(N, {self.noise_channels}, {', '.join(map(str, extent))})")
        wanted = self.config.content_channels
        if wanted and content is None:
            raise UsageError("this stylisation generator needs a content signal")
        if content is not None:
            if not wanted:
                raise UsageError("this texture generator takes no content signal")
            if content.shape[1] != wanted or tuple(content.shape[2:]) != size:
                raise UsageError(f"content has shape {tuple(content.shape)}, expected "
                                 f"(N, {wanted}, {', '.join(map(str, size))})")
            if content.shape[0] not in (1, noise[0].shape[0]):
                raise UsageError(f"content batch {content.shape[0]} differs from the noise "
                                 f"batch {noise[0].shape[0]}")
        return size, sizes

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
        return instance_norm_layers(self._branch_blocks(), self._joins())

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
        return scale_halos(self._branch_blocks(), self._joins(), self.scale_sizes(size),
                           upsample=self.upsample)

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
                :mod:`texsynth.feedforward.tiled`); not needed with batch norm.
            device: where to compute (default: the generator's).

        Returns:
            ``(len(samples), out_channels, *(stop - start))``, equal to the same positions
            of ``forward(noise)`` up to float rounding. Batch norm must be in eval mode.
        """
        windows = self._windows(key, samples, size, norm_stats, device)
        s = self.stride
        first = tuple(lo // s for lo, _ in region)  # floor, also for negative starts
        frames = tuple((f0, (hi - 1) // s + 2 if s > 1 else hi)
                       for f0, (_, hi) in zip(first, region, strict=True))
        detail = None
        if self.detail:
            wide = tuple((lo - s, hi + s) for lo, hi in region)
            where = torch.device(device) if device is not None \
                else next(self.parameters()).device
            detail = self._detail_noise(key, samples, size, wide, where)
        return self._to_range(self._decode(windows.output(0, frames), region, first, detail))

    def norm_input(self, key: int, samples: Sequence[int], size: Sequence[int],
                   module: nn.Module, region: Region, *, norm_stats: NormStats | None = None,
                   device: torch.device | str | None = None) -> torch.Tensor:
        """The input of instance-norm layer ``module`` over ``region`` of its scale
        (``(len(samples), C, *extent)``), for computing its whole-extent statistics;
        ``norm_stats`` must hold every instance-norm layer before it."""
        for scale, candidate in self.instance_norms():
            if candidate is module:
                windows = self._windows(key, samples, size, norm_stats, device)
                return windows.output(scale, region, stop=module)
        raise UsageError("norm_input: the module is not an instance-norm layer of this "
                         "generator")

    def _windows(self, key: int, samples: Sequence[int], size: Sequence[int],
                 norm_stats: NormStats | None, device: torch.device | str | None) -> Windows:
        """The windowed evaluator of this generator for the noise of ``key``, ``samples``
        and outputs of ``size`` (checked: circular padding, batch norm in eval mode)."""
        size = tuple(int(s) for s in size)
        sizes = self.scale_sizes(size)
        where = torch.device(device) if device is not None else next(self.parameters()).device
        reason = self.tileable()
        if reason is not None:
            raise UsageError(f"cannot compute a window of the output: {reason}")
        if self.training and any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                 for m in self.modules()):
            raise UsageError("windows of a batch-norm generator need eval mode "
                             "(running statistics)")
        chosen = list(samples)

        def noise(scale: int, region: Region) -> torch.Tensor:
            return self.noise_region(key, chosen, size, scale, region, device=where)

        return Windows(self._branch_blocks(), self._joins(), sizes, noise, norm_stats,
                       upsample=self.upsample)


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
