"""Counter-based noise (:mod:`texsynth.feedforward.noise`): a reference hash, windows, kinds."""

from __future__ import annotations

import math

import pytest
import torch

from texsynth import UsageError
from texsynth.feedforward.noise import NOISE_KINDS, counter_noise, noise_lane

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64_finaliser(value: int) -> int:
    """splitmix64's finaliser, written out independently of the module."""
    z = value & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def reference_hash(key: int, sample: int, scale: int, channel: int, counter: int) -> int:
    """The 64-bit hash of one position: lane seed plus ``counter + 1`` golden steps."""
    lane = noise_lane(key, sample, scale, channel)
    return splitmix64_finaliser((lane + (counter + 1) * GOLDEN) & MASK64)


def test_counter_noise_matches_a_python_splitmix64() -> None:
    key = 0x1234_5678_9ABC_DEF0
    rows, cols = torch.arange(2), torch.arange(3)
    noise = counter_noise(key, [1, 4], 2, 2, [rows, cols], "uniform")
    assert noise.shape == (2, 2, 2, 3)
    assert noise.dtype == torch.float32
    for i, sample in enumerate((1, 4)):
        for channel in range(2):
            for y in range(2):
                for x in range(3):
                    z = reference_hash(key, sample, 2, channel, (y << 32) | x)
                    assert float(noise[i, channel, y, x]) == (z >> 40) / 2**24


def test_normal_noise_is_box_muller_on_the_two_halves() -> None:
    key = 99
    noise = counter_noise(key, [0], 0, 1, [torch.arange(5)], "normal")
    assert noise.shape == (1, 1, 5)
    for t in range(5):
        z = reference_hash(key, 0, 0, 0, t)
        radius = math.sqrt(-2.0 * math.log(((z >> 40) + 1) / 2**24))
        angle = 2.0 * math.pi * (z & 0xFFFFFF) / 2**24
        assert float(noise[0, 0, t]) == pytest.approx(radius * math.cos(angle), abs=1e-5)


def test_noise_lane_separates_samples_scales_and_channels() -> None:
    lanes = {noise_lane(7, s, k, c) for s in range(3) for k in range(3) for c in range(3)}
    assert len(lanes) == 27
    assert all(0 <= lane < 2**64 for lane in lanes)
    assert noise_lane(7, 0, 0, 0) != noise_lane(8, 0, 0, 0)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_a_window_equals_the_same_positions_of_the_whole_noise(kind: str) -> None:
    key = 0xDEAD_BEEF_0123_4567
    whole = counter_noise(key, range(3), 1, 2, [torch.arange(11), torch.arange(13)], kind)
    rows, cols = torch.tensor([9, 10, 0, 1]), torch.arange(4, 9)  # wrapped rows
    window = counter_noise(key, [2, 0], 1, 2, [rows, cols], kind)
    assert torch.equal(window, whole[[2, 0]][:, :, rows][:, :, :, cols])
    line = counter_noise(key, range(2), 0, 3, [torch.arange(50)], kind)
    assert torch.equal(counter_noise(key, [1], 0, 3, [torch.arange(20, 35)], kind),
                       line[1:, :, 20:35])


def test_bad_kinds_and_axes_are_usage_errors() -> None:
    coords = [torch.arange(4)]
    with pytest.raises(UsageError, match="kind must be one of uniform, normal"):
        counter_noise(0, [0], 0, 1, coords, "gauss")
    with pytest.raises(UsageError, match="1 to 3 axes, got 4"):
        counter_noise(0, [0], 0, 1, coords * 4, "uniform")
