"""VGG19 feature extractors: ImageNet-trained (``vgg19``) and seeded random (``vgg19-random``).

The network is the convolutional part of torchvision's VGG19 (Simonyan & Zisserman
2014), rebuilt here as an ``nn.Sequential`` with the same module indices, so
torchvision's state dict (keys ``features.N.weight``) loads into it directly. Layers are
named after Gatys et al.: ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ...,
relu5_4, pool5``. Only the modules up to the deepest requested layer are built.

Options (``ExtractorConfig.options``):

* ``pooling``: ``"avg"`` (default) or ``"max"``. Gatys et al. (2015) report that
  replacing max pooling by average pooling gives smoother gradients and better textures,
  so average pooling is the default here, unlike the network's training.
* ``padding``: ``"zeros"`` (default, as trained), ``"circular"`` (synthesised textures
  tile seamlessly), ``"reflect"`` or ``"replicate"``; set on every convolution.

Input: the image domain's signal, RGB ``(N, 3, H, W)`` in [0, 1]. The extractor's
:meth:`~VGG19Extractor.preprocess` applies ImageNet normalisation (what torchvision's
weights were trained on), for ``vgg19-random`` too, so both see the same input.

The ReLUs are not in-place, so a ``conv`` map stays intact when its ``relu`` is read too.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from texsynth.domain import Domain
from texsynth.errors import InputError, UsageError, WeightsUnavailableError
from texsynth.extractor import BlockGeometry, ExtractorConfig, FeatureExtractor
from texsynth.validation import check_choice, check_options

from .io import check_weights_file
from .normalization import imagenet_normalize

__all__ = [
    "OPTIONS",
    "VGG19_LAYERS",
    "VGG19Extractor",
    "build_vgg19",
    "build_vgg19_random",
    "pretrained_cache_path",
]

#: (block, convolutions, output channels) of VGG19 ("configuration E").
_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512),
)


def _layer_table() -> tuple[tuple[str, str, int, int], ...]:
    """``(name, kind, in_channels, out_channels)`` per module, in torchvision's order."""
    table: list[tuple[str, str, int, int]] = []
    channels = 3
    for block, convs, width in _BLOCKS:
        for i in range(1, convs + 1):
            table.append((f"conv{block}_{i}", "conv", channels, width))
            table.append((f"relu{block}_{i}", "relu", width, width))
            channels = width
        table.append((f"pool{block}", "pool", width, width))
    return tuple(table)


_TABLE = _layer_table()
#: Every layer name, shallow to deep; index ``i`` is ``features.i`` in torchvision.
VGG19_LAYERS: tuple[str, ...] = tuple(row[0] for row in _TABLE)
_INDEX = {name: i for i, name in enumerate(VGG19_LAYERS)}
_CONV_INDICES = tuple(i for i, row in enumerate(_TABLE) if row[1] == "conv")

_POOLING = ("avg", "max")
_PADDING = ("zeros", "circular", "reflect", "replicate")

#: Options of ``vgg19`` and ``vgg19-random`` (``ExtractorConfig.options``) with one-line
#: help, as registered (``texsynth plugins`` shows them).
OPTIONS: dict[str, str] = {
    "pooling": "avg or max (default avg, smoother textures than the trained max)",
    "padding": "zeros, circular, reflect or replicate on every convolution "
               "(default zeros, as trained; circular output tiles)",
}


def _parse_options(name: str, options: Mapping[str, Any]) -> tuple[str, str]:
    """``(pooling, padding)`` from the options of extractor ``name``, checked."""
    owner = f"extractor {name!r}"
    check_options(options, OPTIONS, owner=owner)
    pooling = check_choice(options.get("pooling", "avg"), _POOLING, owner=owner,
                           name="pooling")
    padding = check_choice(options.get("padding", "zeros"), _PADDING, owner=owner,
                           name="padding")
    return pooling, padding


class VGG19Extractor(FeatureExtractor):
    """VGG19 convolutional features, truncated after the deepest requested layer.

    Input: RGB images ``(N, 3, H, W)`` in [0, 1] (the image domain's signal), which
    :meth:`preprocess` normalises with ImageNet statistics. Output:
    ``{layer: (N, C_l, H_l, W_l)}`` with ``C_l`` 64/128/256/512/512 for blocks 1-5 and
    ``H_l = H / 2^(block-1)`` (halved again by ``pool<block>``).

    Default texture layers: ``relu1_1, relu2_1, relu3_1, relu4_1, relu5_1`` (Gatys et al.
    2015). Default content layer: ``relu4_2`` (Gatys et al. 2016).

    The weights are left uninitialised: use :func:`build_vgg19` or
    :func:`build_vgg19_random`, which fill them.

    Args:
        layers: layers :meth:`forward` returns by default.
        pooling: ``"avg"`` or ``"max"``.
        padding: ``padding_mode`` of every convolution.
    """

    available_layers = VGG19_LAYERS
    default_texture_layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    default_content_layers = ("relu4_2",)

    def __init__(self, layers: Sequence[str] | None = None, *, pooling: str = "avg",
                 padding: str = "zeros") -> None:
        super().__init__(layers)
        self.pooling = pooling
        self.padding = padding
        deepest = max(_INDEX[name] for name in self.layers)
        modules: list[nn.Module] = []
        for _name, kind, c_in, c_out in _TABLE[: deepest + 1]:
            if kind == "conv":
                modules.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1,
                                         padding_mode=padding,  # type: ignore[arg-type]
                                         device="meta"))
            elif kind == "relu":
                modules.append(nn.ReLU(inplace=False))
            elif pooling == "max":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules.append(nn.AvgPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*modules).to_empty(device="cpu")

    def covers(self, layers: Sequence[str]) -> bool:
        """Every layer up to the deepest one built can be returned."""
        return all(_INDEX[name] < len(self.features) for name in layers)

    def trim(self, layers: Sequence[str]) -> VGG19Extractor:
        """Keep only ``layers``: modules deeper than the deepest of them are dropped."""
        super().trim(layers)
        deepest = max(_INDEX[name] for name in self.layers)
        self.features = nn.Sequential(*list(self.features)[: deepest + 1])
        return self

    @property
    def built_layers(self) -> tuple[str, ...]:
        """Layer names the truncated network can return (shallow to deep)."""
        return VGG19_LAYERS[: len(self.features)]

    def conv_indices(self) -> tuple[int, ...]:
        """Indices in :attr:`features` of the convolutions that were built."""
        return tuple(i for i in _CONV_INDICES if i < len(self.features))

    def block_geometry(self, layers: Sequence[str]) -> BlockGeometry | None:
        """Blocks for ``layers``: the halo is the deepest layer's reach (how far its
        receptive field extends beyond a map position's own cell of ``stride`` input
        pixels: one cell per 3×3 convolution, nothing for a 2×2 pool, whose cell is its
        two inputs'; 70 pixels for ``relu5_1``) rounded up to the alignment, the
        largest stride among the pools before it (16 for ``relu5_1``). Circular padding
        wraps crops around; other paddings clip them at the borders, where they pad as
        the whole image does."""
        deepest = max(_INDEX[name] for name in layers)
        stride, reach, strides = 1, 0, {}
        for name, kind, _, _ in _TABLE[: deepest + 1]:
            if kind == "conv":  # 3x3, padding 1: one cell either side
                reach += stride
            elif kind == "pool":
                stride *= 2
            strides[name] = stride
        halo = -(-reach // stride) * stride
        return BlockGeometry(halo=halo, align=stride,
                             strides={name: strides[name] for name in layers},
                             wrap=self.padding == "circular")

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet normalisation of RGB ``(N, 3, H, W)`` in [0, 1], what torchvision's
        VGG19 weights were trained on; same shape, differentiable (see
        :func:`~texsynth_image.normalization.imagenet_normalize`)."""
        return imagenet_normalize(x)

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        wanted = {_INDEX[name]: name for name in layers}
        deepest = max(wanted)
        if deepest >= len(self.features):
            raise UsageError(
                f"layer {VGG19_LAYERS[deepest]} is deeper than this extractor was built for "
                f"(up to {self.built_layers[-1]}); rebuild it with that layer requested"
            )
        out: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
            if index == deepest:
                break
        return {name: out[name] for name in layers}


# -- weights ---------------------------------------------------------------------------

def pretrained_cache_path() -> Path:
    """Where torchvision caches the ImageNet VGG19 weights (honours ``TORCH_HOME``)."""
    from torchvision.models import VGG19_Weights

    filename = os.path.basename(urlparse(VGG19_Weights.IMAGENET1K_V1.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _features_only(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Keys ``N.weight`` / ``N.bias`` of the convolutional part; classifier keys dropped.

    Accepts torchvision's full state dict (``features.N.*`` and ``classifier.*``), a
    features-only one (``N.*`` or ``features.N.*``), a ``module.`` prefix from
    ``DataParallel``, and a dict wrapping one under ``"state_dict"`` or ``"model"``.
    """
    for wrapper in ("state_dict", "model"):
        inner = state.get(wrapper)
        if isinstance(inner, Mapping):
            state = inner
            break
    found: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            continue
        name = key.removeprefix("module.")
        if name.startswith("classifier."):
            continue
        name = name.removeprefix("features.")
        found[name] = value
    return found


def _check_state(state: Mapping[str, torch.Tensor], net: VGG19Extractor,
                 source: Path) -> dict[str, torch.Tensor]:
    """The entries of ``state`` that ``net.features`` needs, with their shapes checked."""
    needed = net.features.state_dict()
    missing = [f"features.{key}" for key in needed if key not in state]
    if missing:
        sample = ", ".join(sorted(state)[:4]) or "none"
        raise InputError(
            source,
            f"not a VGG19 state dict: missing {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''} (found keys such as {sample})",
        )
    for key, value in needed.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise InputError(
                source,
                f"not a VGG19 state dict: features.{key} has shape "
                f"{tuple(state[key].shape)}, expected {tuple(value.shape)}",
            )
    return {key: state[key] for key in needed}


@functools.lru_cache(maxsize=2)
def _read_state_file(path: str, stamp: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Load a ``.pth``/``.pt`` (``weights_only``) or ``.safetensors`` file's conv weights.

    Cached on ``(path, (mtime_ns, size))`` so that building an extractor twice (as the
    optimiser does to learn the default layers) reads the file once.
    """
    del stamp
    source = Path(path)
    try:
        if source.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            loaded: Any = load_file(path, device="cpu")
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files raise many types (pickle, zip, safetensors)
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(source, f"cannot be loaded as a state dict ({detail[:200]})"
                         ) from None
    if not isinstance(loaded, Mapping):
        raise InputError(source, f"holds a {type(loaded).__name__}, not a state dict")
    return {k: v.float() for k, v in _features_only(loaded).items()}


def _load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """The conv weights in ``path``, once it is known to be a readable, non-empty regular
    file of at most :data:`texsynth_image.io.MAX_WEIGHTS_BYTES` (a device or FIFO,
    also behind a symbolic link, is refused without being opened)."""
    info = check_weights_file(path).stat()
    return _read_state_file(os.fspath(path.resolve()), (info.st_mtime_ns, info.st_size))


def _pretrained_state() -> tuple[dict[str, torch.Tensor], Path]:
    """torchvision's ImageNet VGG19 conv weights, downloading them once if needed."""
    cache = pretrained_cache_path()
    if cache.is_file():
        return _load_state_file(cache), cache
    from torchvision.models import VGG19_Weights

    url = VGG19_Weights.IMAGENET1K_V1.url
    match = torch.hub.HASH_REGEX.search(cache.name)  # "vgg19-<sha256 prefix>.pth"
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        print(f"texsynth: downloading VGG19 ImageNet weights (548 MB) to {cache}",
              file=sys.stderr)
        torch.hub.download_url_to_file(url, os.fspath(cache),
                                       match.group(1) if match else None, progress=True)
    except (OSError, RuntimeError) as exc:
        reason = str(getattr(exc, "reason", "") or exc).splitlines()[0][:120]
        raise WeightsUnavailableError(
            f"VGG19 ImageNet weights are not cached and could not be downloaded ({reason}); "
            f"connect to the internet once so torchvision can download and cache them at "
            f"{cache} (548 MB), or pass --weights FILE with a VGG19 state dict "
            "(.pth or .safetensors); --extractor random-multiscale needs no weights"
        ) from None
    return _load_state_file(cache), cache


def _init_random(net: VGG19Extractor, seed: int) -> None:
    """Kaiming-normal (fan-in, ReLU gain) convolutions and zero biases, from ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for index in net.conv_indices():
            conv = net.features[index]
            assert isinstance(conv, nn.Conv2d)
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            std = (2.0 / fan_in) ** 0.5
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * std)
            if conv.bias is not None:
                conv.bias.zero_()


def build_vgg19(config: ExtractorConfig, domain: Domain) -> VGG19Extractor:
    """Factory for ``vgg19``: torchvision's ImageNet weights (``IMAGENET1K_V1``).

    The weights come from torch hub's cache (``$TORCH_HOME/hub/checkpoints``), downloaded
    once when online, or from ``config.weights`` (a full or features-only VGG19 state
    dict, ``.pth``/``.pt`` or ``.safetensors``). Default texture layers
    ``relu1_1 … relu5_1``; default content layer ``relu4_2``; average pooling.

    Raises:
        WeightsUnavailableError: no file given, nothing cached and no download possible.
        InputError: the weights file is missing, corrupt or not a VGG19 state dict.
    """
    del domain
    pooling, padding = _parse_options("vgg19", config.options)
    net = VGG19Extractor(config.layers, pooling=pooling, padding=padding)
    if config.weights_path is not None:
        source = config.weights_path
        state = _load_state_file(source)
    else:
        state, source = _pretrained_state()
    net.features.load_state_dict(_check_state(state, net, source))
    net.freeze()
    return net


def build_vgg19_random(config: ExtractorConfig, domain: Domain) -> VGG19Extractor:
    """Factory for ``vgg19-random``: VGG19 with seeded random weights, never downloaded.

    Convolutions are Kaiming-normal (fan-in, ReLU gain, std ``sqrt(2 / (9 C_in))``) drawn
    from ``torch.Generator().manual_seed(config.seed)``; biases are zero. Same layers,
    defaults and options as ``vgg19``. A deep untrained network gives noisier textures
    than ``random-multiscale``.
    """
    del domain
    if config.weights:
        raise UsageError("extractor 'vgg19-random' uses random weights and takes no "
                         "--weights; use --extractor vgg19 --weights FILE")
    pooling, padding = _parse_options("vgg19-random", config.options)
    net = VGG19Extractor(config.layers, pooling=pooling, padding=padding)
    _init_random(net, config.seed)
    net.freeze()
    return net
