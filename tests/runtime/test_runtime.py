from __future__ import annotations

import pytest
import torch

from texsynth import UsageError, resolve_device, seed_everything


def test_auto_device_is_available() -> None:
    device = resolve_device("auto")
    assert device.type in {"cpu", "cuda", "mps"}
    torch.zeros(1, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="CUDA is not available"):
        resolve_device("cuda")


def test_unknown_device() -> None:
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("toaster")


def test_seed_everything_repeats_and_returns_seed() -> None:
    assert seed_everything(123) == 123
    a = torch.rand(3)
    seed_everything(123)
    assert torch.equal(a, torch.rand(3))
    drawn = seed_everything(None)
    assert 0 <= drawn < 2**31
