"""Spot noise: a Gaussian texture with the exemplar's mean and power spectrum, any size."""

from __future__ import annotations

import math

import pytest
import torch

import texsynth
from texsynth import PluginManager
from texsynth.optim.spot import periodic_component, spot_noise


def _stripes(size: int, period: int) -> torch.Tensor:
    """``(1, 3, size, size)`` vertical stripes of ``period`` pixels, values in [0.2, 0.8]."""
    x = torch.arange(size, dtype=torch.float32)
    wave = 0.5 + 0.3 * torch.cos(2 * math.pi * x / period)
    return wave.view(1, 1, 1, size).expand(1, 3, size, size).clone()


def _autocorrelation(signal: torch.Tensor, lag: int, axis: int) -> float:
    """Circular autocorrelation of the mean-free luminance at ``lag`` along ``axis``."""
    luma = signal.mean(dim=1)
    luma = luma - luma.mean()
    shifted = torch.roll(luma, lag, dims=axis)
    return float((luma * shifted).sum() / (luma * luma).sum())


def _laplacian(signal: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Discrete Laplacian over the 4 neighbours: all of them on the torus, or only those
    inside the picture."""
    out = torch.zeros_like(signal)
    for axis in (2, 3):
        for shift in (1, -1):
            diff = torch.roll(signal, shift, dims=axis) - signal
            if not periodic:
                edge = 0 if shift == 1 else signal.shape[axis] - 1
                diff.select(axis, edge).zero_()
            out += diff
    return out


def test_periodic_component_is_moisans_and_keeps_the_mean() -> None:
    picture = torch.rand(1, 3, 12, 20, dtype=torch.float64)
    periodic = periodic_component(picture)
    # Moisan (2011): the periodic component's periodic Laplacian is the picture's own
    assert torch.allclose(_laplacian(periodic, True), _laplacian(picture, False), atol=1e-9)
    assert torch.allclose(periodic.mean(dim=(2, 3)), picture.mean(dim=(2, 3)), atol=1e-9)
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 1, 16, 32).contiguous()
    periodic = periodic_component(ramp)
    assert periodic.shape == ramp.shape
    assert abs(float(periodic.mean() - ramp.mean())) < 1e-5
    # the ramp's wrap-around jump of 1 is all but gone from the periodic component
    jump = (periodic[..., 0] - periodic[..., -1]).abs().max()
    assert jump < 0.05


def test_spot_noise_has_the_exemplar_spectrum_at_any_size() -> None:
    stripes = _stripes(48, 8)
    gen = torch.Generator().manual_seed(0)
    for extents in ((64, 64), (40, 96), (24, 24)):
        spot = spot_noise(stripes, extents, generator=gen)
        assert spot.shape == (1, 3, *extents)
        assert abs(float(spot.mean() - stripes.mean())) < 0.05
        # the period survives (and nothing runs along the stripes' direction)
        assert _autocorrelation(spot, 8, axis=2) > 0.8
        assert _autocorrelation(spot, 4, axis=2) < -0.8
        assert _autocorrelation(spot, 5, axis=1) > 0.9


def test_spot_noise_is_new_for_each_seed_and_repeats_for_one() -> None:
    exemplar = torch.rand(1, 3, 32, 32)
    one = spot_noise(exemplar, (32, 32), generator=torch.Generator().manual_seed(1))
    again = spot_noise(exemplar, (32, 32), generator=torch.Generator().manual_seed(1))
    other = spot_noise(exemplar, (32, 32), generator=torch.Generator().manual_seed(2))
    assert torch.equal(one, again)
    assert (one - other).abs().mean() > 0.05


@pytest.mark.parametrize("shape", [(1, 1, 100), (1, 2, 6, 10, 12)])
def test_spot_noise_in_other_dimensions(shape: tuple[int, ...]) -> None:
    exemplar = torch.rand(shape)
    extents = tuple(2 * s for s in shape[2:])
    spot = spot_noise(exemplar, extents, generator=torch.Generator().manual_seed(0))
    assert spot.shape == (1, shape[1], *extents)
    assert torch.isfinite(spot).all()


def test_synthesis_starts_from_the_domains_choice(toy_image_manager: PluginManager,
                                                  toy_image_exemplar: torch.Tensor) -> None:
    common = {"domain": "toy-image", "size": (24, 24), "steps": 1, "seed": 0,
              "progress": False, "manager": toy_image_manager}
    auto = texsynth.synthesize(toy_image_exemplar, **common)
    assert auto.settings["init"] == "noise"  # the toy domain names no start
    spot = texsynth.synthesize(toy_image_exemplar, init="spot", **common)
    assert spot.settings["init"] == "spot"
    assert not torch.equal(auto.signal, spot.signal)


def test_pictures_start_from_spot_noise(texsynth_plugins: PluginManager) -> None:
    stripes = _stripes(32, 8)
    result = texsynth.synthesize(stripes, domain="image", size=(32, 32), steps=1, seed=0,
                                 extractor_options={"sizes": [3], "filters": 4},
                                 progress=False, manager=texsynth_plugins, device="cpu")
    assert result.settings["init"] == "spot"
    assert _autocorrelation(result.signal, 8, axis=2) > 0.8
