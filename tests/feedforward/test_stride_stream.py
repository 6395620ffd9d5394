"""Strided pyramids (frames drawn by a transposed convolution) and streamed sampling.

Tolerances as in ``test_tiled.py``: windows and streams equal the whole output up to
float32 rounding, asserted with ``atol=1e-5``.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from texsynth import GeneratorConfig, UsageError
from texsynth.domain import drain_stream
from texsynth.errors import Terminated
from texsynth.feedforward.pyramid import PyramidGenerator
from texsynth.feedforward.pyramid_layers import overlap_add
from texsynth.feedforward.pyramid_options import parameter_count
from texsynth.feedforward.sampling import generate
from texsynth.feedforward.tiled import STREAM_PERIOD, sample_tiled, stream_tiled


def trained(dims: int = 1, scales: int = 3, stride: int = 8, seed: int = 0,
            **options: Any) -> PyramidGenerator:
    """A small strided generator after a few SGD steps (weights and running statistics
    moved away from their initial values)."""
    torch.manual_seed(seed)
    gen = PyramidGenerator(GeneratorConfig("pyramid", dims, 2, 0, {
        "num_scales": scales, "stride": stride, "value_range": [-1.0, 1.0], **options}))
    size = (stride * 2 ** scales + 3,) * dims
    optimizer = torch.optim.SGD(gen.parameters(), lr=0.1)
    for _ in range(3):
        loss = gen(gen.make_noise(2, size)).var()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return gen.eval()


# -- the decoder ---------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [1, 2])
def test_overlap_add_is_the_transposed_convolution(dims: int) -> None:
    torch.manual_seed(0)
    frames = torch.randn(2, 5, *(7, 6)[:dims])
    weight = torch.randn(5, 3, *(8,) * dims)
    bias = torch.randn(3)
    expected = (F.conv_transpose1d if dims == 1 else F.conv_transpose2d)(
        frames, weight, bias, stride=4)
    torch.testing.assert_close(overlap_add(frames, weight, bias, 4), expected,
                               rtol=1e-5, atol=1e-5)


def test_stride_sets_the_grid_the_extent_and_the_weights() -> None:
    gen = trained(stride=16, scales=3)
    assert gen.scale_sizes((1000,)) == [(63,), (32,), (16,)]
    assert gen.min_extent() == 16 * 4 + 1
    with pytest.raises(UsageError, match="at least 65"):
        gen.scale_sizes((64,))
    assert parameter_count(gen.config) == sum(p.numel() for p in gen.parameters())
    noise = gen.make_noise(3, (1000,))
    assert [tuple(n.shape) for n in noise[:-1]] == [(3, 3, 63), (3, 3, 32), (3, 3, 16)]
    assert tuple(noise[-1].shape) == (3, 0, 1000)  # carries the output's extent
    with torch.no_grad():
        out = gen(noise)
    assert out.shape == (3, 2, 1000)
    assert float(out.abs().max()) <= 1.0
    with pytest.raises(UsageError, match="expected 4 noise tensors"):
        gen(noise[:-1])


@pytest.mark.parametrize("stride", [0, 1025, 2.5])
def test_bad_strides_are_usage_errors(stride: object) -> None:
    with pytest.raises(UsageError, match="stride"):
        PyramidGenerator(GeneratorConfig("pyramid", 1, 1, 0, {"stride": stride}))


def test_gradients_reach_every_weight() -> None:
    gen = trained().train()
    gen(gen.make_noise(2, (300,))).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())


def test_strided_stylisation_takes_content_of_the_output_size() -> None:
    torch.manual_seed(0)
    gen = PyramidGenerator(GeneratorConfig("pyramid", 1, 1, 1, {"num_scales": 2,
                                                                "stride": 4}))
    content = torch.rand(1, 1, 101)
    out = gen(gen.make_noise(1, (101,)), content)
    assert out.shape == (1, 1, 101)
    other = gen(gen.make_noise(1, (101,), generator=torch.Generator().manual_seed(0)),
                torch.rand(1, 1, 101))
    assert not torch.allclose(out, other)


def test_stored_config_rebuilds_the_strided_generator() -> None:
    gen = trained(stride=4)
    twin = PyramidGenerator(GeneratorConfig.from_dict(gen.config.to_dict()))
    twin.load_state_dict(gen.state_dict())
    noise = gen.make_noise(1, (200,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(twin.eval()(noise), gen(noise))


# -- windows and periodicity -------------------------------------------------------------
@pytest.mark.parametrize(("dims", "size", "tile"),
                         [(1, (1000,), 77), (1, (1024,), 100), (2, (70, 90), 32)])
def test_tiled_strided_sample_equals_the_whole_one(dims: int, size: tuple[int, ...],
                                                   tile: int) -> None:
    gen = trained(dims=dims, stride=8 if dims == 1 else 4)
    whole = generate(gen, size, seed=5)
    tiled = sample_tiled(gen, size, seed=5, tile=tile)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)


def test_instance_norm_strided_tiles_equal_the_whole_one() -> None:
    gen = trained(norm="instance")
    whole = generate(gen, (777,), seed=1)
    torch.testing.assert_close(sample_tiled(gen, (777,), seed=1, tile=100), whole,
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("detail", [0, 3])
def test_strided_output_wraps_without_a_seam(detail: int) -> None:
    """For extents that are multiples of ``stride·2**(K-1)`` the decoder wraps with the
    grid: a window across the end is the whole output rolled."""
    gen = trained(stride=8, scales=3, detail=detail)
    size = (8 * 4 * 10,)
    whole = generate(gen, size, seed=2)
    key = gen.noise_key(torch.Generator().manual_seed(2))
    with torch.no_grad():
        window = gen.forward_region(key, [0], size, ((size[0] - 37, size[0] + 41),))
    torch.testing.assert_close(window, whole.roll(37, 2)[:, :, :78], rtol=0, atol=1e-5)


# -- streams ----------------------------------------------------------------------------------
@pytest.mark.parametrize("stride", [1, 8])
def test_a_stream_with_a_length_is_the_one_piece_sample(stride: int) -> None:
    gen = trained(stride=stride, scales=3 if stride > 1 else 5)
    whole = generate(gen, (1500,), seed=4)
    blocks = list(stream_tiled(gen, length=1500, seed=4, chunk=333))
    assert [b.shape[1] for b in blocks] == [333, 333, 333, 333, 168]
    torch.testing.assert_close(torch.cat(blocks, dim=1)[None], whole, rtol=0, atol=1e-5)
    assert not gen.training


def test_an_unbounded_stream_goes_on_and_its_chunks_join() -> None:
    gen = trained()
    stream = stream_tiled(gen, seed=9, chunk=250)
    first = torch.cat(list(itertools.islice(stream, 4)), dim=1)
    again = torch.cat(list(itertools.islice(stream_tiled(gen, seed=9, chunk=1000), 1)), dim=1)
    torch.testing.assert_close(first, again, rtol=0, atol=1e-5)
    other = next(iter(stream_tiled(gen, seed=10, chunk=1000)))
    assert not torch.allclose(first, other)
    key = gen.noise_key(torch.Generator().manual_seed(9))
    with torch.no_grad():
        window = gen.forward_region(key, [0], (STREAM_PERIOD,), ((0, 1000),))
    torch.testing.assert_close(first, window[0], rtol=0, atol=1e-5)


def test_unbounded_instance_norm_streams_are_refused() -> None:
    gen = trained(norm="instance")
    with pytest.raises(UsageError, match="instance-norm generator without an end"):
        next(iter(stream_tiled(gen, seed=0)))
    assert sum(b.shape[1] for b in stream_tiled(gen, length=300, seed=0, chunk=128)) == 300


@pytest.mark.parametrize("stop", [KeyboardInterrupt, Terminated, BrokenPipeError])
def test_drain_stream_keeps_what_came_before_a_stop(stop: type[BaseException]) -> None:
    def blocks() -> Any:
        yield torch.zeros(1, 10)
        yield torch.zeros(1, 5)
        raise stop

    seen: list[int] = []
    assert drain_stream(blocks(), lambda b: seen.append(b.shape[1])) == (15, True)
    assert seen == [10, 5]
    assert drain_stream(iter([torch.zeros(1, 3)]), lambda b: None) == (3, False)


# -- detail noise -----------------------------------------------------------------------------
def test_detail_noise_adds_filtered_noise_at_the_output_rate() -> None:
    gen = trained(stride=8, detail=4)
    assert parameter_count(gen.config) == sum(p.numel() for p in gen.parameters())
    noise = gen.make_noise(2, (500,), generator=torch.Generator().manual_seed(0))
    assert tuple(noise[-1].shape) == (2, 4, 500)
    assert abs(float(noise[-1].std()) - 1.0) < 0.05  # standard normal
    with torch.no_grad():
        out = gen(noise)
        quiet = [n.clone() for n in noise]
        quiet[-1].zero_()
        without = gen(quiet)
    assert out.shape == (2, 2, 500)
    assert float((out - without).abs().max()) > 1e-4  # the detail path is used
    gen.train()
    gen(noise).pow(2).mean().backward()
    assert gen.detail_filters.weight.grad is not None
    assert float(gen.detail_gains.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize(("dims", "size", "tile"), [(1, (1000,), 77), (2, (70, 90), 32)])
def test_tiles_and_streams_with_detail_equal_the_whole_one(dims: int, size: tuple[int, ...],
                                                           tile: int) -> None:
    gen = trained(dims=dims, stride=8 if dims == 1 else 4, detail=3)
    whole = generate(gen, size, seed=5)
    torch.testing.assert_close(sample_tiled(gen, size, seed=5, tile=tile), whole,
                               rtol=0, atol=1e-5)
    if dims == 1:
        blocks = list(stream_tiled(gen, length=size[0], seed=5, chunk=tile))
        torch.testing.assert_close(torch.cat(blocks, 1)[None], whole, rtol=0, atol=1e-5)


def test_detail_needs_a_stride() -> None:
    with pytest.raises(UsageError, match="detail noise needs a stride"):
        PyramidGenerator(GeneratorConfig("pyramid", 1, 1, 0, {"detail": 2}))
    with pytest.raises(UsageError, match="detail must be a non-negative integer"):
        PyramidGenerator(GeneratorConfig("pyramid", 1, 1, 0, {"detail": -1, "stride": 4}))
