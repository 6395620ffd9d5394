"""FeatureSpec -> prepare() -> Features: one description of a run's statistics, an
extractor built once and trimmed, nothing passed in modified."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

import texsynth
from texsynth import ExtractorConfig, FeatureSpec, PluginManager, UsageError, prepare

EXEMPLAR = Path(__file__).resolve().parents[2] / "examples" / "data" / "bricks.png"


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[ExtractorConfig]:
    """Every config an extractor is built from, in order."""
    seen: list[ExtractorConfig] = []
    original = PluginManager.create_extractor

    def counting(self: PluginManager, config: ExtractorConfig, domain: Any) -> Any:
        seen.append(dataclasses.replace(config))
        return original(self, config, domain)

    monkeypatch.setattr(PluginManager, "create_extractor", counting)
    return seen


def _image() -> texsynth.Domain:
    return texsynth.get_domain("image")


def test_defaults_are_resolved_with_one_build(builds: list[ExtractorConfig]) -> None:
    spec = FeatureSpec(extractor="random-multiscale", extractor_options={"filters": 4})
    features = prepare(spec, _image(), seed=3, device="cpu")
    assert len(builds) == 1
    assert features.texture_layers == features.extractor.default_texture_layers
    assert features.content_layers == ()
    assert features.config.layers == features.texture_layers
    assert features.config.seed == 3
    assert spec.layers is None  # the spec given is not modified


def test_trimmed_extractor_computes_what_a_fresh_build_does(
        builds: list[ExtractorConfig]) -> None:
    spec = FeatureSpec(extractor="random-multiscale", extractor_options={"filters": 4})
    # content layers left to the defaults: built on the defaults, then trimmed
    features = prepare(spec.replace(content_layers=None), _image(), seed=1, device="cpu",
                       stylising=True)
    assert len(builds) == 1
    net = features.extractor
    assert set(net.layers) == set(features.texture_layers) | set(features.content_layers)
    fresh = texsynth.get_extractor("random-multiscale", "image", seed=1, layers=net.layers,
                                   options={"filters": 4})
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        got, want = net(x), fresh(x)
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)


def test_trimming_drops_what_is_not_used() -> None:
    net = texsynth.get_extractor("random-multiscale", "image", seed=0, options={"filters": 2})
    assert hasattr(net, "weight_k55")
    net.trim(("k3", "k5"))
    assert net.layers == ("k3", "k5")
    assert not hasattr(net, "weight_k55")
    with pytest.raises(UsageError, match="cannot trim"):
        net.trim(("k7",))
    vgg = texsynth.get_extractor("vgg19-random", "image", seed=0)
    assert vgg.covers(("relu4_2",))  # shallower than relu5_1, so built
    vgg.trim(("relu1_1", "relu2_1"))
    assert len(vgg.features) == 7  # conv, relu, conv, relu, pool, conv, relu
    assert set(vgg(torch.rand(1, 3, 16, 16))) == {"relu1_1", "relu2_1"}


def test_named_layers_are_built_directly(builds: list[ExtractorConfig]) -> None:
    spec = FeatureSpec(extractor="random-multiscale", layers=("k3", "k7"),
                       extractor_options={"filters": 2})
    features = prepare(spec, _image(), seed=0, device="cpu")
    assert [b.layers for b in builds] == [("k3", "k7")]
    assert features.texture_layers == ("k3", "k7")


def test_a_given_config_is_not_modified(builds: list[ExtractorConfig]) -> None:
    config = ExtractorConfig(name="random-multiscale", seed=9, options={"filters": 2})
    features = prepare(FeatureSpec(extractor=config, layers=("k5",)), _image(), seed=0,
                       device="cpu")
    assert config.layers is None and config.options == {"filters": 2}
    assert features.config.seed == 9  # the config's own seed, not the run's
    assert features.config.layers == ("k5",)


def test_replace_ignores_none_and_refuses_unknown_fields() -> None:
    spec = FeatureSpec(extractor="vgg19", layers=["relu1_1"])  # type: ignore[arg-type]
    assert spec.layers == ("relu1_1",)
    assert spec.replace(layers=None, extractor=None) is spec
    assert spec.replace(normalize="hw").normalize == "hw"
    with pytest.raises(UsageError, match=r"unknown feature setting.*colour"):
        spec.replace(colour="red")


def test_results_record_a_spec_that_rebuilds_the_same_features() -> None:
    result = texsynth.synthesize(EXEMPLAR, size=(24, 24), steps=2, seed=5, device="cpu",
                                 progress=False, layers=["k3", "k11"],
                                 extractor_options={"filters": 4}, layer_weights={"k3": 2.0},
                                 normalize="hw")
    spec = FeatureSpec.from_settings(result.settings)
    assert spec.layers == ("k3", "k11")
    assert spec.layer_weights == {"k3": 2.0} and spec.normalize == "hw"
    assert isinstance(spec.extractor, ExtractorConfig) and spec.extractor.seed == 5
    again = texsynth.synthesize(EXEMPLAR, features=spec, size=(24, 24), steps=2, seed=5,
                                device="cpu", progress=False)
    assert torch.equal(again.signal, result.signal)
    assert again.settings["extractor"] == result.settings["extractor"]


def test_keyword_fields_override_the_spec() -> None:
    spec = FeatureSpec(extractor="random-multiscale", layers=("k3",),
                       extractor_options={"filters": 2})
    result = texsynth.synthesize(EXEMPLAR, features=spec, layers=["k5"], size=(16, 16),
                                 steps=1, seed=0, device="cpu", progress=False)
    assert result.settings["texture_layers"] == ["k5"]
    assert spec.layers == ("k3",)
