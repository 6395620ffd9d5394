"""The ``pyramid`` generators: registration, shapes at any size, padding, stylisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from texsynth import GeneratorConfig, PluginManager, UsageError
from texsynth.feedforward.pyramid import PyramidGenerator
from texsynth.feedforward.pyramid_layers import upsample2
from texsynth.feedforward.pyramid_options import DEFAULT_OPTIONS, scale_sizes


def make(dims: int = 2, channels: int = 3, content: int = 0, seed: int = 0,
         **options: object) -> PyramidGenerator:
    torch.manual_seed(seed)
    opts = {"num_scales": 3, **options}
    return PyramidGenerator(GeneratorConfig("pyramid", dims, channels, content, opts))


def test_registered_through_the_generator_hook() -> None:
    manager = PluginManager(load_entry_points=False)
    assert {"pyramid", "pyramid-stylize"} <= set(manager.generators())
    gen = manager.create_generator(GeneratorConfig("pyramid", 2, 3, options={"num_scales": 4}))
    assert isinstance(gen, PyramidGenerator)
    assert gen.config.content_channels == 0
    stylize = manager.create_generator(GeneratorConfig("pyramid-stylize", 1, 2))
    assert stylize.config.content_channels == 2  # defaults to the output's channels
    assert stylize.config.name == "pyramid-stylize"


def test_config_options_are_resolved_and_stored() -> None:
    gen = make(norm="instance")
    assert set(gen.config.options) == set(DEFAULT_OPTIONS)
    assert gen.config.options["norm"] == "instance"
    assert gen.config.options["num_scales"] == 3
    assert GeneratorConfig.from_dict(gen.config.to_dict()) == gen.config


@pytest.mark.parametrize(("dims", "size"), [
    (2, (32, 32)), (2, (37, 45)), (2, (5, 64)), (2, (64, 17)),
    (1, (64,)), (1, (101,)), (1, (5,)),
])
def test_output_shape_at_any_size(dims: int, size: tuple[int, ...]) -> None:
    gen = make(dims=dims, channels=2)
    noise = gen.make_noise(2, size, generator=torch.Generator().manual_seed(0))
    assert [tuple(n.shape) for n in noise] == [
        (2, 3, *(math.ceil(s / 2**k) for s in size)) for k in range(3)]
    out = gen(noise)
    assert out.shape == (2, 2, *size)
    gen.eval()  # batch norm with running statistics, as when sampling
    with torch.no_grad():
        assert gen(gen.make_noise(1, size)).shape == (1, 2, *size)


def test_conv_kind_follows_spatial_dims() -> None:
    assert any(isinstance(m, nn.Conv1d) for m in make(dims=1).modules())
    assert not any(isinstance(m, nn.Conv2d) for m in make(dims=1).modules())
    assert any(isinstance(m, nn.Conv2d) for m in make(dims=2).modules())


def test_widths_grow_by_eight_per_joined_scale() -> None:
    gen = make(num_scales=4)
    convs = [join.get_submodule("block.0") for join in gen.joins]
    assert [conv.in_channels for conv in convs] == [32, 24, 16]
    assert gen.to_signal.in_channels == 32


def test_scale_sizes() -> None:
    assert scale_sizes((37, 64), 3) == [(37, 64), (19, 32), (10, 16)]


def test_too_small_sizes_and_bad_options_are_usage_errors() -> None:
    gen = make(num_scales=4)  # needs extents of at least 2**3 + 1 = 9
    with pytest.raises(UsageError, match="at least 9"):
        gen.make_noise(1, (8, 32))
    with pytest.raises(UsageError, match="spatial axes"):
        gen.make_noise(1, (32,))
    with pytest.raises(UsageError, match=r"^unknown option\(s\) scales for generator "
                                         r"'pyramid'; known: num_scales, channels, "):
        make(scales=3)
    with pytest.raises(UsageError, match=r"^generator 'pyramid': padding must be one of "
                                         r"circular, reflect, zeros, got 'wrap'$"):
        make(padding="wrap")
    with pytest.raises(UsageError, match=r"^generator 'pyramid': norm must be one of "
                                         r"batch, instance, got 'layer'$"):
        make(norm="layer")
    with pytest.raises(UsageError, match=r"^generator 'pyramid': noise must be one of "
                                         r"uniform, normal, got 'gauss'$"):
        make(noise="gauss")
    with pytest.raises(UsageError, match=r"^generator 'pyramid': upsample must be one of "
                                         r"nearest, linear, got 'cubic'$"):
        make(upsample="cubic")
    with pytest.raises(UsageError, match=r"^generator 'pyramid': num_scales must be a "
                                         r"positive integer, got 0$"):
        make(num_scales=0)
    with pytest.raises(UsageError, match=r"^generator 'pyramid': value_range must be "
                                         r"\[low, high\] with low < high"):
        make(value_range=[1.0, 0.0])
    stylize = GeneratorConfig("pyramid-stylize", 2, 3, 3, {"channel": 4})
    with pytest.raises(UsageError, match=r"^unknown option\(s\) channel for generator "
                                         r"'pyramid-stylize'"):
        PyramidGenerator(stylize)


@pytest.mark.parametrize("dims", [1, 2])
def test_linear_upsampling_interpolates_on_the_torus(dims: int) -> None:
    """Circular linear ×2 upsampling equals half-pixel-centred linear interpolation of the
    circularly padded map (cropped back); without wrapping it is ``F.interpolate``'s."""
    x = torch.randn(2, 3, *([5, 7][:dims]))
    padded = F.pad(x, [1, 1] * dims, mode="circular")
    kind = "linear" if dims == 1 else "bilinear"
    wide = F.interpolate(padded, scale_factor=2.0, mode=kind, align_corners=False)
    expected = wide[(..., *[slice(2, -2)] * dims)]
    torch.testing.assert_close(upsample2(x, "linear", circular=True), expected)
    torch.testing.assert_close(upsample2(x, "linear", circular=False),
                               F.interpolate(x, scale_factor=2.0, mode=kind,
                                             align_corners=False))
    nearest = x.repeat_interleave(2, dim=2)
    if dims == 2:
        nearest = nearest.repeat_interleave(2, dim=3)
    torch.testing.assert_close(upsample2(x, "nearest", circular=True), nearest)


def test_linear_upsampling_leaves_no_steps_between_cells() -> None:
    """A ramp upsampled by nearest steps once per coarse cell (every second position is
    0, every other the whole slope); linear steps by half the slope everywhere."""
    ramp = torch.arange(8.0).view(1, 1, 8)
    steps = {mode: upsample2(ramp, mode, circular=False).diff()[0, 0, 1:-1]
             for mode in ("nearest", "linear")}
    assert steps["nearest"].max() == 1.0
    assert steps["nearest"].min() == 0.0
    torch.testing.assert_close(steps["linear"], torch.full_like(steps["linear"], 0.5))


@pytest.mark.parametrize("dims", [1, 2])
def test_linear_generator_is_exactly_periodic(dims: int) -> None:
    gen = make(dims=dims, upsample="linear")
    size = (16, 24)[:dims]
    noise = gen.make_noise(2, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        single = gen(noise)
        double = gen([n.repeat(1, 1, *[2] * dims) for n in noise])
    torch.testing.assert_close(double, single.repeat(1, 1, *[2] * dims), rtol=1e-4,
                               atol=1e-5)


def test_choices_are_stored_in_lower_case() -> None:
    gen = make(padding="Circular", norm="INSTANCE", noise="Normal")
    assert [gen.config.options[k] for k in ("padding", "norm", "noise")] == [
        "circular", "instance", "normal"]


def test_output_lies_in_value_range() -> None:
    gen = make(value_range=[-1.0, 1.0], dims=1, channels=1)
    out = gen(gen.make_noise(4, (64,)))
    assert out.min() >= -1.0
    assert out.max() <= 1.0
    assert out.min() < 0 < out.max()


@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("train", [True, False])
def test_circular_generator_is_exactly_periodic(norm: str, train: bool) -> None:
    """Tiling the noise twice tiles the output twice: a tile meets itself without a seam.

    Holds exactly for extents that are multiples of 2**(K-1), in train mode (batch
    statistics of tiled maps are those of one tile) and in eval mode.
    """
    gen = make(norm=norm).train(train)
    size = (16, 24)
    noise = gen.make_noise(2, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        single = gen(noise)
        double = gen([n.repeat(1, 1, 2, 2) for n in noise])
    torch.testing.assert_close(double, single.repeat(1, 1, 2, 2), rtol=1e-4, atol=1e-5)


def test_zero_padding_is_not_periodic() -> None:
    gen = make(norm="instance", padding="zeros")
    noise = gen.make_noise(2, (16, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        single = gen(noise)
        double = gen([n.repeat(1, 1, 2, 2) for n in noise])
    assert (double - single.repeat(1, 1, 2, 2)).abs().max() > 0.05


def _boundary_differences(gen: PyramidGenerator, size: tuple[int, int], axis: int
                          ) -> tuple[float, torch.Tensor]:
    """Mean |last − first| across the wrap, and the mean |x[j+1] − x[j]| of every interior
    boundary ``j``, along ``axis``.

    Only the coarsest scale gets noise, so that neighbours are correlated and a seam
    (unrelated values meeting at the wrap) would stand out.
    """
    noise = gen.make_noise(32, size, generator=torch.Generator().manual_seed(1))
    noise = [n if k == len(noise) - 1 else torch.zeros_like(n) for k, n in enumerate(noise)]
    with torch.no_grad():
        x = gen(noise).movedim(axis, -1)
    wrap = float((x[..., -1] - x[..., 0]).abs().mean())
    interior = (x[..., 1:] - x[..., :-1]).abs()
    return wrap, interior.mean(dim=tuple(range(interior.dim() - 1)))


@pytest.mark.parametrize("size", [(32, 32), (37, 45), (33, 33)])
def test_circular_output_wraps_without_a_seam(size: tuple[int, int]) -> None:
    """The wrap (last vs first column/row) differs no more than interior neighbours do.

    At sizes that are not multiples of 2**(K-1) the wrap is a boundary between two coarse
    cells, so it is compared with the range of interior boundaries rather than their mean.
    """
    for axis in (-1, -2):  # columns, then rows
        wrap, interior = _boundary_differences(make(num_scales=4), size, axis)
        assert 0.95 * float(interior.min()) <= wrap <= 1.05 * float(interior.max())
        assert wrap <= 1.25 * float(interior.mean())
        # The measure does see a seam: reflect padding makes one.
        wrap, interior = _boundary_differences(make(num_scales=4, padding="reflect"), size,
                                               axis)
        assert wrap > 1.05 * float(interior.max())


def test_stylisation_generator_uses_content() -> None:
    gen = make(content=3, norm="instance").eval()
    size = (20, 28)
    noise = gen.make_noise(2, size, generator=torch.Generator().manual_seed(0))
    content = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = gen(noise, content)  # one content broadcast over the batch
        other = gen(noise, torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size)
    assert not torch.allclose(out, other)
    with pytest.raises(UsageError, match="needs a content"):
        gen(noise)
    with pytest.raises(UsageError, match="content has shape"):
        gen(noise, torch.rand(1, 3, 20, 27))
    with pytest.raises(UsageError, match="takes no content"):
        make()(make().make_noise(1, size), content)


def test_stylisation_1d_forward_and_backward() -> None:
    gen = make(dims=1, channels=1, content=1)
    content = torch.rand(2, 1, 50)
    out = gen(gen.make_noise(2, (50,)), content)
    out.mean().backward()
    assert out.shape == (2, 1, 50)
    assert all(p.grad is not None for p in gen.parameters())


def test_same_seed_same_noise_on_any_device_argument() -> None:
    gen = make()
    a = gen.make_noise(1, (16, 16), generator=torch.Generator().manual_seed(7))
    b = gen.make_noise(1, (16, 16), generator=torch.Generator().manual_seed(7), device="cpu")
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
