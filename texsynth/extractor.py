"""The :class:`FeatureExtractor` interface and the config that builds one."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from .errors import UsageError

if TYPE_CHECKING:
    from .domain import Domain

__all__ = ["BlockGeometry", "ExtractorConfig", "FeatureExtractor", "axis_margins"]


def axis_margins(margin: int | Sequence[int], dims: int) -> tuple[int, ...]:
    """A wrap margin (:meth:`FeatureExtractor.wrap_margin`) as one number per spatial axis.

    >>> axis_margins(3, 2)
    (3, 3)
    >>> axis_margins((1, 5, 5), 3)
    (1, 5, 5)
    """
    if isinstance(margin, int):
        return (int(margin),) * dims
    values = tuple(int(m) for m in margin)
    if len(values) != dims:
        raise UsageError(f"a wrap margin of {len(values)} axes for maps of {dims} axes")
    return values


@dataclass
class ExtractorConfig:
    """Everything needed to rebuild an extractor; saved with results and checkpoints.

    Attributes:
        name: registry name of the extractor (``"vgg19"``, ``"random-multiscale"`` ...).
        layers: layers the caller will read; ``None`` means the extractor's defaults for
            texture statistics. Extractors run only as deep as these layers need.
        seed: seed for random weights (ignored by pretrained extractors).
        weights: path of a local state dict to load instead of the default weights.
        options: extractor-specific settings, e.g. ``{"pooling": "avg"}``.
    """

    name: str
    layers: tuple[str, ...] | None = None
    seed: int = 0
    weights: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        data = asdict(self)
        data["layers"] = list(self.layers) if self.layers is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractorConfig:
        """Inverse of :meth:`to_dict`."""
        layers = data.get("layers")
        return cls(
            name=str(data["name"]),
            layers=tuple(layers) if layers is not None else None,
            seed=int(data.get("seed", 0)),
            weights=data.get("weights"),
            options=dict(data.get("options") or {}),
        )

    @property
    def weights_path(self) -> Path | None:
        """:attr:`weights` as a path, or ``None``."""
        return Path(self.weights) if self.weights else None


class FeatureExtractor(nn.Module):
    """A frozen network mapping model input to named feature maps.

    ``forward(x)`` takes the domain's model input ``(N, C_in, *spatial)`` and returns
    ``{layer_name: (N, C_l, *spatial_l)}`` for every layer in :attr:`layers` (and any
    extra names passed to :meth:`forward` via ``layers=``). Parameters never require
    gradients; gradients flow only to the input.

    Subclasses set :attr:`available_layers` (in forward order) and
    :attr:`default_texture_layers`, call ``super().__init__(layers)`` and implement
    :meth:`_forward`. Input preprocessing the network expects (e.g. ImageNet
    normalisation for VGG) belongs to the extractor, as torchvision's weights carry their
    transforms: override :meth:`preprocess`; :meth:`forward` applies it.

    An extractor that makes its own analysis of the signal (e.g. STFTs of a waveform at
    several resolutions, where the domain's model input holds one) sets :attr:`reads`
    to ``"signal"``: it is then given the signal ``(N, C, *spatial)`` itself instead of
    the domain's model input. Callers get the right input from :meth:`input_of`.
    """

    #: Every layer name this extractor can return, shallow to deep.
    available_layers: tuple[str, ...] = ()
    #: Layers used for texture statistics when none are named.
    default_texture_layers: tuple[str, ...] = ()
    #: Layer used for the content loss when none is named.
    default_content_layers: tuple[str, ...] = ()
    #: Number of spatial axes of the input (2 for pictures, 1 for time).
    spatial_dims: ClassVar[int] = 2
    #: What :meth:`forward` takes: ``"model"``, the domain's model input
    #: (:meth:`Domain.to_features_input`), or ``"signal"``, the signal itself.
    reads: ClassVar[str] = "model"

    def input_of(self, domain: Domain, signal: torch.Tensor) -> torch.Tensor:
        """What :meth:`forward` takes for ``signal`` ``(N, C, *spatial)`` of ``domain``:
        the signal itself when :attr:`reads` is ``"signal"``, else the domain's model
        input."""
        return signal if self.reads == "signal" else domain.to_features_input(signal)

    def __init__(self, layers: Sequence[str] | None = None) -> None:
        super().__init__()
        chosen = tuple(layers) if layers else self.default_texture_layers
        self.layers: tuple[str, ...] = self.check_layers(chosen)

    def check_layers(self, layers: Sequence[str]) -> tuple[str, ...]:
        """Validate layer names against :attr:`available_layers`; return them as a tuple."""
        unknown = [name for name in layers if name not in self.available_layers]
        if unknown:
            raise UsageError(
                f"unknown layer(s) {', '.join(unknown)} for extractor "
                f"{type(self).__name__}; available: {', '.join(self.available_layers)}"
            )
        if not layers:
            raise UsageError(f"no layers selected for extractor {type(self).__name__}")
        return tuple(layers)

    def trim(self, layers: Sequence[str]) -> FeatureExtractor:
        """Keep only ``layers`` (a subset of :attr:`layers`): they become :attr:`layers`,
        and subclasses drop what no longer serves them (deeper modules, unused filters)
        to save memory. What is kept computes exactly as before. Returns ``self``.

        Used by :func:`texsynth.stats.features.prepare`, which builds an extractor on its defaults
        and trims it to the layers a run uses (as pystiche's ``MultiLayerEncoder.trim``).
        """
        chosen = self.check_layers(layers)
        if not self.covers(chosen):
            raise UsageError(f"cannot trim extractor {type(self).__name__} to "
                             f"{', '.join(chosen)}: it was built for {', '.join(self.layers)}")
        self.layers = chosen
        return self

    def covers(self, layers: Sequence[str]) -> bool:
        """Whether this instance, as built, can compute every one of ``layers`` (default:
        they are among :attr:`layers`; a truncated network may cover shallower ones)."""
        return set(layers) <= set(self.layers)

    def wrap_margin(self, layer: str) -> int | tuple[int, ...]:
        """Positions at each end of every spatial axis of ``layer``'s maps whose receptive
        field wraps around the input (circular padding), 0 if none (the default): one
        number for every axis, or one per spatial axis (tensor order) for filters whose
        extent differs between axes (e.g. 3 taps along the first axis and 11 along the
        others); see :func:`axis_margins`.

        An exemplar is not periodic: where its maps wrap, they see its top edge meet its
        bottom edge, a seam that is not part of the texture. :class:`TextureObjective`
        leaves these positions out of the exemplar's statistics (outputs, which tile, keep
        all of theirs); otherwise outputs reproduce the seam as straight, axis-aligned
        edges, most visibly on smooth textures.
        """
        del layer
        return 0

    def block_geometry(self, layers: Sequence[str]) -> BlockGeometry | None:
        """How maps of ``layers`` can be computed block by block on crops of the input
        (see :mod:`texsynth.stats.blockwise`), or ``None`` if they cannot (the default).

        An extractor whose maps at a position depend only on input positions within a
        bounded distance (convolutions, pooling, pointwise operations; no global
        normalisation) can declare the halo that covers that distance, the alignment its
        strides need and whether its padding is circular; optimisation of large signals
        then runs in the memory of one block.
        """
        del layers
        return None

    def freeze(self) -> FeatureExtractor:
        """Switch to eval mode and stop gradients to parameters; returns ``self``."""
        self.eval()
        for param in self.parameters():
            param.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Extractors always stay in eval mode (no dropout or batch-norm updates)."""
        return super().train(False)

    def forward(self, x: torch.Tensor, layers: Sequence[str] | None = None
                ) -> dict[str, torch.Tensor]:
        """Return the feature maps of ``layers`` (default :attr:`layers`) for input ``x``."""
        wanted = self.check_layers(layers) if layers is not None else self.layers
        return self._forward(self.preprocess(x), wanted)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Map the domain's model input ``(N, C_in, *spatial)`` to what the network reads,
        differentiably (default: unchanged)."""
        return x

    @abstractmethod
    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Compute exactly ``layers``; run no deeper than the deepest of them."""


@dataclass(frozen=True)
class BlockGeometry:
    """How an extractor's features can be computed block by block.

    Attributes:
        halo: input positions each block's crop needs on every side of the block (at
            least the deepest layer's receptive field beyond its centre), a multiple of
            ``align``.
        align: block starts are multiples of this (the largest pooling stride), so a
            crop's maps line up with the whole input's.
        strides: ``{layer: input positions per map position}`` for every layer.
        wrap: crops wrap around the input (circular padding everywhere); otherwise they
            are clipped at its borders.
    """

    halo: int
    align: int
    strides: Mapping[str, int]
    wrap: bool

    def __post_init__(self) -> None:
        if self.align < 1 or self.halo < 0 or self.halo % self.align:
            raise ValueError(f"halo {self.halo} must be a non-negative multiple of the "
                             f"alignment {self.align}")
        bad = [name for name, stride in self.strides.items()
               if stride < 1 or self.align % stride]
        if bad:
            raise ValueError(f"layer strides must divide the alignment {self.align}: "
                             f"{', '.join(bad)}")
