from __future__ import annotations

import pytest
import torch

from texsynth import ResourceError
from texsynth.memory import _saved_bytes, check_fits, estimate_optimization_bytes, format_bytes


def _loss(x: torch.Tensor) -> torch.Tensor:
    weight = torch.ones(4, x.shape[1], 3, 3)
    return torch.nn.functional.conv2d(x, weight, padding=1).relu().pow(2).mean()


def test_saved_bytes_grow_with_the_signal() -> None:
    small = _saved_bytes(_loss, torch.rand(1, 3, 32, 32))
    large = _saved_bytes(_loss, torch.rand(1, 3, 64, 64))
    assert small > 0
    assert 3.0 < large / small < 5.0  # four times the positions, about four times the bytes


def test_estimate_scales_from_the_probe() -> None:
    device = torch.device("cpu")
    at_probe = estimate_optimization_bytes(_loss, (1, 3, 64, 64), probe_extent=64,
                                           device=device)
    bigger = estimate_optimization_bytes(_loss, (1, 3, 256, 256), probe_extent=64,
                                         device=device)
    assert bigger == pytest.approx(16 * at_probe, rel=0.05)


def test_check_fits_refuses_with_the_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    import texsynth.memory as resources

    monkeypatch.setattr(resources, "available_memory", lambda device: 2**30)
    check_fits(2**29, torch.device("cpu"), what="job")
    with pytest.raises(ResourceError, match=r"job needs about 4.0 GiB .* only 1.0 GiB"):
        check_fits(4 * 2**30, torch.device("cpu"), what="job")
    monkeypatch.setenv("TEXSYNTH_MEMORY_CHECK", "0")
    check_fits(4 * 2**30, torch.device("cpu"), what="job")


def test_format_bytes() -> None:
    assert format_bytes(1536 * 2**20) == "1.5 GiB"
    assert format_bytes(3 * 2**20) == "3.0 MiB"
