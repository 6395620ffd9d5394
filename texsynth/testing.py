"""Pytest fixtures for texsynth and its plugin authors (loaded as a pytest plugin).

* ``texsynth_plugins`` — a fresh :class:`~texsynth.PluginManager` installed as the
  process-wide manager for one test; ``texsynth_plugins.register(module_or_object)``
  adds a plugin for that test only. Entry points are loaded as usual.
* ``texsynth_isolated_plugins`` — the same, without entry points (only the core and
  what the test registers).
* :class:`DomainContract` — contract tests a domain plugin runs against itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from .domain import Domain
from .errors import InputError
from .extractor import ExtractorConfig
from .optim.synthesis import synthesize
from .plugins import PluginManager, get_plugin_manager, set_plugin_manager
from .stats.features import spec_from_defaults
from .stats.losses import gram_matrix


def _managed(load_entry_points: bool) -> Iterator[PluginManager]:
    manager = PluginManager(load_entry_points=load_entry_points)
    old = set_plugin_manager(manager)
    try:
        yield manager
    finally:
        set_plugin_manager(old)


@pytest.fixture
def texsynth_plugins() -> Iterator[PluginManager]:
    """A fresh plugin manager (with entry points) installed for one test."""
    yield from _managed(True)


@pytest.fixture
def texsynth_isolated_plugins() -> Iterator[PluginManager]:
    """A fresh plugin manager with only the core's plugin, installed for one test."""
    yield from _managed(False)


class DomainContract:
    """Reusable contract tests for a domain plugin; subclass it in your test suite.

    Provide three fixtures in the subclass (or a conftest): ``domain`` (a
    :class:`~texsynth.Domain` instance), ``sample_path`` (a small real file of that domain)
    and ``extractor_name`` (an extractor registered for it). Every ``test_*`` method then
    runs against your plugin::

        class TestMyDomain(DomainContract):
            @pytest.fixture
            def domain(self): return MyDomain()
            @pytest.fixture
            def sample_path(self, tmp_path): ...
            @pytest.fixture
            def extractor_name(self): return "my-extractor"

    ``round_trip_atol`` is the tolerance of a save/load round trip (quantised formats need
    one); ``synthesis_steps`` and ``synthesis_ratio`` set how far a short synthesis must
    lower the loss.
    """

    round_trip_atol: float = 1e-3
    synthesis_steps: int = 15
    synthesis_ratio: float = 0.5

    def test_load_gives_a_valid_signal(self, domain: Domain, sample_path: Path) -> None:
        signal = domain.load(sample_path)
        assert signal.dim() == domain.spatial_dims + 2, "load must return (1, C, *spatial)"
        assert signal.shape[0] == 1
        assert signal.dtype == torch.float32
        low, high = domain.value_range
        assert torch.isfinite(signal).all()
        assert signal.min() >= low and signal.max() <= high

    def test_suffix_picks_the_domain(self, domain: Domain, sample_path: Path) -> None:
        assert sample_path.suffix.lower() in domain.suffixes
        assert get_plugin_manager().domain_for_path(sample_path).name == domain.name

    def test_save_load_round_trip(self, domain: Domain, sample_path: Path,
                                  tmp_path: Path) -> None:
        signal = domain.load(sample_path)
        out = tmp_path / f"round_trip{sample_path.suffix}"
        written = domain.save(signal, out, metadata={"seed": 1})
        assert written.exists()
        again = domain.load(written)
        assert again.shape == signal.shape
        assert torch.allclose(again, signal, atol=self.round_trip_atol)
        leftovers = [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
        assert not leftovers, f"temporary files left behind: {leftovers}"

    def test_missing_file_is_an_input_error(self, domain: Domain, tmp_path: Path) -> None:
        missing = tmp_path / f"missing{domain.suffixes[0]}"
        with pytest.raises(InputError, match="missing"):
            domain.load(missing)

    def test_extractor_returns_named_maps(self, domain: Domain, sample_path: Path,
                                          extractor_name: str) -> None:
        net = get_plugin_manager().create_extractor(ExtractorConfig(extractor_name), domain)
        feats = net(net.input_of(domain, domain.load(sample_path)))
        assert set(feats) == set(net.layers)
        for name, maps in feats.items():
            assert maps.shape[0] == 1, f"layer {name} lost the batch axis"
            assert torch.isfinite(maps).all(), f"layer {name} has non-finite values"
        assert not any(p.requires_grad for p in net.parameters()), "extractor not frozen"

    def test_gradients_reach_the_signal(self, domain: Domain, sample_path: Path,
                                        extractor_name: str) -> None:
        net = get_plugin_manager().create_extractor(ExtractorConfig(extractor_name), domain)
        signal = domain.load(sample_path).requires_grad_(True)
        feats = net(net.input_of(domain, signal))
        sum(gram_matrix(m).sum() for m in feats.values()).backward()  # type: ignore[union-attr]
        assert signal.grad is not None and torch.isfinite(signal.grad).all()
        assert signal.grad.abs().sum() > 0

    def test_preferences_and_config_are_well_formed(self, domain: Domain) -> None:
        known = {"steps", "init", "style_weight", "content_weight", "train_size",
                 "generator_options"}
        preferred = domain.defaults()
        assert set(preferred) <= known, f"unknown defaults: {set(preferred) - known}"
        if "train_size" in preferred:
            assert len(preferred["train_size"]) == domain.spatial_dims
        assert preferred.get("init", "noise") in ("noise", "spot")
        statistics = domain.train_features((64,) * domain.spatial_dims)
        if statistics is not None:
            spec_from_defaults(statistics)  # names known fields and well-formed also texts
        config = domain.config()
        json.dumps(config)  # stored in checkpoints
        assert isinstance(config, dict)

    def test_representation_round_trip(self, domain: Domain, sample_path: Path) -> None:
        rep = domain.representation()
        if rep is None:
            return  # optimisation works on the signal itself
        signal = domain.load(sample_path)
        variable = rep.encode(signal)
        assert torch.allclose(rep.to_features_input(variable), domain.to_features_input(signal),
                              atol=1e-4), "to_features_input(encode(s)) must match the domain's"
        decoded = rep.decode(rep.project(variable), tuple(signal.shape[2:]))
        assert decoded.shape == signal.shape

    def test_short_synthesis_lowers_the_loss(self, domain: Domain, sample_path: Path,
                                             extractor_name: str) -> None:
        result = synthesize(sample_path, domain=domain, extractor=extractor_name,
                            steps=self.synthesis_steps, seed=0, progress=False, device="cpu")
        assert result.losses[-1] < self.synthesis_ratio * result.losses[0]
        assert result.signal.shape[:2] == domain.load(sample_path).shape[:2]
