"""VGG19 extractors: layer names, truncation, options, weights files, the offline message."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn

import texsynth
from texsynth import ExtractorConfig
from texsynth.errors import InputError, UsageError, WeightsUnavailableError
from texsynth_image import VGG19_LAYERS, ImageDomain, VGG19Extractor
from texsynth_image.vgg import build_vgg19, build_vgg19_random, pretrained_cache_path

DOMAIN = ImageDomain()


def _random(layers=None, **options) -> VGG19Extractor:
    config = ExtractorConfig("vgg19-random", layers=layers, seed=3, options=options)
    return build_vgg19_random(config, DOMAIN)


@pytest.fixture(scope="module")
def torchvision_features_state() -> dict[str, torch.Tensor]:
    """torchvision's own VGG19 conv stack (random init), as ``N.weight`` keys."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    return {k: v.clone() for k, v in make_layers(cfgs["E"]).state_dict().items()}


def test_layer_names_follow_torchvision_indices():
    assert len(VGG19_LAYERS) == 37
    assert VGG19_LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert VGG19_LAYERS.index("conv3_4") == 16
    assert VGG19_LAYERS.index("relu4_2") == 22
    assert VGG19_LAYERS.index("relu5_1") == 29
    assert VGG19_LAYERS[-1] == "pool5"
    net = _random()
    assert net.default_texture_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert net.default_content_layers == ("relu4_2",)
    assert net.layers == net.default_texture_layers


def test_network_is_truncated_after_the_deepest_layer():
    net = _random(layers=("relu1_1", "conv2_1"))
    assert len(net.features) == VGG19_LAYERS.index("conv2_1") + 1
    assert isinstance(net.features[-1], nn.Conv2d)
    assert len(_random().features) == VGG19_LAYERS.index("relu5_1") + 1
    feats = net(torch.randn(1, 3, 16, 16))
    assert set(feats) == {"relu1_1", "conv2_1"}
    assert feats["relu1_1"].shape == (1, 64, 16, 16)
    assert feats["conv2_1"].shape == (1, 128, 8, 8)
    with pytest.raises(UsageError, match="deeper"):
        net(torch.randn(1, 3, 16, 16), layers=("relu3_1",))
    with pytest.raises(UsageError, match="unknown layer"):
        _random(layers=("relu9_9",))


def test_relu_is_not_in_place():
    net = _random(layers=("conv1_1", "relu1_1"))
    assert all(not getattr(m, "inplace", False) for m in net.features)
    feats = net(torch.randn(1, 3, 12, 12))
    assert feats["conv1_1"].min() < 0  # would be clipped by an in-place ReLU
    torch.testing.assert_close(feats["relu1_1"], feats["conv1_1"].clamp_min(0))


def test_frozen_and_gradients_reach_the_input():
    net = _random(layers=("relu2_1",))
    assert all(not p.requires_grad for p in net.parameters())
    assert not net.training
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    net(x)["relu2_1"].pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_random_weights_are_seeded():
    a, b = _random(layers=("conv1_2",)), _random(layers=("conv1_2",))
    torch.testing.assert_close(a.features[2].weight, b.features[2].weight)
    other = build_vgg19_random(ExtractorConfig("vgg19-random", layers=("conv1_2",), seed=4),
                               DOMAIN)
    assert not torch.equal(a.features[2].weight, other.features[2].weight)
    with pytest.raises(UsageError, match="takes no"):
        build_vgg19_random(ExtractorConfig("vgg19-random", weights="x.pth"), DOMAIN)


def test_average_and_max_pooling():
    avg = _random(layers=("pool1",))
    mx = _random(layers=("pool1",), pooling="max")
    assert isinstance(avg.features[4], nn.AvgPool2d)  # average pooling is the default
    assert isinstance(mx.features[4], nn.MaxPool2d)
    x = torch.randn(1, 3, 8, 8)
    a, m = avg(x)["pool1"], mx(x)["pool1"]
    assert a.shape == m.shape == (1, 64, 4, 4)
    assert torch.all(m >= a - 1e-6) and not torch.allclose(a, m)
    with pytest.raises(UsageError, match="pooling"):
        _random(pooling="min")
    with pytest.raises(UsageError, match="unknown option"):
        _random(poolin="avg")


def test_circular_padding_makes_features_shift_equivariant():
    net = _random(layers=("relu1_2", "relu2_1"), padding="circular")
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert convs and all(c.padding_mode == "circular" for c in convs)
    x = torch.randn(1, 3, 16, 16)
    shifted = torch.roll(x, shifts=(4, 6), dims=(2, 3))
    a, b = net(x), net(shifted)
    torch.testing.assert_close(torch.roll(a["relu1_2"], (4, 6), (2, 3)), b["relu1_2"])
    torch.testing.assert_close(torch.roll(a["relu2_1"], (2, 3), (2, 3)), b["relu2_1"])
    zero = _random(layers=("relu1_2",))
    assert not torch.allclose(torch.roll(zero(x)["relu1_2"], (4, 6), (2, 3)),
                              zero(shifted)["relu1_2"])
    with pytest.raises(UsageError, match="padding"):
        _random(padding="mirror")


# -- weights files -------------------------------------------------------------------------

def _check_loaded(net: VGG19Extractor, state: dict[str, torch.Tensor]) -> None:
    for index in net.conv_indices():
        torch.testing.assert_close(net.features[index].weight, state[f"{index}.weight"])
        torch.testing.assert_close(net.features[index].bias, state[f"{index}.bias"])


def test_torchvision_state_dict_with_classifier_keys(tmp_path, torchvision_features_state):
    # torchvision's layout: ``features.N.*`` and ``classifier.*`` (ignored, any shape);
    # the first two blocks keep the file small, enough for layers up to relu2_2
    full = {f"features.{k}": v for k, v in torchvision_features_state.items()
            if int(k.split(".")[0]) < 10}
    full["classifier.0.weight"] = torch.zeros(4, 4)
    full["classifier.0.bias"] = torch.zeros(4)
    path = tmp_path / "vgg19-full.pth"
    torch.save(full, path)
    net = build_vgg19(ExtractorConfig("vgg19", layers=("relu1_1", "relu2_2"),
                                      weights=str(path)), DOMAIN)
    _check_loaded(net, torchvision_features_state)
    assert all(not p.requires_grad for p in net.parameters())
    assert net(torch.rand(1, 3, 8, 8))["relu2_2"].shape == (1, 128, 4, 4)


def test_features_only_state_dict_and_truncation(tmp_path, torchvision_features_state):
    path = tmp_path / "features.pt"
    shallow = {k: v for k, v in torchvision_features_state.items() if int(k.split(".")[0]) < 5}
    torch.save(shallow, path)  # enough for layers up to pool1 only
    net = build_vgg19(ExtractorConfig("vgg19", layers=("relu1_2",), weights=str(path)), DOMAIN)
    _check_loaded(net, torchvision_features_state)
    with pytest.raises(InputError, match=r"features\.pt.*missing features\.5\.weight"):
        build_vgg19(ExtractorConfig("vgg19", layers=("relu2_1",), weights=str(path)), DOMAIN)


def test_safetensors_weights(tmp_path, torchvision_features_state):
    from safetensors.torch import save_file

    path = tmp_path / "vgg19.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in torchvision_features_state.items()},
              str(path))
    net = texsynth.get_extractor("vgg19", "image", weights=str(path),
                                 layers=("relu3_1",))
    _check_loaded(net, torchvision_features_state)


def test_bad_weights_files_are_input_errors(tmp_path, torchvision_features_state):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02 definitely not a state dict" * 10)
    wrong = tmp_path / "wrong.pth"
    torch.save({"0.weight": torch.zeros(32, 3, 3, 3), "0.bias": torch.zeros(32)}, wrong)
    not_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], not_dict)
    bad_safe = tmp_path / "bad.safetensors"
    bad_safe.write_bytes(b"{}" * 8)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    cases = [
        (tmp_path / "missing.pth", "no such file"),
        (tmp_path, "is a directory, not a weights file"),
        (empty, r"is empty \(0 bytes\)"),
        (corrupt, "cannot be loaded"),
        (bad_safe, "cannot be loaded"),
        (not_dict, "not a state dict"),
        (wrong, r"shape \(32, 3, 3, 3\), expected \(64, 3, 3, 3\)"),
    ]
    for path, pattern in cases:
        config = ExtractorConfig("vgg19", layers=("relu1_1",), weights=str(path))
        with pytest.raises(InputError, match=pattern) as info:
            build_vgg19(config, DOMAIN)
        assert str(path) in str(info.value)
        assert "\n" not in str(info.value)


# -- pretrained weights: cache and offline -------------------------------------------------

def test_offline_without_cached_weights_names_both_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def no_network(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    # the machine is offline anyway; this keeps the test from downloading 548 MB elsewhere
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    cache = pretrained_cache_path()
    assert cache.is_relative_to(tmp_path / "torch-home")
    with pytest.raises(WeightsUnavailableError) as info:
        texsynth.get_extractor("vgg19", "image", layers=("relu1_1",))
    message = str(info.value)
    assert "\n" not in message
    assert str(cache) in message
    assert "internet" in message and "--weights FILE" in message
    assert not cache.exists()


def test_cached_weights_are_used_without_network(tmp_path, monkeypatch,
                                                 torchvision_features_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def no_download(*args, **kwargs):
        raise AssertionError("must not download when the cache exists")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    cache: Path = pretrained_cache_path()
    cache.parent.mkdir(parents=True)
    full = {f"features.{k}": v for k, v in torchvision_features_state.items()}
    torch.save(full, cache)
    net = build_vgg19(ExtractorConfig("vgg19", layers=("relu2_1",)), DOMAIN)
    _check_loaded(net, torchvision_features_state)
    cache.write_bytes(b"garbage" * 10)  # a damaged cache is named, with what to do
    with pytest.raises(InputError, match="cannot be loaded") as info:
        build_vgg19(ExtractorConfig("vgg19", layers=("relu2_1",)), DOMAIN)
    assert str(cache) in str(info.value)


# -- preprocessing -------------------------------------------------------------------------

def test_preprocess_normalises_with_imagenet_statistics():
    net = _random(layers=("relu1_1", "relu2_1"))
    x = torch.rand(2, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    normalised = (x - mean) / std
    torch.testing.assert_close(net.preprocess(x), normalised, rtol=0, atol=0)
    # the network itself, fed the manually normalised input, gives what forward gives
    deepest = VGG19_LAYERS.index("relu2_1")
    with torch.no_grad():
        by_hand = net.features[: deepest + 1](normalised)
        first = net.features[: VGG19_LAYERS.index("relu1_1") + 1](normalised)
    feats = net(x)
    torch.testing.assert_close(feats["relu2_1"], by_hand)
    torch.testing.assert_close(feats["relu1_1"], first)
    # and it differs from feeding the raw signal: the normalisation does happen
    with torch.no_grad():
        raw = net.features[: deepest + 1](x)
    assert not torch.allclose(feats["relu2_1"], raw)


def test_preprocess_is_differentiable_and_refuses_non_rgb_input():
    net = _random(layers=("relu1_1",))
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    net.preprocess(x).sum().backward()
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert x.grad is not None
    torch.testing.assert_close(x.grad, (1 / std).expand_as(x))
    with pytest.raises(UsageError, match=r"\(N, 3, H, W\)"):
        net(torch.rand(1, 1, 8, 8))
