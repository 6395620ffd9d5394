"""random-multiscale: FFT convolution agrees with F.conv2d, layers, options, seeding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import texsynth
from texsynth import ExtractorConfig
from texsynth.errors import UsageError
from texsynth_image import (
    ImageDomain,
    RandomMultiscaleExtractor,
    fft_conv2d,
    imagenet_normalize,
)
from texsynth_image.multiscale import (
    DEFAULT_SIZES,
    build_random_multiscale,
    kernel_spectrum,
    random_filters,
)

DOMAIN = ImageDomain()


def _build(layers=None, seed=0, **options) -> RandomMultiscaleExtractor:
    return build_random_multiscale(
        ExtractorConfig("random-multiscale", layers=layers, seed=seed, options=options), DOMAIN)


def _circular_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    half = weight.shape[-1] // 2
    return F.conv2d(F.pad(x, (half, half, half, half), mode="circular"), weight)


@pytest.mark.parametrize("size", [1, 3, 5, 11, 15])
@pytest.mark.parametrize("shape", [(16, 16), (17, 22)])
def test_fft_convolution_matches_direct_convolution(size, shape):
    gen = torch.Generator().manual_seed(size)
    x = torch.randn(2, 3, *shape, generator=gen, dtype=torch.float64)
    weight = torch.randn(5, 3, size, size, generator=gen, dtype=torch.float64)
    spectrum = kernel_spectrum(weight, *shape)
    assert spectrum.shape == (3, 5, shape[0], shape[1] // 2 + 1)
    torch.testing.assert_close(fft_conv2d(x, spectrum), _circular_conv(x, weight))
    chunks = list(spectrum.split(2, dim=1))
    torch.testing.assert_close(fft_conv2d(x, chunks), _circular_conv(x, weight))
    torch.testing.assert_close(fft_conv2d(x, spectrum, size=size, valid=True),
                               F.conv2d(x, weight))


def test_fft_convolution_in_float32_and_its_gradient():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 24, 20, generator=gen, requires_grad=True)
    weight = random_filters(8, 3, 7, seed=1)
    out = fft_conv2d(x, list(kernel_spectrum(weight, 24, 20).split(3, dim=1)))
    ref = _circular_conv(x, weight)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    probe = torch.randn(out.shape, generator=gen)
    (grad,) = torch.autograd.grad((out * probe).sum(), x)
    (grad_ref,) = torch.autograd.grad((ref * probe).sum(), x)
    torch.testing.assert_close(grad, grad_ref, atol=1e-4, rtol=1e-4)


def test_fft_gradcheck_double():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 3, 6, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    spectrum = kernel_spectrum(torch.randn(2, 3, 3, 3, generator=gen, dtype=torch.float64),
                               6, 5)
    assert torch.autograd.gradcheck(lambda v: fft_conv2d(v, spectrum), (x,), fast_mode=True)


@pytest.mark.parametrize("valid", [False, True])
@pytest.mark.parametrize("width", [16, 15])  # even and odd widths (one-sided spectrum)
def test_fused_relu_and_crop_gradient_matches_autograd(valid, width):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 14, width, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(7, 3, 5, 5, generator=gen, dtype=torch.float64)
    chunks = list(kernel_spectrum(weight, 14, width).split(3, dim=1))
    out = fft_conv2d(x, chunks, size=5, valid=valid, relu=True)
    ref = (F.conv2d(x, weight) if valid else _circular_conv(x, weight)).clamp_min(0)
    torch.testing.assert_close(out, ref)
    probe = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    (grad,) = torch.autograd.grad((out * probe).sum(), x)
    (grad_ref,) = torch.autograd.grad((ref * probe).sum(), x)
    torch.testing.assert_close(grad, grad_ref)


def test_kernels_larger_than_the_image_wrap_around():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 3, 10, 12, generator=gen, dtype=torch.float64)
    weight = torch.randn(4, 3, 23, 23, generator=gen, dtype=torch.float64)
    tiled = x.repeat(1, 1, 5, 5)  # circular correlation = correlation with the tiled image
    expected = _circular_conv(tiled, weight)[..., :10, :12]
    torch.testing.assert_close(fft_conv2d(x, kernel_spectrum(weight, 10, 12)), expected)


def test_extractor_fft_and_direct_paths_agree():
    x = torch.randn(1, 3, 40, 36, dtype=torch.float64)
    options = {"sizes": [3, 7, 15], "filters": 6}
    fft = _build(method="fft", **options).double()
    direct = _build(method="direct", **options).double()
    auto = _build(**options).double()
    a, b, c = fft(x), direct(x), auto(x)
    for name in ("k3", "k7", "k15"):
        torch.testing.assert_close(a[name], b[name])
        torch.testing.assert_close(a[name], c[name])
        weight = fft.weight(name)
        # the extractor ImageNet-normalises its input (preprocess) before convolving
        torch.testing.assert_close(a[name],
                                   _circular_conv(imagenet_normalize(x), weight).clamp_min(0))
    valid_fft = _build(method="fft", padding="valid", **options).double()(x)
    valid_direct = _build(method="direct", padding="valid", **options).double()(x)
    for name, size in (("k3", 3), ("k7", 7), ("k15", 15)):
        assert valid_fft[name].shape == (1, 6, 40 - size + 1, 36 - size + 1)
        torch.testing.assert_close(valid_fft[name], valid_direct[name])


def test_default_layers_and_registration():
    net = texsynth.get_extractor("random-multiscale", "image")
    names = tuple(f"k{s}" for s in DEFAULT_SIZES)
    assert DEFAULT_SIZES == (3, 5, 7, 11, 15, 23, 37, 55)
    assert net.available_layers == names
    assert net.default_texture_layers == names
    assert net.layers == names
    assert set(net.default_content_layers) <= set(names)
    assert all(net.weight(n).shape[0] == net.filters[n] for n in names)
    assert not net.training
    assert all(not b.requires_grad for b in net.buffers())


def test_only_requested_sizes_are_built_and_computed():
    net = _build(layers=("k5", "k37"))
    assert {name for name, _ in net.named_buffers()} == {"weight_k5", "weight_k37"}
    feats = net(torch.randn(1, 3, 20, 20))
    assert set(feats) == {"k5", "k37"}
    assert set(net(torch.randn(1, 3, 20, 20), layers=("k37",))) == {"k37"}
    with pytest.raises(UsageError, match="not built"):
        net(torch.randn(1, 3, 20, 20), layers=("k3",))


def test_filters_are_zero_mean_unit_norm_and_seeded():
    weight = random_filters(16, 3, 11, seed=5)
    assert weight.shape == (16, 3, 11, 11)
    torch.testing.assert_close(weight.mean(dim=(1, 2, 3)), torch.zeros(16), atol=1e-6, rtol=0)
    torch.testing.assert_close(weight.flatten(1).norm(dim=1), torch.ones(16))
    torch.testing.assert_close(weight, random_filters(16, 3, 11, seed=5))
    assert not torch.equal(weight, random_filters(16, 3, 11, seed=6))
    # a size's filters do not depend on which other sizes are in use
    a = _build(seed=9, sizes=[7, 23], filters=4)
    b = _build(seed=9, sizes=[3, 7], filters=4)
    torch.testing.assert_close(a.weight("k7"), b.weight("k7"))


def test_options_sizes_filters_and_errors():
    net = _build(sizes=[3, 9], filters=[4, 6])
    assert net.available_layers == ("k3", "k9")
    feats = net(torch.randn(1, 3, 16, 16))
    assert feats["k3"].shape == (1, 4, 16, 16)
    assert feats["k9"].shape == (1, 6, 16, 16)
    assert feats["k9"].min() >= 0  # ReLU
    for bad in ({"sizes": [4]}, {"sizes": [3, 3]}, {"filters": [1, 2]}, {"filters": 0},
                {"padding": "zeros"}, {"method": "winograd"}, {"colour": True}):
        with pytest.raises(UsageError):
            _build(**bad)
    with pytest.raises(UsageError, match="takes no"):
        build_random_multiscale(ExtractorConfig("random-multiscale", weights="w.pth"), DOMAIN)
    with pytest.raises(UsageError, match="smaller than"):
        _build(padding="valid", sizes=[3, 15])(torch.randn(1, 3, 12, 12))


def test_circular_padding_is_shift_equivariant():
    net = _build(sizes=[5, 23], filters=4)
    x = torch.randn(1, 3, 32, 32)
    a = net(x)
    b = net(torch.roll(x, shifts=(5, -7), dims=(2, 3)))
    for name in ("k5", "k23"):
        torch.testing.assert_close(torch.roll(a[name], (5, -7), (2, 3)), b[name],
                                   atol=1e-5, rtol=1e-4)


def test_gradients_reach_the_input_and_cache_follows_dtype():
    net = _build(sizes=[3, 15, 37], filters=4)
    x = torch.rand(1, 3, 24, 28, requires_grad=True)
    loss = sum(f.pow(2).mean() for f in net(x).values())
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    out32 = net(x.detach())["k37"]
    net.double()  # casting drops spectra computed in float32
    out64 = net(x.detach().double())["k37"]
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, atol=1e-5, rtol=1e-4)


def test_list_options_from_the_command_line_form():
    net = _build(sizes="3:9", filters="4:6")
    assert net.available_layers == ("k3", "k9")
    assert net.filters == {"k3": 4, "k9": 6}
    with pytest.raises(UsageError, match="integers"):
        _build(sizes="three")


def test_preprocess_is_the_imagenet_normalisation_it_was_tuned_with():
    # bit-identical to the former pipeline: the image domain normalised, the extractor
    # convolved the normalised signal as it was
    x = torch.rand(1, 3, 24, 20)
    options = {"sizes": [3, 7, 15], "filters": 5}
    net = _build(**options)
    assert net.normalize
    plain = RandomMultiscaleExtractor(("k3", "k7", "k15"), sizes=(3, 7, 15), filters=5,
                                      normalize=False)
    assert not plain.normalize
    torch.testing.assert_close(net.preprocess(x), imagenet_normalize(x), rtol=0, atol=0)
    ours, before = net(x), plain(imagenet_normalize(x))
    for name in ("k3", "k7", "k15"):
        assert torch.equal(ours[name], before[name])
    # other channel counts (built directly) are left as they are, as they always were
    grey = RandomMultiscaleExtractor(("k3",), sizes=(3,), filters=2, in_channels=1)
    assert not grey.normalize
    y = torch.rand(1, 1, 9, 9)
    assert torch.equal(grey.preprocess(y), y)
