"""Test fixtures: the repository's real sample exemplars, tiny sizes, and two toy domains.

Both toy domains are registered on a fresh plugin manager for one test and need no
domain plugin:

* ``toy`` (``toy_manager``, ``toy_domain``, ``toy_extractor``, ``toy_exemplar``): a 1-D
  signal in [-1, 1] stored in ``.toy`` text files, with a one-layer random-convolution
  extractor ``toy-conv``.
* ``toy-image`` (``toy_image_manager``, ``toy_image_domain``, ``toy_image_extractor``,
  ``toy_image_exemplar``): RGB images in [0, 1] stored as ``.png``, with a three-layer
  random-convolution extractor ``toy-image-conv``. The same plugin registers two variants:
  ``toy-image-preferring`` (with :meth:`~texsynth.Domain.defaults`) and ``toy-image-logit``
  (optimised through the :class:`Logit` representation).

Sample files (``sample_image``, ``sample_audio``) come from ``examples/data`` inside the
repository and nowhere else (a clone must pass its own tests with nothing beside it); a
missing one fails the test that asks for it.
"""

from __future__ import annotations

import signal
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import texsynth
from texsynth.domain import Representation, write_sidecar

# Tiny test tensors gain nothing from threads, and on a shared 2-core machine two threads
# can make a step many times slower.
torch.set_num_threads(1)

# A runner that starts the tests in the background (``cmd &`` in a script) hands them
# SIGINT ignored, and an ignored signal stays ignored in every process they start; the
# Ctrl-C tests need it delivered, so the default handler goes back first.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "examples" / "data"


def _find(name: str) -> Path:
    path = SAMPLE_DATA / name
    if not path.is_file():
        pytest.fail(f"sample file {name} not found in {SAMPLE_DATA}")
    return path


@pytest.fixture(scope="session")
def sample_image() -> Callable[[str], Path]:
    """``sample_image("bricks.png")`` -> path of a real exemplar image in examples/data."""
    return _find


@pytest.fixture(scope="session")
def sample_audio() -> Callable[[str], Path]:
    """``sample_audio("rain.wav")`` -> path of a real exemplar clip in examples/data."""
    return _find


# -- a tiny toy domain --------------------------------------------------------------
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


@pytest.fixture
def core_write_sidecar() -> Callable[[Path, Mapping[str, Any]], Path]:
    """The core's ``write_sidecar(path, metadata)`` function."""
    return write_sidecar


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
def toy_texture_loss(toy_manager: texsynth.PluginManager
                     ) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """``toy_texture_loss(exemplar, signal)``: the plain texture loss of ``signal`` against
    one toy exemplar from a fresh objective (independent of the optimiser's record)."""
    domain = toy_manager.get_domain("toy")
    net = toy_manager.create_extractor(texsynth.ExtractorConfig("toy-conv"), domain)

    def loss(exemplar: torch.Tensor, signal: torch.Tensor) -> float:
        objective = texsynth.TextureObjective(domain, net, [exemplar],
                                              texture_layers=net.default_texture_layers)
        with torch.no_grad():
            return float(objective(signal))
    return loss


@pytest.fixture
def toy_exemplar() -> torch.Tensor:
    """A 1-channel, 128-step exemplar ``(1, 1, 128)`` for the toy domain (a sine)."""
    t = torch.linspace(0, 6 * torch.pi, 128)
    return (0.8 * torch.sin(t)).reshape(1, 1, -1)


# -- a tiny toy image domain --------------------------------------------------------
def load_rgb(path: Path, size: int | None = None) -> torch.Tensor:
    """``(1, 3, H, W)`` in [0, 1] from an image file, optionally resized to ``size``²
    (bicubic, on the 8-bit image)."""
    from PIL import Image  # Pillow comes with the image plugin, not the core

    if not path.is_file():
        raise texsynth.InputError(path, "no such file")
    image = Image.open(path).convert("RGB")
    if size is not None:
        image = image.resize((size, size), Image.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


class ToyImageDomain(texsynth.Domain):
    """RGB ``.png`` images in [0, 1]; the model input is the signal, centred and scaled.

    Saving rounds to 8 bits; metadata goes to a ``.json`` sidecar.
    """

    name = "toy-image"
    spatial_dims = 2
    suffixes = (".png",)
    value_range = (0.0, 1.0)
    description = "test-only RGB images"
    default_extractor = "toy-image-conv"

    def load(self, path: Path) -> torch.Tensor:
        return load_rgb(path)

    def save(self, signal: torch.Tensor, path: Path, *,
             metadata: Mapping[str, Any] | None = None) -> Path:
        from PIL import Image

        pixels = (signal.detach().float().cpu().reshape(3, *signal.shape[-2:])
                  .clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8))
        Image.fromarray(pixels.permute(1, 2, 0).contiguous().numpy(), "RGB").save(path)
        if metadata is not None:
            write_sidecar(path, metadata)
        return path

    def to_features_input(self, signal: torch.Tensor) -> torch.Tensor:
        return (signal - 0.5) / 0.25


class PreferringImageDomain(ToyImageDomain):
    """The toy image domain with preferred settings (:meth:`texsynth.Domain.defaults`)."""

    name = "toy-image-preferring"
    suffixes = (".toypref",)

    def defaults(self) -> dict[str, Any]:
        return {"steps": 3, "style_weight": 5.0, "train_size": (24, 24),
                "generator_options": {"num_scales": 2}}


class Logit(Representation):
    """Optimise logits of the signal; decode with a sigmoid."""

    name = "logit"

    def encode(self, signal: torch.Tensor) -> torch.Tensor:
        return torch.logit(signal.clamp(0.01, 0.99)).detach()

    def to_features_input(self, variable: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(variable) - 0.5) / 0.25

    def decode(self, variable: torch.Tensor, extents: tuple[int, ...]) -> torch.Tensor:
        assert tuple(variable.shape[2:]) == extents
        return torch.sigmoid(variable)

    def settings(self) -> dict[str, Any]:
        return {"squash": "sigmoid"}


class LogitImageDomain(ToyImageDomain):
    """The toy image domain optimised in the :class:`Logit` representation."""

    name = "toy-image-logit"
    suffixes = (".toylogit",)

    def representation(self) -> Representation | None:
        return Logit()


class ToyImageExtractor(texsynth.FeatureExtractor):
    """Three random 3×3 conv + ReLU layers with 2× average pooling between them."""

    available_layers = ("relu1", "relu2", "relu3")
    default_texture_layers = ("relu1", "relu2", "relu3")
    default_content_layers = ("relu2",)

    def __init__(self, config: texsynth.ExtractorConfig) -> None:
        super().__init__(config.layers)
        rng = torch.Generator().manual_seed(config.seed)
        self.convs = nn.ModuleList()
        for cin, cout in ((3, 32), (32, 48), (48, 48)):
            conv = nn.Conv2d(cin, cout, 3, padding=1)
            with torch.no_grad():
                conv.weight.normal_(0.0, (2.0 / (cin * 9)) ** 0.5, generator=rng)
                conv.bias.zero_()  # type: ignore[union-attr]
            self.convs.append(conv)

    def _forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        out = {}
        deepest = max(self.available_layers.index(name) for name in layers)
        for index, conv in enumerate(self.convs[:deepest + 1]):
            x = F.relu(conv(F.avg_pool2d(x, 2) if index else x))
            if self.available_layers[index] in layers:
                out[self.available_layers[index]] = x
        return out


TOY_IMAGE_DOMAINS = (ToyImageDomain, PreferringImageDomain, LogitImageDomain)


def make_toy_image_plugin() -> types.SimpleNamespace:
    """A fresh plugin object registering the toy image domains and ``toy-image-conv``."""

    @texsynth.hookimpl
    def texsynth_register_domains(register: Callable[..., None]) -> None:
        for domain_class in TOY_IMAGE_DOMAINS:
            register(domain_class)

    @texsynth.hookimpl
    def texsynth_register_extractors(register: Callable[..., None]) -> None:
        register("toy-image-conv", lambda config, domain: ToyImageExtractor(config),
                 domains=[d.name for d in TOY_IMAGE_DOMAINS], description="random convs")

    return types.SimpleNamespace(
        texsynth_register_domains=texsynth_register_domains,
        texsynth_register_extractors=texsynth_register_extractors,
    )


@pytest.fixture
def toy_image_manager(texsynth_isolated_plugins: texsynth.PluginManager
                      ) -> texsynth.PluginManager:
    """A fresh plugin manager (core plugin only, installed process-wide for the test) with
    the toy image plugin registered as ``"toy-image"``: domains ``toy-image``,
    ``toy-image-preferring`` and ``toy-image-logit``, extractor ``toy-image-conv``."""
    texsynth_isolated_plugins.register(make_toy_image_plugin(), name="toy-image")
    return texsynth_isolated_plugins


@pytest.fixture
def toy_image_domain(toy_image_manager: texsynth.PluginManager) -> texsynth.Domain:
    """The registered :class:`ToyImageDomain` instance (2-D RGB, values in [0, 1], ``.png``)."""
    return toy_image_manager.get_domain("toy-image")


@pytest.fixture
def toy_image_extractor(toy_image_manager: texsynth.PluginManager,
                        toy_image_domain: texsynth.Domain) -> texsynth.FeatureExtractor:
    """The frozen ``toy-image-conv`` extractor (seed 0) built through the plugin manager."""
    return toy_image_manager.create_extractor(texsynth.ExtractorConfig("toy-image-conv"),
                                              toy_image_domain)


@pytest.fixture(scope="session")
def toy_image_loader() -> Callable[..., torch.Tensor]:
    """``toy_image_loader(path, size=None)`` -> ``(1, 3, H, W)`` in [0, 1], resized to
    ``size``² when given (what :meth:`ToyImageDomain.load` reads, optionally smaller)."""
    return load_rgb


@pytest.fixture(scope="session")
def toy_image_exemplar(sample_image: Callable[[str], Path]) -> torch.Tensor:
    """The real grass exemplar at 64², ``(1, 3, 64, 64)`` in [0, 1], for the toy image
    domain (read once per session; do not modify it in place)."""
    return load_rgb(sample_image("grass.png"), 64)
