"""Random-weight spectrogram extractors: names, shapes, seeding, padding, gradients."""

from __future__ import annotations

import pytest
import torch

import texsynth
from texsynth.errors import UsageError
from texsynth.extractor import ExtractorConfig
from texsynth_audio.domain import AudioDomain
from texsynth_audio.extractors import MultiKernelExtractor, UlyanovExtractor


@pytest.fixture
def domain() -> AudioDomain:
    return AudioDomain()


def _build(name: str, domain: AudioDomain, **config):
    return texsynth.get_plugin_manager().create_extractor(
        ExtractorConfig(name=name, **config), domain)


def test_registered_for_audio_only():
    found = texsynth.get_plugin_manager().extractors("audio")
    assert {"ulyanov", "multikernel"} <= set(found)
    assert found["multikernel"].domains == ("audio",)
    assert found["ulyanov"].domains == ("audio",)


def test_ulyanov_defaults(domain):
    net = _build("ulyanov", domain)
    assert isinstance(net, UlyanovExtractor)
    assert net.spatial_dims == 1
    assert net.available_layers == ("spectrum", "conv", "relu")
    assert net.default_texture_layers == ("relu",)
    assert net.conv.weight.shape == (4096, 1025, 11)
    assert not any(p.requires_grad for p in net.parameters())
    # Xavier-normal with ReLU gain: std = sqrt(2) * sqrt(2 / (fan_in + fan_out)).
    expected = (2.0 * 2.0 / (1025 * 11 + 4096 * 11)) ** 0.5
    assert float(net.conv.weight.std()) == pytest.approx(expected, rel=0.01)
    x = domain.to_features_input(torch.rand(1, 1, 4096) - 0.5)
    out = net(x, layers=("conv", "relu"))
    assert out["conv"].shape == (1, 4096, x.shape[-1])
    assert torch.equal(out["relu"], out["conv"].clamp_min(0))


def test_ulyanov_options_and_valid_padding(domain):
    net = _build("ulyanov", domain, options={"filters": 32, "width": 5, "padding": "valid"})
    x = torch.rand(2, 1025, 20)
    assert net(x)["relu"].shape == (2, 32, 16)
    with pytest.raises(UsageError, match="does not fit"):
        net(torch.rand(1, 1025, 3))
    with pytest.raises(UsageError, match="unknown option"):
        _build("ulyanov", domain, options={"filtres": 3})
    with pytest.raises(UsageError, match="positive integer"):
        _build("ulyanov", domain, options={"width": 0})


def test_multikernel_layers_and_shapes(domain):
    net = _build("multikernel", domain, options={"filters": 16})
    assert isinstance(net, MultiKernelExtractor)
    widths = ("w2", "w4", "w8", "w16", "w32", "w64", "w128")
    assert net.available_layers == ("spectrum", *widths, "all")
    assert net.default_texture_layers == ("spectrum", "all")
    assert net.default_content_layers == ("w2", "w4")
    assert net.layers == ("spectrum", "all")
    x = torch.rand(1, 1025, 30)  # fewer frames than the widest kernel
    out = net(x, layers=net.available_layers)
    assert set(out) == set(net.available_layers)
    assert torch.equal(out["spectrum"], x)
    assert out["all"].shape == (1, 16 * len(widths), 30)
    for name in widths:
        assert out[name].shape == (1, 16, 30)
        assert (out[name] >= 0).all()
    only = net(x, layers=("w8",))
    assert set(only) == {"w8"}


@pytest.mark.parametrize("padding", ["zeros", "zero", "reflect", "circular"])
def test_multikernel_kernel_wider_than_signal(domain, padding):
    net = _build("multikernel", domain,
                 options={"filters": 8, "widths": [2, 64], "padding": padding})
    out = net(torch.rand(1, 1025, 5), layers=("w2", "w64"))
    assert out["w64"].shape == (1, 8, 5)
    assert torch.isfinite(out["w64"]).all()


def test_multikernel_joint_layer(domain):
    net = _build("multikernel", domain, options={"filters": 8, "widths": [2, 8]},
                 layers=("all",))
    x = torch.rand(1, 1025, 12)
    out = net(x)
    assert set(out) == {"all"}
    assert out["all"].shape == (1, 16, 12)
    both = net(x, layers=("w2", "w8", "all"))
    torch.testing.assert_close(both["all"], torch.cat([both["w2"], both["w8"]], dim=1))


def test_reflect_padding_mirrors_frames(domain):
    from texsynth_audio.extractors import _pad_time

    x = torch.arange(3.0).reshape(1, 1, 3)
    assert _pad_time(x, 6, "reflect").flatten().tolist() == [1, 2, 1, 0, 1, 2, 1, 0, 1]
    assert _pad_time(x, 4, "circular").flatten().tolist() == [1, 2, 0, 1, 2, 0, 1]
    assert _pad_time(x, 2, "zeros").flatten().tolist() == [0, 0, 1, 2, 0]
    with pytest.raises(UsageError, match="padding"):
        _build("multikernel", domain, options={"padding": "mirror"})


def test_multikernel_valid_padding_reports_too_short(domain):
    net = _build("multikernel", domain,
                 options={"filters": 8, "widths": "2,64", "padding": "valid"})
    out = net(torch.rand(1, 1025, 70), layers=("w2", "w64", "all"))
    assert out["w64"].shape == (1, 8, 7)
    assert out["all"].shape == (1, 16, 7)  # widths cropped to their common centre
    with pytest.raises(UsageError, match="64 frames"):
        net(torch.rand(1, 1025, 10), layers=("w64",))


def test_multikernel_reduced_resolution_matches_a_blocky_dense_kernel(domain):
    net = _build("multikernel", domain,
                 options={"filters": 4, "widths": [8], "max_dense_width": 2,
                          "padding": "zeros"})
    conv = net.nets["w8"]
    assert (conv.taps, conv.pool, conv.span) == (2, 4, 8)
    # Equivalent dense kernel: each tap repeated over 4 frames, divided by 4.
    dense = conv.weight.repeat_interleave(4, dim=-1) / 4
    x = torch.rand(1, 1025, 40)
    padded = torch.nn.functional.pad(x, (3, 4))
    expected = torch.relu(torch.nn.functional.conv1d(padded, dense))
    torch.testing.assert_close(net(x, layers=("w8",))["w8"], expected, rtol=1e-4, atol=1e-4)


def test_seeded_and_layer_selection(domain):
    a = _build("multikernel", domain, seed=1, options={"filters": 8})
    b = _build("multikernel", domain, seed=1, options={"filters": 8}, layers=("w4",))
    c = _build("multikernel", domain, seed=2, options={"filters": 8})
    assert torch.equal(a.nets["w4"].weight, b.nets["w4"].weight)
    assert not torch.equal(a.nets["w4"].weight, c.nets["w4"].weight)
    assert b.layers == ("w4",)
    with pytest.raises(UsageError, match="unknown layer"):
        _build("multikernel", domain, options={"filters": 8}, layers=("relu",))


def test_wrong_input_channels(domain):
    net = _build("multikernel", domain, options={"filters": 8})
    with pytest.raises(UsageError, match="1025"):
        net(torch.rand(1, 3, 40))
    small = AudioDomain(n_fft=512, hop_length=128)
    net = _build("ulyanov", small, options={"filters": 8})
    assert net(small.to_features_input(torch.rand(1, 1, 2048)))["relu"].shape[1] == 8


@pytest.mark.parametrize("name", ["ulyanov", "multikernel"])
def test_gradients_reach_the_waveform(domain, name):
    net = _build(name, domain, options={"filters": 16})
    wave = (torch.rand(1, 1, 8192) - 0.5).requires_grad_(True)
    feats = net(domain.to_features_input(wave))
    sum(texsynth.gram_matrix(f).sum() for f in feats.values()).backward()
    assert wave.grad is not None
    assert torch.isfinite(wave.grad).all()
    assert float(wave.grad.abs().sum()) > 0
