"""Texture synthesis by optimisation (:func:`texsynth.synthesize`) on the toy domain: the
loss falls, the budget of steps is kept, results are valid signals and reproducible, and
bad settings are refused before any work."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import texsynth
from texsynth import UsageError


def _run(exemplar: torch.Tensor, **settings: Any) -> texsynth.OptimizationResult:
    options: dict[str, Any] = {"domain": "toy", "size": (64,), "steps": 5, "seed": 0,
                               "progress": False, "device": "cpu"}
    options.update(settings)
    return texsynth.synthesize(exemplar, **options)


@pytest.mark.usefixtures("toy_manager")
def test_adam_lowers_the_texture_loss(toy_exemplar: torch.Tensor, toy_texture_loss) -> None:
    result = _run(toy_exemplar, steps=30, optimizer="adam", lr=0.05)
    assert result.losses[-1] < 0.5 * result.losses[0], result.losses
    start = texsynth.get_domain("toy").noise((1, 1, 64),
                                             generator=torch.Generator().manual_seed(0))
    assert toy_texture_loss(toy_exemplar, result.signal) < \
        0.5 * toy_texture_loss(toy_exemplar, start)
    assert result.settings["optimizer"] == "adam"


@pytest.mark.usefixtures("toy_manager")
def test_unknown_optimizer_is_a_usage_error_naming_the_choices(
        toy_exemplar: torch.Tensor) -> None:
    with pytest.raises(UsageError, match="sgd") as info:
        _run(toy_exemplar, optimizer="sgd")
    assert "lbfgs" in str(info.value) and "adam" in str(info.value)


@pytest.mark.usefixtures("toy_manager")
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("steps", [1, 7])
def test_steps_is_the_number_of_losses_recorded(toy_exemplar: torch.Tensor, optimizer: str,
                                                steps: int) -> None:
    result = _run(toy_exemplar, steps=steps, optimizer=optimizer)
    assert len(result.losses) == steps
    assert result.settings["steps"] == steps
    assert result.settings["final_loss"] == result.losses[-1]


@pytest.mark.usefixtures("toy_manager")
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("steps", [1, 10])
def test_steps_is_the_number_of_loss_evaluations(toy_exemplar: torch.Tensor, optimizer: str,
                                                 steps: int) -> None:
    """``steps`` counts evaluations, so runs of one ``steps`` cost the same: the callback
    (called after every evaluation) sees exactly ``steps`` of them, with the recorded
    losses."""
    seen: list[tuple[int, float]] = []
    result = _run(toy_exemplar, steps=steps, optimizer=optimizer,
                  callback=lambda step, loss, signal: seen.append((step, loss)))
    assert [step for step, _ in seen] == list(range(1, steps + 1))
    assert [loss for _, loss in seen] == result.losses


@pytest.mark.usefixtures("toy_manager")
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_result_is_within_the_value_range(optimizer: str) -> None:
    # A square wave at the range's limits and a large step push values past them.
    square = torch.sign(torch.sin(torch.linspace(0, 8 * torch.pi, 96))).reshape(1, 1, -1)
    result = _run(square, steps=10, optimizer=optimizer, lr=2.0)
    low, high = texsynth.get_domain("toy").value_range
    assert result.signal.shape == (1, 1, 64)
    assert torch.isfinite(result.signal).all()
    assert result.signal.min() >= low and result.signal.max() <= high


@pytest.mark.usefixtures("toy_manager")
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_the_same_seed_gives_the_same_result(toy_exemplar: torch.Tensor,
                                             optimizer: str) -> None:
    first = _run(toy_exemplar, seed=3, optimizer=optimizer)
    again = _run(toy_exemplar, seed=3, optimizer=optimizer)
    other = _run(toy_exemplar, seed=4, optimizer=optimizer)
    assert first.seed == again.seed == 3
    assert torch.equal(first.signal, again.signal)
    assert first.losses == again.losses
    assert not torch.equal(first.signal, other.signal), "the seed must matter"


@pytest.mark.usefixtures("toy_manager")
def test_init_of_the_wrong_size_is_refused(toy_exemplar: torch.Tensor) -> None:
    with pytest.raises(UsageError, match="init signal size 50 differs from the output size 64"):
        _run(toy_exemplar, init=torch.zeros(1, 1, 50))
    with pytest.raises(UsageError, match="init signal has 2 channels, expected 1"):
        _run(toy_exemplar, init=torch.zeros(1, 2, 64))


@pytest.mark.usefixtures("toy_manager")
def test_init_of_the_right_size_is_where_optimisation_starts(
        toy_exemplar: torch.Tensor) -> None:
    start = torch.full((1, 1, 64), 0.25)
    first: list[torch.Tensor] = []
    _run(toy_exemplar, steps=1, optimizer="adam", init=start,
         callback=lambda step, loss, signal: first.append(signal.clone()))
    assert torch.equal(first[0], start)
