"""The ``autocorr`` texture loss: autocovariance over short lags, relative per layer."""

from __future__ import annotations

import pytest
import torch

import texsynth
from texsynth import UsageError
from texsynth.stats.autocorr import AutocorrelationLoss, autocovariance
from texsynth.stats.losses import TextureLoss


def test_autocovariance_equals_the_hand_sum() -> None:
    torch.manual_seed(0)
    maps = torch.rand(2, 3, 7, 9)
    got = autocovariance(maps, (2, 3))
    assert got.shape == (2, 3, 5, 7)
    centred = maps - maps.mean(dim=(2, 3), keepdim=True)
    for dy in range(-2, 3):
        for dx in range(-3, 4):
            total, count = torch.zeros(2, 3), 0
            for y in range(7):
                for x in range(9):
                    if 0 <= y + dy < 7 and 0 <= x + dx < 9:
                        total += centred[:, :, y, x] * centred[:, :, y + dy, x + dx]
                        count += 1
            torch.testing.assert_close(got[:, :, dy + 2, dx + 3], total / count)


def pulses(period: int | None, length: int = 512, seed: int = 0) -> torch.Tensor:
    """``(1, 1, length)``: a pulse every ``period`` positions, or as many at random."""
    x = torch.zeros(1, 1, length)
    if period is not None:
        x[..., ::period] = 1.0
    else:
        where = torch.randperm(length, generator=torch.Generator().manual_seed(seed))
        x[..., where[: length // 8]] = 1.0
    return x


def test_it_tells_rhythm_from_random_pulses_where_gram_cannot() -> None:
    regular, scattered = pulses(8), pulses(None)
    autocorr = AutocorrelationLoss({"x": regular})
    gram = TextureLoss({"x": regular})
    assert float(autocorr({"x": pulses(8, length=384)})) < 1e-3
    assert float(autocorr({"x": scattered})) > 0.5
    # Same number of pulses per position: the (1×1) Gram is the same for both.
    assert float(gram({"x": scattered})) < 1e-6


def test_optimising_it_brings_back_the_rhythm() -> None:
    target = pulses(8)
    loss = AutocorrelationLoss({"x": target})
    x = torch.rand(1, 1, 256, requires_grad=True)
    optimizer = torch.optim.Adam([x], lr=0.05)
    first = float(loss({"x": x.detach()}))
    for _ in range(200):
        optimizer.zero_grad()
        value = loss({"x": x})
        value.backward()
        optimizer.step()
    assert float(value.detach()) < 0.2 * first


def test_short_outputs_use_the_lags_they_can_hold() -> None:
    loss = AutocorrelationLoss({"x": torch.rand(1, 2, 100)})
    assert loss.lags["x"] == (32,)
    assert torch.isfinite(loss({"x": torch.rand(3, 2, 10)}))
    with pytest.raises(UsageError, match="do not fit"):
        autocovariance(torch.rand(1, 1, 4), (4,))


def test_combined_with_gram_in_a_synthesis(sample_audio) -> None:  # type: ignore[no-untyped-def]
    result = texsynth.synthesize(sample_audio("crickets.wav"), size=(8192,), steps=40,
                                 progress=False, seed=0, texture_loss="gram+autocorr",
                                 extractor_options={"widths": [2, 8], "filters": 16})
    assert result.losses[-1] < 0.5 * result.losses[0]
    assert result.settings["texture_loss"] == "gram+autocorr"
