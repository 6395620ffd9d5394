"""The core's ``patches`` extractor: shapes in 1-D and 2-D, the ``value`` layer, options,
registration for every domain, and patch statistics on a real image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import texsynth
from texsynth import ExtractorConfig, PluginManager, UsageError
from texsynth.plugins import ANY_DOMAIN
from texsynth.stats.patches import (
    OPTIONS,
    PatchExtractor,
    area_downsample,
    build_patches,
    unfold_patches,
)
from texsynth.stats.sliced import SlicedWassersteinLoss, sliced_wasserstein


# -- shapes and values ----------------------------------------------------------------------
def test_shapes_in_one_dimension() -> None:
    x = torch.randn(2, 3, 40)
    out = PatchExtractor()(x)
    assert list(out) == ["value", "p1", "p2", "p4"]
    assert out["value"].shape == (2, 3, 40)
    assert out["p1"].shape == (2, 21, 34)  # 3 channels x 7 taps; 40 - 7 + 1 positions
    assert out["p2"].shape == (2, 21, 14)  # 20 samples at 1/2
    assert out["p4"].shape == (2, 21, 4)  # 10 samples at 1/4


def test_shapes_in_two_dimensions_with_stride_and_padding() -> None:
    x = torch.randn(1, 3, 32, 32)
    out = PatchExtractor()(x)
    assert out["p1"].shape == (1, 147, 26, 26)
    assert out["p2"].shape == (1, 147, 10, 10)
    assert out["p4"].shape == (1, 147, 2, 2)
    strided = PatchExtractor(("p1",), stride=2, size=5)(x)["p1"]
    assert strided.shape == (1, 75, 14, 14)
    wrapped = PatchExtractor(("p1", "p2"), padding="circular")(x)
    assert wrapped["p1"].shape == (1, 147, 32, 32) and wrapped["p2"].shape == (1, 147, 16, 16)


def test_value_is_the_input_itself() -> None:
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    value = PatchExtractor(("value",))(x)["value"]
    assert torch.equal(value, x)
    value.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # type: ignore[arg-type]


def test_patch_channels_follow_the_input_channel_then_the_offsets() -> None:
    x = torch.randn(2, 3, 9, 11)
    ours = unfold_patches(x, 3, stride=2)
    assert ours.shape == (2, 27, 4, 5)
    theirs = F.unfold(x, kernel_size=3, stride=2).reshape(2, 27, 4, 5)
    assert torch.equal(ours, theirs)
    line = torch.arange(6.0).reshape(1, 1, 6)
    assert unfold_patches(line, 3).tolist() == [[[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]]]


def test_area_downsampling_averages_whole_blocks() -> None:
    assert area_downsample(torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]]), 2).tolist() == [
        [[1.5, 3.5]]]
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert area_downsample(image, 2).tolist() == [[[[2.5, 4.5], [10.5, 12.5]]]]
    assert area_downsample(image, 1) is image


def test_an_input_too_small_for_a_layer_is_a_one_line_error() -> None:
    with pytest.raises(UsageError, match=r"layer p4 sees the input at 1/4 size, \(5, 5\)") as info:
        PatchExtractor()(torch.zeros(1, 3, 20, 20))
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="layer p4 downsamples"):
        PatchExtractor(("p4",))(torch.zeros(1, 1, 3))


# -- options and registration ---------------------------------------------------------------
def test_registered_for_every_domain_with_its_options(toy_manager: PluginManager) -> None:
    info = toy_manager.extractors()["patches"]
    assert info.domains == (ANY_DOMAIN,) and info.plugin == "texsynth.stats"
    assert tuple(info.options) == ("size", "stride", "scales", "padding") == tuple(OPTIONS)
    assert all("default" in text and "\n" not in text for text in info.options.values())
    assert "patches" in toy_manager.extractors("toy")
    net = texsynth.get_extractor("patches", "toy", options={"size": 3, "scales": "1:3"})
    assert net.layers == ("value", "p1", "p3")
    assert net(torch.zeros(1, 1, 30))["p3"].shape == (1, 3, 8)


def test_unknown_extractors_list_the_domains_own_first(toy_manager: PluginManager) -> None:
    with pytest.raises(texsynth.NotFoundError,
                       match=r"available: toy-conv; for any domain: patches$"):
        toy_manager.get_extractor_info("nope", "toy")
    with pytest.raises(texsynth.NotFoundError, match=r"available: patches$"):
        toy_manager.get_extractor_info("nope", "elsewhere")


@pytest.mark.parametrize(("options", "message"), [
    ({"colour": "red"}, "unknown option(s) colour for extractor 'patches'; "
                        "known: size, stride, scales, padding"),
    ({"padding": "zeros"}, "extractor 'patches': padding must be one of valid, circular, "
                           "got 'zeros'"),
    ({"scales": "1:1"}, "extractor 'patches': scales must be distinct positive integers, "
                        "got [1, 1]"),
    ({"size": 0}, "extractor 'patches': size must be one positive integer, got 0"),
    ({"stride": "x"}, "extractor 'patches': stride must be integers, got 'x'"),
])
def test_bad_options_are_one_line_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as info:
        build_patches(ExtractorConfig("patches", options=options), None)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_layers_are_checked_and_weights_refused() -> None:
    with pytest.raises(UsageError, match="available: value, p1, p2, p4"):
        PatchExtractor(("p8",))
    with pytest.raises(UsageError, match="has no weights"):
        build_patches(ExtractorConfig("patches", weights="w.pt"), None)  # type: ignore[arg-type]


# -- statistics -----------------------------------------------------------------------------
def test_patch_sw_ranks_a_crop_closer_than_its_shuffled_pixels(
        sample_image: Callable[[str], Path]) -> None:
    image = texsynth.load(sample_image("bricks.png"))
    gen = torch.Generator().manual_seed(0)
    top, left = (int(v) for v in torch.randint(0, image.shape[-1] - 64, (2,), generator=gen))
    crop = image[..., top:top + 64, left:left + 64]
    order = torch.randperm(64 * 64, generator=gen)
    shuffled = crop.flatten(2)[..., order].reshape(crop.shape)
    net = texsynth.get_extractor("patches", "image")
    with torch.no_grad():
        loss = SlicedWassersteinLoss(net(image), seed=0, redraw_every=1000)
        near, far = loss(net(crop)), loss(net(shuffled))
        assert near.item() < 0.5 * far.item()
        # the same colours: their distributions (the value layer) agree exactly
        dirs = loss.current_directions()["value"]
        values = [sliced_wasserstein(net(x)["value"], image, directions=dirs).item()
                  for x in (crop, shuffled)]
    assert values[0] == pytest.approx(values[1], rel=1e-5)


def test_gram_of_patches_is_zero_on_the_exemplar_and_synthesis_runs_in_1d(
        toy_manager: PluginManager, toy_exemplar: torch.Tensor) -> None:
    domain = toy_manager.get_domain("toy")
    net = texsynth.get_extractor("patches", domain)
    objective = texsynth.TextureObjective(domain, net, [toy_exemplar],
                                          texture_layers=net.default_texture_layers)
    assert objective(toy_exemplar).item() == pytest.approx(0.0, abs=1e-10)
    for loss in ("gram", "sw"):
        result = texsynth.synthesize(toy_exemplar, domain="toy", extractor="patches",
                                     texture_loss=loss, size=(64,), steps=3, seed=0,
                                     progress=False, device="cpu")
        assert result.signal.shape == (1, 1, 64)
        assert min(result.losses[1:]) < result.losses[0]
