"""Coarse-to-fine optimisation (:mod:`texsynth.optim.levels`, ``levels=`` of
:func:`texsynth.synthesize`): level plans, resampling, and runs that spend exactly the
steps asked for at each level and end at the output size."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import texsynth
from texsynth import UsageError
from texsynth.optim.levels import auto_levels, level_extents, plan_levels
from texsynth.resample import resample_linear


def test_plan_levels_halves_every_extent_and_splits_steps() -> None:
    plan = plan_levels((256, 192), levels=3, steps=300)
    assert [level.extents for level in plan] == [(64, 48), (128, 96), (256, 192)]
    assert [level.scale for level in plan] == [0.25, 0.5, 1.0]
    assert [level.steps for level in plan] == [100, 100, 300]
    given = plan_levels((100,), levels=2, steps=300, level_steps=[7, 9])
    assert [level.steps for level in given] == [7, 9]
    assert level_extents((5, 7), 0.5) == (2, 4)  # rounded, at least 1


@pytest.mark.parametrize(("settings", "message"), [
    ({"levels": 0}, "levels must be at least 1"),
    ({"levels": 2, "level_steps": [5]}, "level_steps has 1 entries for 2 level"),
    ({"levels": 2, "level_steps": [5, 0]}, "at least 1"),
    ({"levels": 2, "coarse_factor": 0.0}, "coarse steps factor must be positive"),
])
def test_bad_plans_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_levels((64, 64), steps=10, **settings)


def test_auto_levels_keeps_the_coarsest_extent() -> None:
    assert auto_levels((512, 512), [(256, 256)], coarsest=64) == 3
    assert auto_levels((100, 100), [(256, 256)], coarsest=64) == 1
    assert auto_levels((4096,), [(4096,)], coarsest=64, limit=4) == 4


@pytest.mark.parametrize("shape", [(1, 2, 40), (1, 3, 24, 30), (1, 1, 8, 10, 12)])
def test_resample_linear_gives_the_extents_and_keeps_constants(shape: tuple[int, ...]
                                                               ) -> None:
    signal = torch.full(shape, 0.3)
    target = tuple(e * 2 - 1 for e in shape[2:])
    up = resample_linear(signal, target)
    assert up.shape == (*shape[:2], *target)
    assert torch.allclose(up, torch.full_like(up, 0.3))
    down = resample_linear(torch.rand(shape), tuple(max(1, e // 2) for e in shape[2:]))
    assert down.shape[2:] == tuple(max(1, e // 2) for e in shape[2:])


def _run(exemplar: torch.Tensor, **settings: Any) -> texsynth.OptimizationResult:
    options: dict[str, Any] = {"domain": "toy", "size": (96,), "steps": 6, "seed": 0,
                               "progress": False, "device": "cpu"}
    options.update(settings)
    return texsynth.synthesize(exemplar, **options)


@pytest.mark.usefixtures("toy_manager")
def test_coarse_to_fine_runs_every_level_and_ends_at_the_output_size(
        toy_exemplar: torch.Tensor) -> None:
    sizes: list[int] = []
    result = _run(toy_exemplar, levels=2, level_steps=[4, 6],
                  callback=lambda step, loss, signal: sizes.append(signal.shape[-1]))
    assert len(result.losses) == 10
    assert sizes == [48] * 4 + [96] * 6
    assert result.signal.shape == (1, 1, 96)
    assert result.settings["levels"] == 2 and result.settings["level_steps"] == [4, 6]
    single = _run(toy_exemplar)
    assert single.settings["levels"] == 1 and len(single.losses) == 6


@pytest.mark.usefixtures("toy_manager")
def test_coarse_to_fine_starts_the_fine_level_from_the_coarse_result(
        toy_exemplar: torch.Tensor) -> None:
    first: dict[int, torch.Tensor] = {}
    best: dict[str, Any] = {"loss": float("inf"), "signal": None}

    def keep(step: int, loss: float, signal: torch.Tensor) -> None:
        first.setdefault(signal.shape[-1], signal.clone())
        if signal.shape[-1] == 48 and loss < best["loss"]:
            best.update(loss=loss, signal=signal.clone())

    _run(toy_exemplar, levels=2, level_steps=[8, 1], callback=keep)
    domain = texsynth.get_domain("toy")
    coarse = domain.clamp(best["signal"])  # the coarse level's result: its best iterate
    assert torch.allclose(first[96], domain.clamp(domain.resample(coarse, (96,))), atol=1e-6)


@pytest.mark.usefixtures("toy_manager")
def test_too_many_levels_are_refused_before_any_work(toy_exemplar: torch.Tensor) -> None:
    with pytest.raises(UsageError, match="use fewer levels"):
        _run(toy_exemplar, levels=8)
