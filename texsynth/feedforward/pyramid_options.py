"""Options of the ``pyramid`` generators (:mod:`texsynth.feedforward.pyramid`): their defaults and
bounds, their validation (configs from any source, checkpoints included, are untrusted),
the extents of every scale and the weight count of a config, computed without building it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import UsageError
from ..generator import MAX_SIGNAL_CHANNELS, GeneratorConfig
from ..validation import check_choice, check_options
from .noise import NOISE_KINDS
from .pyramid_layers import CONVS

__all__ = [
    "DEFAULT_OPTIONS",
    "MAX_PARAMETERS",
    "OPTION_BOUNDS",
    "parameter_count",
    "resolve_config",
    "resolve_options",
    "scale_sizes",
]

#: Options of the ``pyramid`` generators and their defaults (see
#: :mod:`texsynth.feedforward.pyramid`).
DEFAULT_OPTIONS: dict[str, Any] = {
    "num_scales": 6,          # authors' code: ratios 32, 16, 8, 4, 2, 1
    "channels": 8,            # filters per branch (paper: 8)
    "noise_channels": 3,      # authors' code: 3 uniform noise channels per scale
    "noise": "uniform",       # "uniform" in [0, 1) (authors) or "normal"
    "padding": "circular",    # "circular", "reflect" or "zeros"
    "norm": "batch",          # "batch" (2016 paper) or "instance" (Improved TN, 2017)
    "negative_slope": 0.01,   # LeakyReLU slope (Torch's nn.LeakyReLU default)
    "upsample": "nearest",    # "nearest" (authors) or "linear" (no steps on a 2**k grid)
    "stride": 1,              # output positions per frame of the finest scale (see Stride)
    "detail": 0,              # filtered output-rate noise channels (see Detail)
    "value_range": [0.0, 1.0],  # output range; the trainer passes the domain's
}
_PADDINGS = ("circular", "reflect", "zeros")
_NORMS = ("batch", "instance")
_UPSAMPLES = ("nearest", "linear")

#: Inclusive upper bounds of the integer options, checked for configs from any source
#: (a checkpoint's settings are untrusted input). Twenty scales need outputs of at least
#: ``2**19 + 1`` positions per axis, about the largest extent a size may have
#: (:data:`texsynth.domain.MAX_EXTENT` = ``2**20``); the widths are far beyond what
#: texture generators use (8 filters in the paper).
OPTION_BOUNDS: dict[str, int] = {"num_scales": 20, "channels": 1024, "noise_channels": 1024,
                                 "stride": 1024, "detail": 256}
#: Integer options for which 0 is allowed (no detail noise).
_MAY_BE_ZERO = ("detail",)
#: Most weights (elements of parameters) a pyramid may have: ``2**28`` float32 values,
#: 1 GiB; with Adam's two moments its checkpoint stays within
#: :data:`texsynth.feedforward.checkpoint.MAX_CHECKPOINT_BYTES`.
MAX_PARAMETERS = 2**28
#: Largest magnitude of ``value_range`` ends and ``negative_slope``.
_MAX_MAGNITUDE = 1e6


def _finite(value: Any, owner: str, name: str) -> float:
    """``value`` as a float within ±:data:`_MAX_MAGNITUDE` (not a bool, not NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or abs(value) > _MAX_MAGNITUDE:
        raise UsageError(f"{owner}: {name} must be a finite number of magnitude at most "
                         f"{_MAX_MAGNITUDE:g}, got {value!r}")
    return float(value)


def resolve_options(options: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """``options`` checked and completed with :data:`DEFAULT_OPTIONS`; ``owner`` names the
    generator in messages (``"generator 'pyramid'"``). Integers are bounded by
    :data:`OPTION_BOUNDS`."""
    check_options(options, DEFAULT_OPTIONS, owner=owner)
    opts = {**DEFAULT_OPTIONS, **options}
    for key, most in OPTION_BOUNDS.items():
        value = opts[key]
        least = 0 if key in _MAY_BE_ZERO else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            kind = "a non-negative" if least == 0 else "a positive"
            raise UsageError(f"{owner}: {key} must be {kind} integer, got {value!r}")
        if value > most:
            raise UsageError(f"{owner}: {key} must be at most {most}, got {value!r}")
    for key, allowed in (("padding", _PADDINGS), ("norm", _NORMS), ("noise", NOISE_KINDS),
                         ("upsample", _UPSAMPLES)):
        opts[key] = check_choice(opts[key], allowed, owner=owner, name=key)
    given = opts["value_range"]
    if not isinstance(given, (list, tuple)) or len(given) != 2:
        raise UsageError(f"{owner}: value_range must be [low, high], got {given!r}")
    low, high = (_finite(v, owner, "value_range") for v in given)
    if not low < high:
        raise UsageError(f"{owner}: value_range must be [low, high] with low < high, "
                         f"got {opts['value_range']!r}")
    opts["value_range"] = [low, high]
    opts["negative_slope"] = _finite(opts["negative_slope"], owner, "negative_slope")
    if opts["detail"] and opts["stride"] == 1:
        raise UsageError(f"{owner}: detail noise needs a stride above 1 (it fills in what "
                         "frames cannot draw)")
    return opts


def parameter_count(config: GeneratorConfig) -> int:
    """Number of weights (parameter elements) of the pyramid ``config`` describes, without
    building it; ``config.options`` must be resolved (:func:`resolve_config`;
    :class:`~texsynth.feedforward.pyramid.PyramidGenerator` stores them so). Each block
    ``in → out`` has convolutions of ``in·out·3^d``, ``out·out·3^d`` and ``out·out``
    weights (``d`` spatial dims, no bias) and three norms of ``2·out``; each join
    normalises its two inputs; the final convolution (1×1, or with a kernel of
    ``2·stride`` per axis) has a bias."""
    opts, dims = config.options, config.spatial_dims
    width, scales = int(opts["channels"]), int(opts["num_scales"])
    three = 3 ** dims

    def block(inputs: int, out: int) -> int:
        return inputs * out * three + out * out * three + out * out + 3 * 2 * out

    inputs = int(opts["noise_channels"]) + config.content_channels
    total = scales * block(inputs, width)
    for k in range(scales - 1):
        coarse = width * (scales - 1 - k)
        total += 2 * coarse + 2 * width + block(coarse + width, coarse + width)
    stride, detail = int(opts.get("stride", 1)), int(opts.get("detail", 0))
    taps = 1 if stride == 1 else (2 * stride) ** dims
    total += width * scales * config.out_channels * taps + config.out_channels
    gains = detail * config.out_channels
    return total + width * scales * gains * taps + gains + detail * (2 * stride + 1) ** dims


def resolve_config(config: GeneratorConfig) -> GeneratorConfig:
    """``config`` with its options checked and completed (:func:`resolve_options`), after
    checking its spatial dims (1 to 3), its channels (at most
    :data:`~texsynth.generator.MAX_SIGNAL_CHANNELS`) and its weight count (at most
    :data:`MAX_PARAMETERS`, :func:`parameter_count`)."""
    opts = resolve_options(config.options, f"generator {config.name!r}")
    config = GeneratorConfig(name=config.name, spatial_dims=config.spatial_dims,
                             out_channels=config.out_channels,
                             content_channels=config.content_channels, options=opts)
    if config.spatial_dims not in CONVS:
        raise UsageError(f"the pyramid generator supports 1 to {max(CONVS)} spatial "
                         f"dims, got {config.spatial_dims}")
    if not (1 <= config.out_channels <= MAX_SIGNAL_CHANNELS
            and 0 <= config.content_channels <= MAX_SIGNAL_CHANNELS):
        raise UsageError(f"bad generator channels: out {config.out_channels}, "
                         f"content {config.content_channels} (at most "
                         f"{MAX_SIGNAL_CHANNELS} each)")
    weights = parameter_count(config)
    if weights > MAX_PARAMETERS:
        raise UsageError(f"generator {config.name!r}: {opts['channels']} channels and "
                         f"{opts['num_scales']} scales give {weights:.3g} weights, more "
                         f"than the {MAX_PARAMETERS:.3g} a pyramid may have")
    return config


def scale_sizes(size: Sequence[int], num_scales: int) -> list[tuple[int, ...]]:
    """Spatial extents of every scale, finest first: ``ceil(size / 2**k)`` per axis.

    >>> scale_sizes((37, 64), 3)
    [(37, 64), (19, 32), (10, 16)]
    """
    return [tuple(math.ceil(int(s) / 2**k) for s in size) for k in range(num_scales)]
