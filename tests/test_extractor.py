"""The :class:`texsynth.FeatureExtractor` contract and :class:`texsynth.ExtractorConfig`,
on the toy extractor (one random circular convolution and its ReLU)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

import texsynth
from texsynth import ExtractorConfig, FeatureExtractor, UsageError


# -- ExtractorConfig ----------------------------------------------------------------------
@pytest.mark.parametrize("config", [
    ExtractorConfig(name="toy-conv"),
    ExtractorConfig(name="toy-conv", layers=("relu", "conv"), seed=7, weights="/w/net.pt",
                    options={"pooling": "avg", "filters": 4, "nested": {"a": [1, 2]}}),
])
def test_extractor_config_round_trips_through_json(config: ExtractorConfig) -> None:
    data = config.to_dict()
    again = ExtractorConfig.from_dict(json.loads(json.dumps(data)))
    assert again == config
    assert isinstance(again.layers, tuple) or again.layers is None


def test_extractor_config_from_a_minimal_dict_uses_the_defaults() -> None:
    config = ExtractorConfig.from_dict({"name": "toy-conv"})
    assert config == ExtractorConfig(name="toy-conv", layers=None, seed=0, weights=None,
                                     options={})
    assert config.weights_path is None
    assert ExtractorConfig("x", weights="/w/net.pt").weights_path is not None


def test_extractor_config_dict_is_a_copy() -> None:
    config = ExtractorConfig(name="toy-conv", options={"k": 1})
    data = config.to_dict()
    data["options"]["k"] = 2
    assert config.options == {"k": 1}
    again = ExtractorConfig.from_dict(data)
    data["options"]["k"] = 3
    assert again.options == {"k": 2}


# -- check_layers ------------------------------------------------------------------------
def test_check_layers_accepts_known_layers_in_the_given_order(
        toy_extractor: FeatureExtractor) -> None:
    assert toy_extractor.check_layers(["relu", "conv"]) == ("relu", "conv")


def test_check_layers_refuses_unknown_layers_listing_the_available(
        toy_extractor: FeatureExtractor) -> None:
    with pytest.raises(UsageError, match=r"unknown layer\(s\) pool, fc for extractor "
                                         r"ToyExtractor; available: conv, relu"):
        toy_extractor.check_layers(["conv", "pool", "fc"])
    with pytest.raises(UsageError, match="unknown layer"):
        toy_extractor(torch.zeros(1, 1, 16), layers=["pool"])


def test_check_layers_refuses_an_empty_selection(toy_extractor: FeatureExtractor) -> None:
    with pytest.raises(UsageError, match="no layers selected for extractor ToyExtractor"):
        toy_extractor.check_layers([])
    with pytest.raises(UsageError, match="no layers selected"):
        toy_extractor(torch.zeros(1, 1, 16), layers=[])


def test_extractor_built_with_unknown_layers_is_refused(toy_manager: texsynth.PluginManager,
                                                        toy_domain: texsynth.Domain) -> None:
    with pytest.raises(UsageError, match=r"unknown layer.*nope"):
        toy_manager.create_extractor(ExtractorConfig("toy-conv", layers=("nope",)), toy_domain)


def test_layers_default_to_the_texture_layers_and_forward_returns_them(
        toy_extractor: FeatureExtractor, toy_manager: texsynth.PluginManager,
        toy_domain: texsynth.Domain) -> None:
    assert toy_extractor.layers == toy_extractor.default_texture_layers == ("relu",)
    x = torch.randn(1, 1, 32)
    assert set(toy_extractor(x)) == {"relu"}
    both = toy_extractor(x, layers=("conv", "relu"))
    assert set(both) == {"conv", "relu"}
    assert torch.equal(both["relu"], torch.relu(both["conv"]))
    chosen = toy_manager.create_extractor(ExtractorConfig("toy-conv", layers=("conv",)),
                                          toy_domain)
    assert chosen.layers == ("conv",) and set(chosen(x)) == {"conv"}


# -- frozen, eval mode, gradients ------------------------------------------------------------
def test_extractors_are_frozen(toy_extractor: FeatureExtractor) -> None:
    params = list(toy_extractor.parameters())
    assert params, "the toy extractor has weights"
    assert not any(p.requires_grad for p in params)
    out = toy_extractor(torch.randn(1, 1, 32))["relu"]
    assert not out.requires_grad, "with a constant input nothing needs a gradient"


def test_extractors_stay_in_eval_mode_after_train(toy_extractor: FeatureExtractor) -> None:
    assert not toy_extractor.training
    returned = toy_extractor.train()
    assert returned is toy_extractor
    assert not any(module.training for module in toy_extractor.modules())
    toy_extractor.train(True)
    assert not any(module.training for module in toy_extractor.modules())
    toy_extractor.eval()
    assert not toy_extractor.training


def test_gradients_reach_the_input(toy_extractor: FeatureExtractor) -> None:
    x = torch.randn(1, 1, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    feats = toy_extractor(x, layers=("conv", "relu"))
    loss = sum(texsynth.gram_matrix(m).sum() for m in feats.values())
    loss.backward()  # type: ignore[union-attr]
    assert x.grad is not None
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in toy_extractor.parameters())


# -- preprocess --------------------------------------------------------------------------
def test_default_preprocess_is_the_identity(toy_extractor: FeatureExtractor) -> None:
    x = torch.randn(2, 1, 16)
    assert torch.equal(toy_extractor.preprocess(x), x)
    conv = toy_extractor.get_submodule("conv")  # the toy's one layer, applied by hand
    assert torch.equal(toy_extractor(x, layers=("conv",))["conv"], conv(x))


def test_forward_applies_preprocess_before_the_network(
        toy_extractor: FeatureExtractor) -> None:
    calls: list[tuple[int, ...]] = []

    toy: Any = type(toy_extractor)  # built from an ExtractorConfig

    class Shifted(toy):
        """The toy extractor reading ``2·x − 0.5`` (like a normalisation)."""

        def preprocess(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(tuple(x.shape))
            return 2 * x - 0.5

    config = ExtractorConfig("toy-conv", layers=("conv",))
    shifted: FeatureExtractor = Shifted(config).freeze()
    plain: FeatureExtractor = toy(config).freeze()
    x = torch.randn(1, 1, 24, generator=torch.Generator().manual_seed(1), requires_grad=True)
    out = shifted(x)["conv"]
    assert calls == [(1, 1, 24)], "forward calls preprocess once, on the input"
    assert torch.allclose(out, plain(2 * x - 0.5)["conv"])
    assert not torch.allclose(out, plain(x)["conv"])
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "preprocess must be differentiable"
