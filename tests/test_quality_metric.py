"""The quality metric of ``benchmarks/quality.py`` ranks what it should, on a real image.

It scores a genuine crop of an exemplar better than copies that keep only its colours
(pixel shuffle) or only its power spectrum (phase randomisation); its colour distance is
0 for the same pixels and grows with a colour shift. The benchmark script imports
without running.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import texsynth

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import quality  # noqa: E402

SIZE = 128


@pytest.fixture(scope="module")
def bricks(sample_image: Callable[[str], Path]) -> torch.Tensor:
    return texsynth.load(sample_image("bricks.png"))


def test_crop_scores_better_than_shuffled_and_phase_randomised(bricks: torch.Tensor) -> None:
    box = (0, 0, SIZE, SIZE)
    crop_score = quality.texture_score(quality.crop(bricks, box),
                                       quality.reference(bricks, exclude=box))
    full = quality.reference(bricks)
    generator = torch.Generator().manual_seed(0)
    phased = quality.crop(quality.phase_randomize(bricks, generator), box)
    shuffled = quality.crop(quality.pixel_shuffle(bricks, generator), box)
    phase_score = quality.texture_score(phased, full)
    shuffle_score = quality.texture_score(shuffled, full)
    assert crop_score < 1.5, "a genuine piece of the exemplar should score near 1"
    assert crop_score * 1.2 < phase_score < shuffle_score


def test_reference_leaves_out_the_windows_of_the_box(bricks: torch.Tensor) -> None:
    full = quality.reference(bricks)
    held = quality.reference(bricks, exclude=(0, 0, SIZE, SIZE))
    assert full.windows == 13 * 13
    assert held.windows == 13 * 13 - 8 * 8
    assert full.mean.shape == (len(quality.statistic_families()),) == (529,)
    assert torch.all(held.std > 0)


def test_colour_distance_is_zero_for_the_same_pixels(bricks: torch.Tensor) -> None:
    assert quality.colour_distance(bricks, bricks) == 0.0
    shuffled = quality.pixel_shuffle(bricks, torch.Generator().manual_seed(1))
    assert quality.colour_distance(shuffled, bricks) == pytest.approx(0.0, abs=1e-9)


def test_colour_distance_grows_with_a_colour_shift(bricks: torch.Tensor) -> None:
    small = quality.colour_distance((bricks + 0.05).clamp(0, 1), bricks)
    large = quality.colour_distance((bricks + 0.2).clamp(0, 1), bricks)
    assert 0.02 < small < large
    tinted = bricks * torch.tensor([1.0, 0.7, 0.7]).view(1, 3, 1, 1)
    assert quality.colour_distance(tinted, bricks) > 0.01
    # an unclipped shift by δ of every channel: E|θ·(1, 1, 1)| δ = (√3 / 2) δ
    pixels = quality.pixels(bricks)
    assert quality.colour_distance(pixels + 0.1, pixels) == pytest.approx(0.0866, rel=0.02)


def test_the_benchmark_imports_without_running() -> None:
    spec = importlib.util.spec_from_file_location("bench_quality_under_test",
                                                  BENCHMARKS / "bench_quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    args = module.parse([])
    assert (args.size, args.steps, args.checkpoint, args.variant) == (128, None, [], [])
    assert callable(module.main)


# -- novelty and order (benchmarks/novelty_order.py) ---------------------------------------
def _small_tiles(sample_image: Callable[[str], Path]) -> torch.Tensor:
    return torch.nn.functional.interpolate(texsynth.load(sample_image("tiles.png")),
                                           size=(96, 96), mode="area")


def test_novelty_sees_a_copy_and_not_a_genuine_piece(sample_image: Callable[[str], Path]
                                                     ) -> None:
    import novelty_order

    tiles = _small_tiles(sample_image)
    reference = novelty_order.halves_reference(tiles)
    assert reference > 0
    half = tiles.shape[2] // 2
    rearranged = torch.cat([tiles[..., half:, :], tiles[..., :half, :]], dim=2)  # a copy
    box = (0, 0, 48, 48)
    piece = quality.crop(tiles, box)
    copy_score = novelty_order.novelty(rearranged, tiles, reference=reference)
    piece_score = novelty_order.novelty(piece, tiles, exclude=box, reference=reference)
    assert copy_score < 0.1
    assert piece_score > 0.5


def test_order_keeps_a_lattice_and_not_noise(sample_image: Callable[[str], Path]) -> None:
    import novelty_order

    tiles = texsynth.load(sample_image("tiles.png"))
    shifted = torch.roll(tiles, shifts=(40, 23), dims=(2, 3))  # the same lattice, moved
    noise = torch.rand(tiles.shape, generator=torch.Generator().manual_seed(0))
    assert novelty_order.lattice(tiles)  # rows and columns of tiles: periods of ~85 px
    assert novelty_order.order(shifted, tiles) > 0.8
    assert abs(novelty_order.order(noise, tiles)) < 0.2
    # the lattice broken into 32² pieces put back in random order: rows and columns lost
    pieces = tiles.unfold(2, 32, 32).unfold(3, 32, 32).reshape(1, 3, 64, 32, 32)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    broken = pieces[:, :, order].reshape(1, 3, 8, 8, 32, 32).permute(0, 1, 2, 4, 3, 5)
    assert novelty_order.order(broken.reshape(tiles.shape), tiles) < 0.5
    grass = texsynth.load(sample_image("grass.png"))
    assert not novelty_order.lattice(grass)  # no lattice: no order score
    assert math.isnan(novelty_order.order(noise, grass))
    lags = novelty_order.autocorrelation(tiles)
    assert lags.shape == (2 * novelty_order.MAX_LAG + 1,) * 2
    assert float(lags[novelty_order.MAX_LAG, novelty_order.MAX_LAG]) == pytest.approx(1.0)


def test_sound_novelty_sees_a_replayed_recording(sample_audio: Callable[[str], Path]) -> None:
    import audio_novelty

    wave = texsynth.load(sample_audio("crickets.wav"))[0].mean(0).double().numpy()
    reference = audio_novelty.halves_reference(wave)
    replayed = np.roll(wave, 5000)  # the recording itself, started elsewhere
    noise = np.random.default_rng(0).standard_normal(wave.size) * wave.std()
    half = wave.size // 2
    piece = audio_novelty.novelty(wave[half:], wave, reference=reference, pool=wave[:half])
    assert audio_novelty.novelty(replayed, wave, reference=reference) < 0.2
    assert 0.7 < piece < 1.3
    assert audio_novelty.novelty(noise, wave, reference=reference) > 1.5
