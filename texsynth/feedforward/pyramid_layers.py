"""Building blocks of the ``pyramid`` generators (:mod:`texsynth.feedforward.pyramid`) over 1 to 3
spatial axes: conv/norm layer factories and blocks, the join of a coarse scale with a
branch, ×2 upsampling (nearest or linear, circular or clamped), the overlap-add of strided
frames (a fast transposed convolution) and cropping.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError

__all__ = [
    "CONVS",
    "TRANSPOSED",
    "Join",
    "Layers",
    "crop",
    "overlap_add",
    "upsample2",
]

#: Layer classes by number of spatial axes (the same network over 1, 2 or 3 axes).
CONVS: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
#: Transposed convolution classes for 1, 2 and 3 spatial axes (the strided decoders).
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_TRANSPOSED_CONVS: dict[int, type[nn.Module]] = dict(enumerate(TRANSPOSED, start=1))
_NORM_CLASSES: dict[str, dict[int, type[nn.Module]]] = {
    "batch": {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d},
    "instance": {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d},
}
#: ``F.interpolate``'s linear mode by tensor rank (``N, C`` and 1 to 3 spatial axes).
_LINEAR_MODES = {3: "linear", 4: "bilinear", 5: "trilinear"}


class Layers:
    """Conv/norm factories for one number of spatial dims."""

    def __init__(self, dims: int, padding: str, norm: str, slope: float) -> None:
        if dims not in CONVS:
            raise UsageError(f"the pyramid generator supports 1 to {max(CONVS)} spatial "
                             f"dims, got {dims}")
        self.conv_class: type[nn.Module] = CONVS[dims]
        self.transposed_class: type[nn.Module] = _TRANSPOSED_CONVS[dims]
        self.padding = padding
        self.norm_class: type[nn.Module] = _NORM_CLASSES[norm][dims]
        self.instance = norm == "instance"
        self.slope = slope

    def norm(self, channels: int) -> nn.Module:
        """A norm over ``channels`` maps (instance norm with a learned affine, as batch
        norm has)."""
        if self.instance:
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


class Join(nn.Module):
    """Normalise the upsampled coarse maps and the new branch, concatenate, run a block."""

    def __init__(self, layers: Layers, coarse_channels: int, branch_channels: int) -> None:
        super().__init__()
        self.norm_coarse = layers.norm(coarse_channels)
        self.norm_branch = layers.norm(branch_channels)
        self.block = layers.block(coarse_channels + branch_channels,
                                  coarse_channels + branch_channels)

    def forward(self, coarse: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([self.norm_coarse(coarse), self.norm_branch(branch)], dim=1)
        out: torch.Tensor = self.block(joined)
        return out


def upsample2(x: torch.Tensor, mode: str, circular: bool) -> torch.Tensor:
    """``x`` ``(N, C, *extent)`` upsampled ×2 along every spatial axis: ``(N, C,
    *(2·extent))``.

    ``mode="nearest"`` repeats every position twice. ``mode="linear"`` puts ``¾ x[i] +
    ¼ x[i-1]`` at ``2i`` and ``¾ x[i] + ¼ x[i+1]`` at ``2i + 1`` (linear interpolation
    with half-pixel centres), the neighbours wrapping around when ``circular``, else
    clamped to the ends (``F.interpolate``'s linear, bilinear or trilinear mode for 1 to 3
    axes, ``align_corners=False``).
    """
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    if not circular:
        kind = _LINEAR_MODES.get(x.dim())
        if kind is None:
            raise UsageError(f"upsample2: expected 1 to 3 spatial axes, got shape "
                             f"{tuple(x.shape)}")
        return F.interpolate(x, scale_factor=2.0, mode=kind, align_corners=False)
    for axis in range(2, x.dim()):
        before, after = torch.roll(x, 1, axis), torch.roll(x, -1, axis)
        pair = torch.stack([0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after], dim=axis + 1)
        x = pair.flatten(axis, axis + 1)
    return x


def overlap_add(frames: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: int) -> torch.Tensor:
    """The transposed convolution of ``frames`` ``(N, C, *F)`` with ``weight`` ``(C, out,
    *(2·stride,) * d)`` and stride ``stride``: ``(N, out, *((F + 1)·stride))``, equal to
    ``F.conv_transpose1d``/``2d``/``3d`` for ``d`` = 1 to 3 axes (any ``d`` works;
    ``bias`` ``(out,)`` or ``None``).

    Computed as one matrix product per frame (every frame's ``2·stride`` positions per
    axis) and an overlap-add of the two halves of neighbouring frames, which is several
    times faster on the CPU than the transposed convolution for long 1-D signals.
    """
    dims = frames.dim() - 2
    z = torch.tensordot(frames, weight, dims=([1], [0]))  # (N, *F, out, *K)
    z = z.movedim(1 + dims, 1)  # (N, out, *F, *K)
    for axis in range(dims):
        frame_axis, tap_axis = 2 + axis, 2 + dims + axis
        halves = z.unflatten(tap_axis, (2, stride))
        first, second = halves.select(tap_axis, 0), halves.select(tap_axis, 1)
        zero = torch.zeros_like(first.narrow(frame_axis, 0, 1))
        z = torch.cat([first, zero], frame_axis) + torch.cat([zero, second], frame_axis)
    order = [0, 1, *(i for a in range(dims) for i in (2 + a, 2 + dims + a))]
    extents = [(n + 1) * stride for n in frames.shape[2:]]
    out = z.permute(order).reshape(z.shape[0], z.shape[1], *extents)
    if bias is not None:
        out = out + bias.view(1, -1, *([1] * dims))
    return out


def crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Keep the first ``size`` positions of every spatial axis."""
    index = (slice(None), slice(None), *(slice(0, s) for s in size))
    return x[index]
