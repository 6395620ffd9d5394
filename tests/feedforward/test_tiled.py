"""Tiled sampling: counter-based noise, exact windows, seamless tiles, streamed PNGs.

Tolerances: a tiled output equals the whole one up to float32 rounding, measured
≤ 1e-7 with batch norm (eval mode, running statistics) and ≤ 6e-6 with instance norm
(whole-extent statistics computed in passes over tiles, merged in float64; 5.6e-6 for a
default six-scale generator at 1024²); both are asserted with ``atol=1e-5``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from texsynth import Domain, Generator, GeneratorConfig, UsageError
from texsynth.feedforward.checkpoint import Checkpoint, save_checkpoint
from texsynth.feedforward.noise import counter_noise
from texsynth.feedforward.pyramid import PyramidGenerator
from texsynth.feedforward.sampling import generate
from texsynth.feedforward.tiled import (
    instance_norm_stats,
    sample_tiled,
    tile_regions,
    tiling_problem,
)
from texsynth.generator import NormStats, Region, WindowedGenerator
from texsynth_image import ImageDomain, read_metadata


def trained(norm: str = "batch", dims: int = 2, scales: int = 4, seed: int = 0,
            **options: Any) -> PyramidGenerator:
    """A small generator after a few SGD steps, so weights and running statistics moved."""
    torch.manual_seed(seed)
    gen = PyramidGenerator(GeneratorConfig("pyramid", dims, 3, 0,
                                           {"num_scales": scales, "norm": norm, **options}))
    size = (24,) * dims
    optimizer = torch.optim.SGD(gen.parameters(), lr=0.1)
    for _ in range(3):
        loss = gen(gen.make_noise(2, size)).var()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return gen.eval()


# -- noise (see also test_noise.py) ------------------------------------------------------------
def test_noise_windows_are_slices_of_the_whole_noise_and_wrap() -> None:
    gen = trained(scales=3)
    size = (37, 45)
    whole = gen.make_noise(3, size, generator=torch.Generator().manual_seed(4))
    key = gen.noise_key(torch.Generator().manual_seed(4))
    for k, extent in enumerate(gen.scale_sizes(size)):
        window = ((-3, extent[0] + 2), (5, 2 * extent[1] + 1))  # wraps on both sides
        part = gen.noise_region(key, [2, 0], size, k, window)
        rows = torch.arange(*window[0]) % extent[0]
        cols = torch.arange(*window[1]) % extent[1]
        expected = whole[k][[2, 0]][:, :, rows][:, :, :, cols]
        assert torch.equal(part, expected)


def test_sample_n_does_not_depend_on_the_batch_size() -> None:
    gen = trained(scales=3)
    big = gen.make_noise(4, (20, 20), generator=torch.Generator().manual_seed(1))
    small = gen.make_noise(2, (20, 20), generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(b[:2], s) for b, s in zip(big, small, strict=True))


@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_noise_statistics(kind: str) -> None:
    gen = trained(scales=2, noise=kind)
    x = gen.make_noise(4, (128, 128), generator=torch.Generator().manual_seed(0))[0]
    assert x.dtype == torch.float32
    if kind == "uniform":
        assert float(x.min()) >= 0.0
        assert float(x.max()) < 1.0
        assert abs(float(x.mean()) - 0.5) < 0.01
        assert abs(float(x.var()) - 1 / 12) < 0.002
    else:
        assert abs(float(x.mean())) < 0.02
        assert abs(float(x.var()) - 1.0) < 0.03
    # Neighbours and channels are uncorrelated.
    flat = x - x.mean()
    assert abs(float((flat[:, :, :, 1:] * flat[:, :, :, :-1]).mean() / flat.var())) < 0.02
    assert abs(float((flat[:, 0] * flat[:, 1]).mean() / flat.var())) < 0.02


def test_a_seed_stream_moves_on_between_calls() -> None:
    gen = trained(scales=2)
    rng = torch.Generator().manual_seed(0)
    first, second = gen.make_noise(1, (16, 16), generator=rng), gen.make_noise(
        1, (16, 16), generator=rng)
    assert not torch.equal(first[0], second[0])


# -- exact windows and tiles ------------------------------------------------------------------
@pytest.mark.parametrize("upsample", ["nearest", "linear"])
@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize(("size", "tile"), [((48, 64), 16), ((37, 45), 20), ((70, 33), 64)])
def test_tiled_sample_equals_the_whole_one(norm: str, size: tuple[int, int],
                                           tile: int, upsample: str) -> None:
    gen = trained(norm, upsample=upsample)
    whole = generate(gen, size, seed=7, count=2)
    for index in range(2):
        tiled = sample_tiled(gen, size, seed=7, index=index, tile=tile)
        assert tiled is not None
        torch.testing.assert_close(tiled[0], whole[index], rtol=0, atol=1e-5)
    assert not gen.training


@pytest.mark.parametrize("upsample", ["nearest", "linear"])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_tiled_sound_equals_the_whole_one(norm: str, upsample: str) -> None:
    gen = trained(norm, dims=1, scales=5, upsample=upsample)
    whole = generate(gen, (1001,), seed=3)
    tiled = sample_tiled(gen, (1001,), seed=3, tile=128)
    assert tiled is not None
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("upsample", ["nearest", "linear"])
def test_windows_across_the_border_wrap_like_the_torus(upsample: str) -> None:
    """A window straddling the right/bottom edge is the whole output rolled: the tiled
    output is tileable, and tiles meet across the wrap without a seam."""
    gen = trained(upsample=upsample)
    size = (40, 56)
    whole = generate(gen, size, seed=2)
    key = gen.noise_key(torch.Generator().manual_seed(2))
    with torch.no_grad():
        window = gen.forward_region(key, [0], size, ((30, 50), (-8, 8)))
    rolled = whole.roll(shifts=(-30, 8), dims=(2, 3))[:, :, :20, :16]
    torch.testing.assert_close(window, rolled, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("upsample", "halos", "reach"),
                         [("nearest", [4, 5, 6, 6, 6, 4], 310),
                          ("linear", [4, 6, 7, 7, 7, 5], 372)])  # + one coarse neighbour
def test_halo_follows_the_architecture(upsample: str, halos: list[int], reach: int) -> None:
    torch.manual_seed(0)  # the weights: a position's pull on the output varies with them
    gen = PyramidGenerator(GeneratorConfig("pyramid", 2, 3, 0, {"upsample": upsample}))
    assert gen.halo((256, 256)) == halos  # six scales
    radius = sum(2**k * h for k, h in enumerate(gen.halo((256, 256))))
    assert radius == reach
    # A noise change just outside the receptive field leaves a position unchanged.
    gen.eval()
    size = (1024, 64)
    noise = gen.make_noise(1, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = gen(noise)[0, :, 512, 0]
        far = [n.clone() for n in noise]
        far[0][:, :, 512 + 5:, :] = 0.5  # finest scale, beyond its halo of 4
        assert torch.allclose(gen(far)[0, :, 512, 0], before, atol=1e-6)
        near = [n.clone() for n in noise]
        near[0][:, :, 512 + 4, :] = 0.5
        assert not torch.allclose(gen(near)[0, :, 512, 0], before, atol=1e-6)


def test_tiles_cover_the_output_in_raster_order() -> None:
    regions = list(tile_regions((5, 7), 3))
    assert regions[:3] == [((0, 3), (0, 3)), ((0, 3), (3, 6)), ((0, 3), (6, 7))]
    assert sum(math.prod(hi - lo for lo, hi in r) for r in regions) == 35


def test_what_cannot_be_tiled() -> None:
    assert tiling_problem(trained(scales=2)) is None
    reflect = trained(scales=2, padding="reflect")
    assert "circular" in str(tiling_problem(reflect))
    with pytest.raises(UsageError, match="circular"):
        sample_tiled(reflect, (32, 32), tile=16)
    train_mode = trained(scales=2).train()
    key = train_mode.noise_key()
    with pytest.raises(UsageError, match="eval mode"):
        train_mode.forward_region(key, [0], (32, 32), ((0, 8), (0, 8)))


# -- the WindowedGenerator protocol -----------------------------------------------------------
class _Pointwise(Generator):
    """Not a pyramid: one scale of 2 noise channels through a 1×1 convolution and a
    sigmoid. It implements :class:`WindowedGenerator`, so it can be sampled in tiles."""

    def __init__(self, name: str = "pointwise-test") -> None:
        super().__init__(GeneratorConfig(name, 2, 3))
        self.mix = nn.Conv2d(2, 3, 1)

    def _noise(self, key: int, samples: Sequence[int], size: Sequence[int],
               region: Region) -> torch.Tensor:
        coords = [torch.arange(lo, hi).remainder_(int(n))
                  for (lo, hi), n in zip(region, size, strict=True)]
        return counter_noise(key, list(samples), 0, 2, coords, "uniform")

    def make_noise(self, batch: int, size: tuple[int, ...], *,
                   generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> list[torch.Tensor]:
        whole = tuple((0, int(s)) for s in size)
        return [self._noise(self.noise_key(generator), range(batch), size, whole).to(device)]

    def forward(self, noise: list[torch.Tensor], content: torch.Tensor | None = None
                ) -> torch.Tensor:
        return torch.sigmoid(self.mix(noise[0]))

    def tileable(self) -> str | None:
        return None

    def noise_key(self, generator: torch.Generator | None = None) -> int:
        return int(torch.randint(0, 1 << 62, (1,), generator=generator))

    def scale_sizes(self, size: Sequence[int]) -> list[tuple[int, ...]]:
        return [tuple(int(s) for s in size)]

    def instance_norms(self) -> list[tuple[int, nn.Module]]:
        return []

    def norm_input(self, key: int, samples: Sequence[int], size: Sequence[int],
                   module: nn.Module, region: Region, *, norm_stats: NormStats | None = None,
                   device: torch.device | str | None = None) -> torch.Tensor:
        raise UsageError("the pointwise generator has no instance norms")

    def forward_region(self, key: int, samples: Sequence[int], size: Sequence[int],
                       region: Region, *, norm_stats: NormStats | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        return torch.sigmoid(self.mix(self._noise(key, samples, size, region)))


class _Plain(Generator):
    """A generator without any of the windowed methods."""

    def __init__(self) -> None:
        super().__init__(GeneratorConfig("plain-test", 2, 3))
        self.mix = nn.Conv2d(2, 3, 1)

    def make_noise(self, batch: int, size: tuple[int, ...], *,
                   generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> list[torch.Tensor]:
        return [torch.rand(batch, 2, *size, generator=generator).to(device)]

    def forward(self, noise: list[torch.Tensor], content: torch.Tensor | None = None
                ) -> torch.Tensor:
        return torch.sigmoid(self.mix(noise[0]))


class _NoRegions(_Pointwise):
    """Everything but ``forward_region`` (switched off)."""

    forward_region = None  # type: ignore[assignment]


def test_a_non_pyramid_windowed_generator_is_tiled() -> None:
    gen = _Pointwise()
    assert not isinstance(gen, PyramidGenerator)
    assert isinstance(gen, WindowedGenerator)
    assert tiling_problem(gen) is None
    size = (21, 30)
    whole = generate(gen, size, seed=4, count=2)
    tiled = sample_tiled(gen, size, seed=4, index=1, tile=8)
    assert tiled is not None
    torch.testing.assert_close(tiled[0], whole[1], rtol=0, atol=1e-6)
    assert instance_norm_stats(gen, gen.noise_key(), [0], size, 8) == {}


def test_generators_without_the_protocol_get_a_one_line_reason() -> None:
    plain = _Plain()
    assert not isinstance(plain, WindowedGenerator)
    reason = tiling_problem(plain)
    assert reason == ("generator 'plain-test' does not support windows of its output (it "
                      "lacks tileable, noise_key, scale_sizes, instance_norms, norm_input, "
                      "forward_region)")
    with pytest.raises(UsageError, match=r"^cannot sample in tiles: generator 'plain-test' "
                                         r"does not support windows"):
        sample_tiled(plain, (16, 16), tile=8)
    # The protocol decides: one missing method is enough, and it is named.
    partial = _NoRegions("partial-test")
    assert not isinstance(partial, WindowedGenerator)
    assert tiling_problem(partial) == ("generator 'partial-test' does not support windows of "
                                       "its output (it lacks forward_region)")


# -- writers ----------------------------------------------------------------------------------
def _image_domain() -> Domain:
    return ImageDomain()


def _png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length:pos + 12 + length], "big")
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


@pytest.mark.parametrize("channels", [3, 1])
def test_streamed_png_equals_domain_save(tmp_path: Path, channels: int) -> None:
    domain = _image_domain()
    gen = torch.Generator().manual_seed(0)
    signal = torch.rand(1, channels, 67, 90, generator=gen) * 1.2 - 0.1  # out of range too
    signal[0, 0, 3, 4] = float("nan")
    signal[0, :, 10:20] = 0.5  # flat rows: exercises every filter choice
    metadata = {"seed": 3, "note": "tiled", "nested": {"a": [1, 2]}}
    saved = domain.save(signal, tmp_path / "saved.png", metadata=metadata)
    streamed = tmp_path / "streamed.png"
    with domain.open_writer(streamed, (67, 90), channels, metadata=metadata) as writer:
        for region in tile_regions((67, 90), 16):
            (y0, y1), (x0, x1) = region
            writer.write(signal[0, :, y0:y1, x0:x1], (y0, x0))
    kinds = [kind for kind, _ in _png_chunks(streamed)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert kinds.index(b"tEXt") < kinds.index(b"IDAT")
    with Image.open(streamed) as image:
        image.verify()
    with Image.open(streamed) as image, Image.open(saved) as reference:
        assert image.mode == reference.mode == ("RGB" if channels == 3 else "L")
        assert np.array_equal(np.asarray(image), np.asarray(reference))
    assert read_metadata(streamed) == metadata == read_metadata(saved)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved.png", "streamed.png"]


def _stream(domain: Domain, target: Path, *writes: tuple[int, int],
            fail: bool = False) -> None:
    """Write 8×8 blocks at ``writes`` into a 16×16 PNG; ``fail`` raises inside."""
    with domain.open_writer(target, (16, 16), 3) as writer:
        for offset in writes:
            writer.write(torch.rand(3, 8, 8), offset)
        if fail:
            raise RuntimeError("boom")


def test_streaming_errors_leave_no_files(tmp_path: Path) -> None:
    domain = _image_domain()
    target = tmp_path / "out.png"
    with pytest.raises(RuntimeError, match="boom"):
        _stream(domain, target, (0, 0), fail=True)
    with pytest.raises(UsageError, match="never written"):
        _stream(domain, target, (0, 0), (0, 8))  # rows 0-7 done; 8-15 missing
    with pytest.raises(UsageError, match="raster order"):
        _stream(domain, target, (0, 0), (0, 8), (0, 0))  # rows 0-7 were already written
    with pytest.raises(UsageError, match="outside"):
        _stream(domain, target, (12, 0))
    assert list(tmp_path.iterdir()) == []
    # An existing file survives a failed rewrite untouched.
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        _stream(domain, target, (0, 0), (0, 8), fail=True)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    _stream(domain, target, (0, 0), (0, 8), (8, 8), (8, 0))
    with Image.open(target) as image:
        assert image.size == (16, 16)


# -- command line -----------------------------------------------------------------------------
def test_cli_tiled_sample_equals_the_whole_one(tmp_path: Path,
                                               texsynth_plugins: Any) -> None:
    domain = _image_domain()
    from texsynth.cli.commands import main

    gen = trained(scales=3)
    ckpt = tmp_path / "gen.ckpt"
    save_checkpoint(ckpt, Checkpoint(
        settings={"domain": domain.name, "seed": 0, "generator": gen.config.to_dict(),
                  "training": {"size": [24, 24]}},
        step=3, generator_state=gen.state_dict()))
    common = ["sample", str(ckpt), "--size", "90x70", "--seed", "5", "-n", "2", "-q"]
    assert main([*common, "--tile", "32", "-o", str(tmp_path / "tiled.png")]) == 0
    assert main([*common, "--tile", "0", "-o", str(tmp_path / "whole.png")]) == 0
    for index in (1, 2):
        tiled = tmp_path / f"tiled_{index:03d}.png"
        whole = tmp_path / f"whole_{index:03d}.png"
        a = np.asarray(Image.open(tiled)).astype(int)
        b = np.asarray(Image.open(whole)).astype(int)
        assert a.shape == (70, 90, 3)
        # Equal up to float rounding: a value within 1e-5 of a .5 step may round apart.
        assert np.abs(a - b).max() <= 1
        assert (a != b).mean() < 1e-3
        meta = read_metadata(tiled)
        assert meta is not None
        assert meta["tile"] == 32
        assert meta["index"] == index - 1
    assert main(["sample", str(ckpt), "--size", "64x64", "--tile", "-1",
                 "-o", str(tmp_path / "x.png")]) == 2
