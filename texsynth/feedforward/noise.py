"""Counter-based noise: any window of a noise tensor, made on its own.

The value of sample ``n``, scale ``k``, channel ``c`` at position ``(y, x)`` (or ``t``) is
a hash (splitmix64) of a 64-bit key and those five numbers, so any region of the noise can
be made on its own, in any order, without materialising the rest.
:meth:`texsynth.feedforward.pyramid.PyramidGenerator.make_noise` draws the key from the
``torch.Generator`` it is given (two 32-bit draws per call, so a seeded training stream
moves on by the same amount every step) and
:meth:`~texsynth.feedforward.pyramid.PyramidGenerator.noise_region` makes any window of it;
positions are taken modulo the scale's extent, so the noise of an output of size ``S`` is periodic
with period ``S``, like the torus the circular convolutions see. Uniform noise uses the top
24 bits of the hash (exact in float32, bit-identical on every device); normal noise uses
Box–Muller on the top and bottom 24 bits (equal across devices up to float rounding).
Sample ``n`` of a batch does not depend on the batch size.

How a value is made: :func:`noise_lane` hashes ``(key, sample, scale, channel)`` into the
64-bit seed of one plane; position ``(y, x)`` is the counter ``y·2**32 + x`` of the
splitmix64 stream of that seed, i.e. the value is
``mix64(lane + (counter + 1) · 0x9E3779B97F4A7C15 mod 2**64)`` (``t`` is the counter of a
1-D plane), and uniform noise is its top 24 bits divided by ``2**24``. Over 3 axes
position ``(t, y, x)`` is the counter ``t·2**40 + y·2**20 + x``: the last two axes take
positions below ``2**20`` (:data:`texsynth.domain.MAX_EXTENT`), and the first repeats its
noise after ``2**24`` positions (the counter wraps modulo ``2**64``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import UsageError

__all__ = ["NOISE_KINDS", "counter_noise", "noise_lane"]

#: Distributions :func:`counter_noise` draws from: uniform in [0, 1) or standard normal.
NOISE_KINDS = ("uniform", "normal")
#: Bit offset of each axis's position in the counter, by number of axes (see the module
#: docstring); an axis after the first has room for ``2**(previous offset - its offset)``
#: positions.
_COUNTER_SHIFTS: dict[int, tuple[int, ...]] = {1: (0,), 2: (32, 0), 3: (40, 20, 0)}

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


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
    """:func:`_mix64` on every int64 word of ``z`` (any shape), in place (multiplication
    wraps); ``scratch`` (like ``z``) avoids allocating temporaries."""
    scratch = torch.empty_like(z) if scratch is None else scratch
    for bits, factor in ((30, _MIX1), (27, _MIX2), (31, None)):
        z.bitwise_xor_(_shr(z, bits, out=scratch))
        if factor is not None:
            z.mul_(_signed64(factor))
    return z


def noise_lane(key: int, sample: int, scale: int, channel: int) -> int:
    """The 64-bit seed of one (sample, scale, channel) plane of the noise of ``key``.

    ``sample`` keeps its low 32 bits, ``scale`` 8 and ``channel`` 24.
    """
    packed = ((sample & 0xFFFFFFFF) << 32) | ((scale & 0xFF) << 24) | (channel & 0xFFFFFF)
    return _mix64(_mix64(key) ^ _mix64(packed ^ _GOLDEN))


def _counter(coords: Sequence[torch.Tensor]) -> torch.Tensor:
    """The int64 counters ``(*[len(c) for c in coords])`` of the grid ``coords`` spans (one
    vector per axis): every axis's positions shifted by its :data:`_COUNTER_SHIFTS` offset
    and or-ed together (``y·2**32 + x`` for 2 axes, ``t·2**40 + y·2**20 + x`` for 3)."""
    shifts = _COUNTER_SHIFTS.get(len(coords))
    if shifts is None:
        raise UsageError(f"counter noise supports 1 to 3 axes, got {len(coords)}")
    if len(coords) == 1:
        return coords[0].clone()
    # Over 3 axes the fields are narrow enough for real extents to overflow them; over 2
    # the last axis has 2**32 positions, more than any tensor holds (not checked).
    for axis in range(1, len(coords)) if len(coords) > 2 else ():
        room = 1 << (shifts[axis - 1] - shifts[axis])
        values = coords[axis]
        if values.numel() and not (int(values.min()) >= 0 and int(values.max()) < room):
            raise UsageError(f"counter noise over {len(coords)} axes: the positions of axis "
                             f"{axis} must be from 0 to {room - 1}")
    counter = coords[0] << shifts[0]
    for axis in range(1, len(coords)):
        counter = counter[..., None] | (coords[axis] << shifts[axis])
    return counter


def counter_noise(key: int, samples: Sequence[int], scale: int, channels: int,
                  coords: Sequence[torch.Tensor], kind: str) -> torch.Tensor:
    """Noise of ``key`` at the positions ``coords`` of one scale.

    Args:
        key: 64-bit noise key.
        samples: sample numbers within the batch (``range(N)`` for a whole batch).
        scale: scale number (0 = finest), part of every plane's seed.
        channels: channels ``0 .. channels - 1`` are made.
        coords: one int64 vector of positions per axis (1 to 3 axes), already wrapped
            into the scale's extent; the values are computed on their device.
        kind: one of :data:`NOISE_KINDS`.

    Returns:
        float32 ``(len(samples), channels, *[len(c) for c in coords])``.

    Position ``(y, x)`` is the counter ``y·2**32 + x`` (``t`` for 1 axis, ``t·2**40 +
    y·2**20 + x`` for 3) of a splitmix64 stream seeded with :func:`noise_lane`; the hash
    is computed in int64 (wrapping) arithmetic on the coordinates' device, in place.
    """
    if kind not in NOISE_KINDS:
        raise UsageError(f"counter noise: kind must be one of {', '.join(NOISE_KINDS)}, "
                         f"got {kind!r}")
    base = (_counter(coords) + 1).mul_(_signed64(_GOLDEN))
    lanes = torch.tensor([[_signed64(noise_lane(key, s, scale, c)) for c in range(channels)]
                          for s in samples], dtype=torch.int64, device=base.device)
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
