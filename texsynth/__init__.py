"""texsynth: neural texture synthesis and stylisation across domains.

Textures are described by Gram matrices of a network's feature maps (Gatys et al.);
new textures are made by optimisation or by feed-forward generator networks trained once
(Ulyanov et al., "Texture Networks", 2016). Domains (images, sound, ...) are plugins.

>>> import texsynth
>>> result = texsynth.synthesize("bricks.png", size=(256, 512), steps=200)  # doctest: +SKIP
>>> texsynth.save(result, "out.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from . import plugins as _plugins
from .domain import ColorPreservation, Domain, parse_size
from .errors import (
    InputError,
    NotFoundError,
    PluginError,
    ResourceError,
    TexsynthError,
    UsageError,
    WeightsUnavailableError,
)
from .extractor import ExtractorConfig, FeatureExtractor
from .feedforward import hooks as _feedforward_hooks
from .feedforward.checkpoint import load_generator
from .feedforward.loading import SampleResult, TrainedGenerator, load_trained
from .feedforward.sample_files import sample_to_file
from .feedforward.sampling import apply, refine, sample
from .feedforward.sampling import generate as sample_generator
from .feedforward.training import TrainResult, train_generator
from .generator import Generator, GeneratorConfig
from .hookspecs import hookimpl
from .optim.loop import OptimizationResult
from .optim.synthesis import stylize, synthesize
from .plugins import PluginManager, get_plugin_manager
from .runtime.device import resolve_device
from .runtime.rng import seed_everything
from .stats import hooks as _stats_hooks
from .stats.features import Features, FeatureSpec, prepare
from .stats.losses import (
    CombinedLoss,
    ContentLoss,
    TextureLoss,
    content_loss,
    gram_matrix,
    texture_loss,
)
from .stats.objective import TextureObjective
from .stats.sliced import SlicedWassersteinLoss, sliced_wasserstein
from .version import __version__

# The sub-packages' own registrations are core plugins (the contract imports none of them).
_plugins.add_core_plugin("texsynth.stats", _stats_hooks)
_plugins.add_core_plugin("texsynth.feedforward", _feedforward_hooks)

__all__ = [
    "ColorPreservation",
    "CombinedLoss",
    "ContentLoss",
    "Domain",
    "ExtractorConfig",
    "FeatureExtractor",
    "FeatureSpec",
    "Features",
    "Generator",
    "GeneratorConfig",
    "InputError",
    "NotFoundError",
    "OptimizationResult",
    "PluginError",
    "PluginManager",
    "ResourceError",
    "SampleResult",
    "SlicedWassersteinLoss",
    "TexsynthError",
    "TextureLoss",
    "TextureObjective",
    "TrainResult",
    "TrainedGenerator",
    "UsageError",
    "WeightsUnavailableError",
    "__version__",
    "apply",
    "content_loss",
    "get_domain",
    "get_extractor",
    "get_plugin_manager",
    "gram_matrix",
    "hookimpl",
    "load",
    "load_generator",
    "load_trained",
    "parse_size",
    "prepare",
    "refine",
    "resolve_device",
    "sample",
    "sample_generator",
    "sample_to_file",
    "save",
    "seed_everything",
    "sliced_wasserstein",
    "stylize",
    "synthesize",
    "texture_loss",
    "train_generator",
]


def get_domain(name_or_path: str | os.PathLike[str]) -> Domain:
    """A domain by registry name (``"image"``) or by a file path's suffix."""
    manager = get_plugin_manager()
    text = os.fspath(name_or_path)
    if text in manager.domains():
        return manager.get_domain(text)
    return manager.domain_for_path(text)


def get_extractor(name: str, domain: str | Domain, **config: Any) -> FeatureExtractor:
    """Build the extractor ``name`` for ``domain``; ``config`` fills :class:`ExtractorConfig`."""
    dom = domain if isinstance(domain, Domain) else get_plugin_manager().get_domain(domain)
    return get_plugin_manager().create_extractor(ExtractorConfig(name=name, **config), dom)


def load(path: str | os.PathLike[str], *, domain: str | Domain | None = None) -> torch.Tensor:
    """Read a file into a signal ``(1, C, *spatial)`` with its domain's loader."""
    dom = domain if isinstance(domain, Domain) else get_domain(domain or path)
    return dom.load(Path(path))


def save(result: OptimizationResult | torch.Tensor, path: str | os.PathLike[str], *,
         domain: str | Domain | None = None, metadata: dict[str, Any] | None = None) -> Path:
    """Write a result (or a signal) to ``path`` atomically, with its settings as metadata."""
    dom = domain if isinstance(domain, Domain) else get_domain(domain or path)
    if isinstance(result, OptimizationResult):
        signal, meta = result.signal, {**result.settings, **(metadata or {})}
    else:
        signal, meta = result, dict(metadata or {})
    return dom.save(signal, Path(path), metadata=meta)
