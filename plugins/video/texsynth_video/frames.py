"""``frames``: any registered picture extractor, run on every frame of a clip.

The appearance half of a two-stream description (Tesfaldet, Brubaker & Derpanis, 2018)
is a picture texture model applied frame by frame. This extractor borrows one from
whichever plugin registered it (``net``: ``vgg19`` for pretrained appearance,
``random-multiscale``, a third party's), through the core's public registry
(:meth:`texsynth.PluginManager.create_extractor`): the video plugin imports no other
plugin. The picture extractor is built for a registered domain of two axes that it
accepts, and reads what that domain's model input is (RGB in [0, 1] for pictures, which
is what clips hold per frame).

Maps come back with time put in: a picture extractor's ``(N·T, C, H', W')`` becomes
``(N, C, T, H', W')``, so Gram matrices pool every frame's positions (the mean of the
frames' Grams). Frames are independent here: for motion, add dynamics statistics
(``random-spacetime``'s ``d…`` layers, e.g. ``--also random-spacetime``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from texsynth.domain import Domain
from texsynth.errors import UsageError
from texsynth.extractor import ExtractorConfig, FeatureExtractor, axis_margins
from texsynth.plugins import get_plugin_manager

__all__ = ["DEFAULT_NET", "OPTIONS", "FramesExtractor", "build_frames"]

#: The picture extractor used when ``net`` is not given (download-free).
DEFAULT_NET = "random-multiscale"
_OWNER = "extractor 'frames'"
#: Options with one-line help, as registered; every other option goes to ``net``.
OPTIONS: dict[str, str] = {
    "net": f"registered picture extractor run on every frame (default {DEFAULT_NET}; "
           "e.g. vgg19); other options are passed to it",
}
#: Frames per batch through the picture extractor (bounds its working memory).
_FRAMES_PER_PASS = 16


class FramesExtractor(FeatureExtractor):
    """A picture extractor ``inner`` applied to every frame.

    Input: ``(N, C, T, H, W)``, the clip domain's model input. Output: ``{layer: (N, C_l,
    T, H_l, W_l)}`` for the inner extractor's layers (same names, same defaults).
    """

    spatial_dims = 3

    def __init__(self, inner: FeatureExtractor, net: str) -> None:
        if inner.spatial_dims != 2:
            raise UsageError(f"{_OWNER}: {net!r} reads {inner.spatial_dims} axes, not "
                             "pictures (2 axes)")
        if inner.reads != "model":
            raise UsageError(f"{_OWNER}: {net!r} reads signals of its own domain; it "
                             "cannot run on frames")
        self.available_layers = inner.available_layers
        self.default_texture_layers = inner.layers
        self.default_content_layers = inner.default_content_layers
        super().__init__(inner.layers)
        self.inner = inner
        self.net = net

    def trim(self, layers: Sequence[str]) -> FramesExtractor:
        """Trim the picture extractor to ``layers``."""
        super().trim(layers)
        self.inner.trim(self.layers)
        return self

    def covers(self, layers: Sequence[str]) -> bool:
        return self.inner.covers(layers)

    def wrap_margin(self, layer: str) -> tuple[int, ...]:
        """No wrap in time (frames are seen one by one); the picture extractor's in space."""
        return (0, *axis_margins(self.inner.wrap_margin(layer), 2))

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        batch, channels, frames = x.shape[:3]
        flat = x.movedim(2, 1).reshape(batch * frames, channels, *x.shape[3:])
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
        for start in range(0, flat.shape[0], _FRAMES_PER_PASS):
            maps = self.inner(flat[start:start + _FRAMES_PER_PASS], layers=layers)
            for name in layers:
                parts[name].append(maps[name])
        out = {}
        for name, items in parts.items():
            joined = torch.cat(items, dim=0)
            out[name] = joined.reshape(batch, frames, *joined.shape[1:]).movedim(1, 2)
        return out


def _picture_domain(net: str) -> Domain:
    """A registered domain of two axes that extractor ``net`` accepts."""
    manager = get_plugin_manager()
    info = manager.get_extractor_info(net)
    for name, domain in sorted(manager.domains().items()):
        if domain.domain_class.spatial_dims == 2 and info.accepts(name):
            return manager.get_domain(name)
    raise UsageError(f"{_OWNER}: extractor {net!r} accepts no picture domain (of 2 axes); "
                     "name one that does with net=NAME")


def build_frames(config: ExtractorConfig, domain: Domain) -> FramesExtractor:
    """Factory registered as ``frames``: ``config`` minus ``net`` goes to the picture
    extractor (its layers, seed, weights file and options)."""
    del domain
    options: Mapping[str, Any] = dict(config.options)
    net = str(options.get("net", DEFAULT_NET))
    if net == "frames":
        raise UsageError(f"{_OWNER}: net cannot be 'frames' itself")
    rest = {key: value for key, value in options.items() if key != "net"}
    inner_config = ExtractorConfig(net, layers=config.layers, seed=config.seed,
                                   weights=config.weights, options=rest)
    manager = get_plugin_manager()
    inner = manager.create_extractor(inner_config, _picture_domain(net))
    return FramesExtractor(inner, net)
