"""Shared test fixtures: real exemplars from ../shared/data, tiny sizes, and a toy domain.

The toy domain (``toy_manager``, ``toy_domain``, ``toy_extractor``) is a 1-D signal in
[-1, 1] stored in ``.toy`` text files, with a one-layer random-convolution extractor,
registered on a fresh plugin manager for one test; it needs no domain plugin.
"""

from __future__ import annotations

import importlib
import os
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import texsynth

# Tiny test tensors gain nothing from threads, and on a shared 2-core machine two threads
# can make a step many times slower.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TEXSYNTH_SHARED_DATA", REPO.parent / "shared" / "data"))
EXAMPLE_DATA = REPO / "examples" / "data"


def _find(name: str, kind: str) -> Path:
    for base in (SHARED_DATA / kind, EXAMPLE_DATA):
        if (base / name).is_file():
            return base / name
    pytest.skip(f"sample file {name} not found under {SHARED_DATA / kind} or {EXAMPLE_DATA}")


@pytest.fixture
def shared_image() -> Callable[[str], Path]:
    """``shared_image("bricks.png")`` -> path of a real exemplar image."""
    return lambda name: _find(name, "images")


@pytest.fixture
def shared_audio() -> Callable[[str], Path]:
    """``shared_audio("rain.wav")`` -> path of a real exemplar clip."""
    return lambda name: _find(name, "audio")


# -- a tiny shared toy domain --------------------------------------------------------------
class ToyDomain(texsynth.Domain):
    """A 1-D domain over ``.toy`` text files: one line per time step, one column per channel.

    Values lie in [-1, 1]; the model input is the signal itself. Floats are written with
    ``repr`` so a save/load round trip is exact; metadata goes to a ``.json`` sidecar.
    """

    name = "toy"
    spatial_dims = 1
    suffixes = (".toy",)
    value_range = (-1.0, 1.0)
    description = "test-only 1-D signals in text files"
    default_extractor = "toy-conv"

    def load(self, path: Path) -> torch.Tensor:
        if not path.is_file():
            raise texsynth.InputError(path, "no such file")
        rows = [[float(v) for v in line.split()] for line in path.read_text().splitlines()
                if line.strip()]
        if not rows:
            raise texsynth.InputError(path, "is empty")
        return torch.tensor(rows, dtype=torch.float32).T.reshape(1, len(rows[0]), len(rows))

    def save(self, signal: torch.Tensor, path: Path, *,
             metadata: Mapping[str, Any] | None = None) -> Path:
        values = signal.detach().float().cpu().reshape(-1, signal.shape[-1])  # (C, T)
        path.write_text("".join(" ".join(repr(v) for v in column) + "\n"
                                for column in values.T.tolist()))
        if metadata is not None:
            write_sidecar(path, metadata)
        return path

    def to_features_input(self, signal: torch.Tensor) -> torch.Tensor:
        return signal


class ToyExtractor(texsynth.FeatureExtractor):
    """One random circular 1-D convolution (``conv``) and its ReLU (``relu``)."""

    available_layers = ("conv", "relu")
    default_texture_layers = ("relu",)
    default_content_layers = ("conv",)
    spatial_dims = 1

    def __init__(self, config: texsynth.ExtractorConfig) -> None:
        super().__init__(config.layers)
        gen = torch.Generator().manual_seed(config.seed)
        self.conv = nn.Conv1d(1, 16, 5, padding=2, padding_mode="circular", bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen))

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        conv = self.conv(x)
        maps = {"conv": conv, "relu": torch.relu(conv)}
        return {name: maps[name] for name in layers}


def _core_write_sidecar() -> Callable[[Path, Mapping[str, Any]], Path]:
    """The core's ``write_sidecar``: top-level if exported, else from the module that
    defines :class:`texsynth.Domain` (so the tests follow it if it moves)."""
    found = getattr(texsynth, "write_sidecar", None)
    if found is None:
        found = importlib.import_module(texsynth.Domain.__module__).write_sidecar
    return found


def write_sidecar(path: Path, metadata: Mapping[str, Any]) -> Path:
    return _core_write_sidecar()(path, metadata)


@pytest.fixture
def core_write_sidecar() -> Callable[[Path, Mapping[str, Any]], Path]:
    """The core's ``write_sidecar(path, metadata)`` function."""
    return _core_write_sidecar()


def make_toy_plugin() -> types.SimpleNamespace:
    """A fresh plugin object registering :class:`ToyDomain` and the ``toy-conv`` extractor."""

    @texsynth.hookimpl
    def texsynth_register_domains(register: Callable[..., None]) -> None:
        register(ToyDomain)

    @texsynth.hookimpl
    def texsynth_register_extractors(register: Callable[..., None]) -> None:
        register("toy-conv", lambda config, domain: ToyExtractor(config), domains=["toy"],
                 description="random conv")

    return types.SimpleNamespace(
        texsynth_register_domains=texsynth_register_domains,
        texsynth_register_extractors=texsynth_register_extractors,
    )


@pytest.fixture
def toy_plugin_factory() -> Callable[[], types.SimpleNamespace]:
    """``toy_plugin_factory()`` -> a new toy plugin object (register it under any name)."""
    return make_toy_plugin


@pytest.fixture
def toy_manager(texsynth_isolated_plugins: texsynth.PluginManager) -> texsynth.PluginManager:
    """A fresh plugin manager (core plugin only, installed process-wide for the test) with
    the toy plugin registered as ``"toy"``."""
    texsynth_isolated_plugins.register(make_toy_plugin(), name="toy")
    return texsynth_isolated_plugins


@pytest.fixture
def toy_domain(toy_manager: texsynth.PluginManager) -> texsynth.Domain:
    """The registered :class:`ToyDomain` instance (1-D, values in [-1, 1], ``.toy``)."""
    return toy_manager.get_domain("toy")


@pytest.fixture
def toy_extractor(toy_manager: texsynth.PluginManager,
                  toy_domain: texsynth.Domain) -> texsynth.FeatureExtractor:
    """The frozen ``toy-conv`` extractor (seed 0) built through the plugin manager."""
    return toy_manager.create_extractor(texsynth.ExtractorConfig("toy-conv"), toy_domain)


@pytest.fixture
def toy_exemplar() -> torch.Tensor:
    """A 1-channel, 128-step exemplar ``(1, 1, 128)`` for the toy domain (a sine)."""
    t = torch.linspace(0, 6 * torch.pi, 128)
    return (0.8 * torch.sin(t)).reshape(1, 1, -1)
