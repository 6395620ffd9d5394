"""The pyramid generator over 3 spatial axes ``(N, C, T, H, W)``: the same code as over 1
and 2 axes, so shapes, weights, circular tiling, exact windows, tiles, streams, gradients
and checkpoints must hold for it too. Tiny sizes, CPU only.

Tolerances: as in ``test_tiled.py``, windows and tiles equal the whole output up to
float32 rounding (``atol=1e-5``); a circular shift of the noise is a circular shift of the
output up to the rounding of reductions in another order (``atol=1e-5``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from texsynth import GeneratorConfig, PluginManager, UsageError
from texsynth.controls.regions import erode_masks
from texsynth.feedforward.checkpoint import Checkpoint, load_generator, save_checkpoint
from texsynth.feedforward.noise import counter_noise
from texsynth.feedforward.pyramid import PyramidGenerator
from texsynth.feedforward.pyramid_layers import upsample2
from texsynth.feedforward.pyramid_options import parameter_count
from texsynth.feedforward.sampling import generate
from texsynth.feedforward.tiled import instance_norm_stats, sample_tiled, stream_tiled

#: Only the core's registrations: these tests need no plugin.
CORE = PluginManager(load_entry_points=False)
SIZE = (9, 12, 16)  # (T, H, W): odd, even, multiple of 2**(K-1)
STRIDES = [(1, 0), (2, 0), (2, 2)]  # (stride, detail)


def pyramid(norm: str = "batch", upsample: str = "nearest", stride: int = 1, detail: int = 0,
            seed: int = 0, **options: Any) -> PyramidGenerator:
    """A 3-scale, 4-channel generator of 3 axes with weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return PyramidGenerator(GeneratorConfig("pyramid", 3, 3, 0, {
        "num_scales": 3, "channels": 4, "norm": norm, "upsample": upsample,
        "stride": stride, "detail": detail, **options}))


def trained(norm: str = "batch", upsample: str = "nearest", stride: int = 1,
            detail: int = 0) -> PyramidGenerator:
    """:func:`pyramid` after two SGD steps (weights and running statistics moved), in
    eval mode."""
    gen = pyramid(norm, upsample, stride, detail)
    optimizer = torch.optim.SGD(gen.parameters(), lr=0.1)
    for _ in range(2):
        loss = gen(gen.make_noise(2, (10, 10, 10))).var()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return gen.eval()


def wrapped(x: torch.Tensor, region: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """The positions ``region`` of ``x`` ``(N, C, *extent)``, wrapping around."""
    for axis, (lo, hi) in enumerate(region):
        index = torch.arange(lo, hi) % x.shape[2 + axis]
        x = x.index_select(2 + axis, index)
    return x


# -- shapes, layers and weights -----------------------------------------------------------------
@pytest.mark.parametrize(("stride", "detail"), STRIDES)
@pytest.mark.parametrize("upsample", ["nearest", "linear"])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_noise_maps_to_a_signal_of_three_axes(norm: str, upsample: str, stride: int,
                                              detail: int) -> None:
    gen = pyramid(norm, upsample, stride, detail, value_range=[-1.0, 2.0])
    noise = gen.make_noise(2, SIZE, generator=torch.Generator().manual_seed(0))
    assert [tuple(n.shape[2:]) for n in noise[:3]] == [
        tuple(-(-e // (stride * 2**k)) for e in SIZE) for k in range(3)]
    out = gen(noise).detach()
    assert out.shape == (2, 3, *SIZE)
    assert torch.isfinite(out).all()
    assert float(out.min()) >= -1.0 and float(out.max()) <= 2.0
    assert not torch.equal(out[0], out[1])  # the samples have their own noise
    kinds = {type(m) for m in gen.modules()}
    assert nn.Conv3d in kinds
    assert (nn.BatchNorm3d if norm == "batch" else nn.InstanceNorm3d) in kinds
    assert (nn.ConvTranspose3d in kinds) == (stride > 1)
    assert not kinds & {nn.Conv1d, nn.Conv2d, nn.BatchNorm2d, nn.InstanceNorm2d}


@pytest.mark.parametrize("options", [
    {}, {"num_scales": 3, "channels": 4}, {"norm": "instance", "num_scales": 2},
    {"num_scales": 3, "channels": 5, "noise_channels": 2, "stride": 2, "detail": 3}])
@pytest.mark.parametrize("content", [0, 2])
def test_parameter_count_matches_the_network(options: dict[str, Any], content: int) -> None:
    gen = PyramidGenerator(GeneratorConfig("pyramid", 3, 3, content, options))
    assert parameter_count(gen.config) == sum(p.numel() for p in gen.parameters())


def test_sizes_and_axes_are_checked() -> None:
    gen = pyramid()
    with pytest.raises(UsageError, match="3 spatial axes"):
        gen.make_noise(1, (12, 16))
    with pytest.raises(UsageError, match="at least 5"):
        gen.make_noise(1, (4, 12, 16))
    with pytest.raises(UsageError, match="1 to 3 spatial dims, got 4"):
        PyramidGenerator(GeneratorConfig("pyramid", 4, 3, 0, {"num_scales": 2}))


def test_stylisation_takes_content_of_three_axes() -> None:
    torch.manual_seed(0)
    gen = PyramidGenerator(GeneratorConfig("pyramid", 3, 3, 2, {"num_scales": 3,
                                                                "channels": 4}))
    content = torch.rand(1, 2, *SIZE)
    out = gen(gen.make_noise(2, SIZE), content)
    assert out.shape == (2, 3, *SIZE)
    assert not torch.allclose(out, gen(gen.make_noise(2, SIZE), content.flip(2)))


# -- upsampling -----------------------------------------------------------------------------
def test_linear_upsampling_is_trilinear_interpolation() -> None:
    x = torch.rand(2, 3, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(x, scale_factor=2.0, mode="trilinear", align_corners=False)
    torch.testing.assert_close(upsample2(x, "linear", circular=False), expected)
    # circular: the same interpolation on the torus (pad by one cell, crop the margins)
    padded = F.interpolate(F.pad(x, (1,) * 6, mode="circular"), scale_factor=2.0,
                           mode="trilinear", align_corners=False)
    torch.testing.assert_close(upsample2(x, "linear", circular=True),
                               padded[:, :, 2:-2, 2:-2, 2:-2])
    nearest = upsample2(x, "nearest", circular=True)
    assert torch.equal(nearest, x.repeat_interleave(2, 2).repeat_interleave(2, 3)
                       .repeat_interleave(2, 4))


# -- circular padding: outputs tile and loop along every axis --------------------------------
@pytest.mark.parametrize(("stride", "detail"), [(1, 0), (2, 2)])
@pytest.mark.parametrize("upsample", ["nearest", "linear"])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_shifting_the_noise_shifts_the_output_circularly(norm: str, upsample: str,
                                                         stride: int, detail: int) -> None:
    """With extents that are multiples of ``stride·2**(K-1)``, rolling scale ``k``'s noise
    by ``m·2**(K-1-k)`` cells (the detail noise by ``m·stride·2**(K-1)`` positions) rolls
    the output by ``m·stride·2**(K-1)`` positions: the output is a torus along every axis.
    Batch norm runs in train mode (the batch's statistics, as in training: they do not
    change under a shift either, and the output varies more than with running ones)."""
    gen = trained(norm, upsample, stride, detail).train()
    period = stride * 4
    size = (2 * period, 3 * period, 2 * period) if stride > 1 else (8, 12, 16)
    noise = gen.make_noise(2, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = gen(noise)
        for moves in [(1, 0, 0), (1, 2, -1)]:
            axes = (2, 3, 4)
            rolled = [n.roll(tuple(m * 2 ** (2 - k) for m in moves), axes)
                      for k, n in enumerate(noise[:3])]
            if stride > 1:
                rolled.append(noise[3].roll(tuple(m * period for m in moves), axes))
            expected = out.roll(tuple(m * period for m in moves), axes)
            torch.testing.assert_close(gen(rolled), expected, rtol=0, atol=1e-5)
    assert float((out - out.roll(1, 2)).abs().max()) > 1e-2  # the output varies in time


# -- windows, tiles and streams ---------------------------------------------------------------
REGIONS = [((0, 9), (0, 12), (0, 16)), ((-2, 4), (5, 14), (12, 20)), ((7, 13), (11, 12), (-3, 2))]


@pytest.mark.parametrize(("stride", "detail"), STRIDES)
@pytest.mark.parametrize("upsample", ["nearest", "linear"])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_windows_equal_the_whole_output(norm: str, upsample: str, stride: int,
                                        detail: int) -> None:
    gen = trained(norm, upsample, stride, detail)
    size = SIZE if stride == 1 else (10, 12, 16)
    key = gen.noise_key(torch.Generator().manual_seed(5))
    with torch.no_grad():
        whole = gen(gen.make_noise(2, size, generator=torch.Generator().manual_seed(5)))
        stats = instance_norm_stats(gen, key, [1, 0], size, 5)
        assert len(stats) == (3 * 3 + 5 * 2 if norm == "instance" else 0)
        for region in REGIONS:
            window = gen.forward_region(key, [1, 0], size, region, norm_stats=stats)
            torch.testing.assert_close(window, wrapped(whole[[1, 0]], region),
                                       rtol=0, atol=1e-5)


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_tiled_and_streamed_samples_equal_the_whole_one(norm: str) -> None:
    gen = trained(norm, "linear")
    whole = generate(gen, SIZE, seed=7, count=2)
    tiled = sample_tiled(gen, SIZE, seed=7, index=1, tile=5)
    assert tiled is not None
    torch.testing.assert_close(tiled[0], whole[1], rtol=0, atol=1e-5)
    blocks = list(stream_tiled(gen, SIZE[1:], length=SIZE[0], seed=7, chunk=4))
    assert [b.shape[1] for b in blocks] == [4, 4, 1]
    torch.testing.assert_close(torch.cat(blocks, dim=1), whole[0], rtol=0, atol=1e-5)
    assert not gen.training


def test_an_endless_stream_of_three_axes_starts() -> None:
    gen = trained("batch", stride=2, detail=2)
    block = next(iter(stream_tiled(gen, (12, 16), seed=1, chunk=3)))
    assert block.shape == (3, 3, 12, 16)
    assert torch.isfinite(block).all()


# -- noise over 3 axes ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_noise_windows_are_slices_of_the_whole_noise_and_wrap(kind: str) -> None:
    gen = pyramid(noise=kind)
    whole = gen.make_noise(3, SIZE, generator=torch.Generator().manual_seed(4))
    key = gen.noise_key(torch.Generator().manual_seed(4))
    for k, extent in enumerate(gen.scale_sizes(SIZE)):
        window = ((-3, extent[0] + 2), (1, extent[1] + 1), (5, 2 * extent[2] + 1))
        part = gen.noise_region(key, [2, 0], SIZE, k, window)
        assert torch.equal(part, wrapped(whole[k][[2, 0]], window))
    x = whole[0]
    assert abs(float(x.mean()) - (0.5 if kind == "uniform" else 0.0)) < 0.03
    for axis in (2, 3, 4):  # neighbours along every axis are uncorrelated
        flat = x - x.mean()
        a, b = flat.narrow(axis, 1, x.shape[axis] - 1), flat.narrow(axis, 0, x.shape[axis] - 1)
        assert abs(float((a * b).mean() / flat.var())) < 0.05


def test_noise_of_three_axes_is_its_own_and_bounded() -> None:
    t, y, x = torch.arange(3), torch.arange(4), torch.arange(5)
    cube = counter_noise(1, [0], 0, 1, [t, y, x], "uniform")
    assert cube.shape == (1, 1, 3, 4, 5)
    assert len(torch.unique(cube)) == cube.numel()  # no two positions share a counter
    plane = counter_noise(1, [0], 0, 1, [y, x], "uniform")
    assert not torch.equal(cube[:, :, 0], plane)  # another layout than 2 axes
    top = torch.tensor([(1 << 20) - 1])
    assert counter_noise(1, [0], 0, 1, [t, top, top], "uniform").shape == (1, 1, 3, 1, 1)
    with pytest.raises(UsageError, match="axis 2 must be from 0 to 1048575"):
        counter_noise(1, [0], 0, 1, [t, y, top + 1], "uniform")
    with pytest.raises(UsageError, match="axis 1 must be from 0 to 1048575"):
        counter_noise(1, [0], 0, 1, [t, -y - 1, x], "uniform")


# -- training and checkpoints ----------------------------------------------------------------
@pytest.mark.parametrize(("norm", "stride", "detail"), [("batch", 1, 0), ("instance", 2, 2)])
def test_gradients_reach_every_parameter(norm: str, stride: int, detail: int) -> None:
    gen = pyramid(norm, "linear", stride, detail)
    size = (10, 12, 16)
    target = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    (gen(gen.make_noise(2, size)) - target).square().mean().backward()
    for name, parameter in gen.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("norm", "stride", "detail"), [("batch", 1, 0), ("instance", 2, 2)])
def test_checkpoint_round_trip_rebuilds_the_generator(tmp_path: Path, norm: str, stride: int,
                                                      detail: int) -> None:
    gen = trained(norm, "linear", stride, detail).train()
    path = tmp_path / "clip.safetensors"
    save_checkpoint(path, Checkpoint(
        settings={"domain": "clips", "seed": 3, "generator": gen.config.to_dict(),
                  "extractor": {"name": "random-multiscale", "layers": ["k3"], "seed": 3,
                                "weights": None, "options": {}},
                  "texture_layers": ["k3"], "content_layers": [],
                  "loss": {"texture_loss": "gram", "normalize": "chw"},
                  "training": {"size": [10, 10, 10], "batch_size": 2}},
        step=2, generator_state=gen.state_dict(), losses=[0.5, 0.25]))
    loaded, meta = load_generator(path, domain="clips", manager=CORE)
    assert isinstance(loaded, PyramidGenerator)
    assert meta["generator"] == gen.config.to_dict()
    assert loaded.config.spatial_dims == 3
    size = (10, 12, 16)
    expected = generate(gen, size, seed=11, count=2)
    assert torch.equal(generate(loaded, size, seed=11, count=2), expected)
    assert torch.equal(generate(path, size, seed=11, count=2, manager=CORE), expected)


# -- guidance masks over 3 axes ---------------------------------------------------------------
@pytest.mark.parametrize("circular", [True, False])
def test_masks_erode_along_every_axis(circular: bool) -> None:
    masks = (torch.rand(1, 2, 5, 6, 7, generator=torch.Generator().manual_seed(0)) > 0.2
             ).float()
    padded = F.pad(masks, (1,) * 6, mode="circular" if circular else "replicate")
    expected = -F.max_pool3d(-padded, 3, stride=1)
    assert torch.equal(erode_masks(masks, 1, circular=circular), expected)
