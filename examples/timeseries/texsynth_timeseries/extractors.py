"""Random single-layer Conv1d nets of several widths over time."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from texsynth import ExtractorConfig, FeatureExtractor, UsageError

DEFAULT_WIDTHS = (3, 5, 9, 17, 33, 65, 129)

#: Options of ``ts-random`` (``ExtractorConfig.options``) with one-line help, given to
#: ``register(..., options=OPTIONS)`` so that ``texsynth plugins`` lists them.
OPTIONS: dict[str, str] = {
    "widths": "odd positive filter widths in steps, a list such as [3,9,33] "
              "(default [3,5,9,17,33,65,129])",
    "filters": "random filters per width, a positive int (default 64)",
}


class RandomWidthsExtractor(FeatureExtractor):
    """Parallel one-layer random nets: for each width ``w`` a Conv1d (``filters`` maps,
    Gaussian weights with unit norm per filter, no bias) then ReLU; layer ``w{w}`` is that
    net's output ``(N, filters, T)``. Circular padding keeps the length and makes
    generated series loop. Options (:data:`OPTIONS`): ``widths`` (list of odd ints),
    ``filters`` (default 64); the number of input channels is taken from each input
    ``(N, C, T)``.
    """

    spatial_dims = 1

    def __init__(self, config: ExtractorConfig) -> None:
        widths = tuple(int(w) for w in config.options.get("widths", DEFAULT_WIDTHS))
        if any(w < 1 or w % 2 == 0 for w in widths):
            raise UsageError(f"ts-random: widths must be odd positive integers, got {widths}")
        self.available_layers = tuple(f"w{w}" for w in widths)
        self.default_texture_layers = self.available_layers
        self.default_content_layers = self.available_layers[:2]
        super().__init__(config.layers)
        self.widths = widths
        self.filters = int(config.options.get("filters", 64))
        self.seed = config.seed
        self._weights: dict[int, torch.Tensor] = {}

    def _weight(self, width: int, channels: int, device: torch.device) -> torch.Tensor:
        key = width * 1000 + channels
        if key not in self._weights:
            gen = torch.Generator().manual_seed(self.seed * 7919 + width)
            weight = torch.randn(self.filters, channels, width, generator=gen)
            weight = weight - weight.mean(dim=(1, 2), keepdim=True)
            weight = weight / weight.flatten(1).norm(dim=1).clamp_min(1e-8)[:, None, None]
            self._weights[key] = weight
        return self._weights[key].to(device)

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        out = {}
        for name in layers:
            width = int(name[1:])
            if width > x.shape[-1]:
                raise UsageError(f"ts-random: series of {x.shape[-1]} steps is shorter than "
                                 f"the filter width {width}; drop layer {name}")
            padded = F.pad(x, (width // 2, width // 2), mode="circular")
            out[name] = F.relu(F.conv1d(padded, self._weight(width, x.shape[1], x.device)))
        return out

