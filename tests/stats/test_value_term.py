"""The value term: a sliced Wasserstein distance between the signal's own value
distributions, which zero-mean filters cannot see (a constant offset, a colour drift)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import texsynth
from texsynth import FeatureSpec, UsageError
from texsynth.stats.features import prepare


def _objective(domain: texsynth.Domain, exemplar: torch.Tensor, weight: float
               ) -> texsynth.TextureObjective:
    features = prepare(FeatureSpec(value_weight=weight), domain, seed=0, device="cpu")
    return features.objective([exemplar])


def test_an_offset_costs_its_square_in_one_channel(toy_domain: texsynth.Domain,
                                                   toy_exemplar: torch.Tensor) -> None:
    objective = _objective(toy_domain, toy_exemplar, 2.0)
    terms = objective.terms(toy_exemplar + 0.1)
    # one channel: the only unit directions are +-1, so SW is the squared offset
    assert terms["value"].item() == pytest.approx(0.01, rel=1e-4)
    plain = _objective(toy_domain, toy_exemplar, 0.0).terms(toy_exemplar + 0.1)
    assert "value" not in plain
    assert terms["texture"].item() == pytest.approx(plain["texture"].item() + 0.02, rel=1e-4)


def test_the_order_of_positions_does_not_count(toy_domain: texsynth.Domain,
                                               toy_exemplar: torch.Tensor) -> None:
    objective = _objective(toy_domain, toy_exemplar, 1.0)
    shuffled = toy_exemplar[..., torch.randperm(toy_exemplar.shape[-1])]
    assert objective.terms(shuffled)["value"].item() == pytest.approx(0.0, abs=1e-10)


def test_it_sees_the_brightness_drift_zero_mean_filters_miss(sample_image: Path) -> None:
    path = sample_image("grass.png")
    domain = texsynth.stats.features.resolve_domain(None, path)
    exemplar = texsynth.load(path)[..., :64, :64]
    objective = _objective(domain, exemplar, 1.0)
    brighter = exemplar + 0.08  # the same offset in every channel: a lighter grey level
    assert objective.value is not None
    directions = objective.value.current_directions()["value"]  # (3, 3), this draw's
    same, moved = objective.terms(exemplar), objective.terms(brighter)
    # every projection moves by 0.08 · Σ_c v_c: SW is the mean of its squares
    expected = (0.08 * directions.sum(dim=1)).pow(2).mean().item()
    assert moved["value"].item() == pytest.approx(expected, rel=1e-3)
    assert same["value"].item() < 1e-8
    texture_change = (moved["texture"] - moved["value"]) - (same["texture"] - same["value"])
    assert moved["value"].item() > 100 * abs(texture_change.item())


def test_gradients_pull_the_mean_towards_the_exemplar(toy_domain: texsynth.Domain,
                                                      toy_exemplar: torch.Tensor) -> None:
    objective = _objective(toy_domain, toy_exemplar, 1.0)
    x = (toy_exemplar + 0.3).requires_grad_(True)
    objective.terms(x)["value"].backward()
    assert x.grad is not None and x.grad.sum().item() > 0  # descending lowers the values


def test_batch_statistics_join_the_samples(toy_domain: texsynth.Domain,
                                           toy_exemplar: torch.Tensor) -> None:
    features = prepare(FeatureSpec(value_weight=1.0, batch_gram=True), toy_domain, seed=0,
                       device="cpu")
    objective = features.objective([toy_exemplar])
    half = toy_exemplar.shape[-1] // 2
    # two samples, each one half of the exemplar: together they are its distribution
    batch = torch.cat([toy_exemplar[..., :half], toy_exemplar[..., half:]], dim=0)
    assert objective.terms(batch)["value"].item() == pytest.approx(0.0, abs=1e-8)


def test_a_negative_weight_is_refused(toy_domain: texsynth.Domain,
                                      toy_exemplar: torch.Tensor) -> None:
    with pytest.raises(UsageError, match="value weight"):
        _objective(toy_domain, toy_exemplar, -1.0)


def test_synthesis_records_the_weight_and_matches_colour_better(sample_image: Path) -> None:
    path = sample_image("bark.png")
    exemplar = texsynth.load(path)
    # from the domain's noise: spot noise already starts with the exemplar's colours
    kwargs = {"size": (32, 32), "steps": 30, "seed": 0, "progress": False,
              "extractor_options": {"filters": 8}, "init": "noise"}
    plain = texsynth.synthesize(path, **kwargs)
    valued = texsynth.synthesize(path, value_weight=10.0, **kwargs)
    assert valued.settings["value_weight"] == 10.0
    assert "value_weight" not in plain.settings
    flat = exemplar.reshape(3, -1)
    probe = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])

    def quantile_gap(out: torch.Tensor) -> float:
        ours = out.reshape(3, -1)
        return float((ours.quantile(probe, dim=1) - flat.quantile(probe, dim=1)).abs().mean())

    assert quantile_gap(valued.signal) < quantile_gap(plain.signal)


def test_training_stores_and_resumes_the_weight(tmp_path: Path, sample_image: Path) -> None:
    path = sample_image("bark.png")
    out = tmp_path / "g.ckpt"
    kwargs = {"size": (32, 32), "batch_size": 1, "seed": 0,
              "generator_options": {"num_scales": 2},
              "extractor_options": {"filters": 4}, "progress": False}
    texsynth.train_generator(path, iterations=2, checkpoint=out, value_weight=0.5, **kwargs)
    meta = texsynth.load_trained(out).metadata
    assert meta["loss"]["value_weight"] == 0.5
    texsynth.train_generator(path, iterations=3, checkpoint=out, resume=True,
                             progress=False)
    assert texsynth.load_trained(out).metadata["loss"]["value_weight"] == 0.5


def test_training_refuses_an_unknown_feature_setting(sample_image: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown feature setting.*colour_weight"):
        texsynth.train_generator(sample_image("bark.png"), iterations=1, progress=False,
                                 colour_weight=1.0)  # type: ignore[call-arg]
