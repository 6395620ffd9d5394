"""Further statistics (``FeatureSpec.also``, ``--also``): the texture losses of other
extractors added to a run's own, through optimisation, training, checkpoints and resume."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

import texsynth
from texsynth import FeatureSpec, PluginManager, UsageError
from texsynth.cli.commands import main
from texsynth.feedforward.checkpoint import load_checkpoint
from texsynth.feedforward.training import train_generator
from texsynth.stats.features import parse_also, prepare
from texsynth_image import read_metadata

#: patches compared by sliced Wasserstein, plus the toy random filters' Grams
MAIN = {"extractor": "patches", "texture_loss": "sw", "extractor_options": {"scales": "1:2"}}
EXTRA = FeatureSpec(extractor="toy-image-conv", texture_loss="gram")


@pytest.fixture
def domain(toy_image_manager: PluginManager) -> texsynth.Domain:
    return toy_image_manager.get_domain("toy-image")


def _terms(spec: FeatureSpec, domain: texsynth.Domain, exemplar: torch.Tensor,
           signal: torch.Tensor) -> dict[str, torch.Tensor]:
    return prepare(spec, domain, seed=0, device="cpu").objective([exemplar]).terms(signal)


def test_the_texture_term_adds_each_weighted_loss(domain: texsynth.Domain,
                                                  toy_image_exemplar: torch.Tensor) -> None:
    exemplar = toy_image_exemplar
    signal = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    alone = _terms(FeatureSpec(**MAIN), domain, exemplar, signal)
    extra = _terms(EXTRA, domain, exemplar, signal)
    both = _terms(FeatureSpec(**MAIN, also=((EXTRA, 0.5),)), domain, exemplar, signal)
    expected = alone["texture"] + 0.5 * extra["texture"]
    assert both["texture"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert both["also"].item() == pytest.approx(0.5 * extra["texture"].item(), rel=1e-5)
    assert "also" not in alone
    assert extra["texture"].item() > 0.01 * alone["texture"].item()  # it is not negligible


def test_gradients_flow_through_the_further_statistics(domain: texsynth.Domain,
                                                       toy_image_exemplar: torch.Tensor
                                                       ) -> None:
    spec = FeatureSpec(**MAIN, also=((EXTRA, 2.0),))
    objective = prepare(spec, domain, seed=0, device="cpu").objective([toy_image_exemplar])
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    x.requires_grad_(True)
    objective.terms(x)["also"].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_settings_rebuild_the_same_objective(domain: texsynth.Domain,
                                             toy_image_exemplar: torch.Tensor) -> None:
    spec = FeatureSpec(**MAIN, also=((EXTRA, 0.25),))
    features = prepare(spec, domain, seed=3, device="cpu")
    settings = features.settings()
    assert settings["also"][0]["weight"] == 0.25
    assert settings["also"][0]["extractor"]["name"] == "toy-image-conv"
    assert settings["also"][0]["extractor"]["seed"] == 3  # the run's seed
    rebuilt = FeatureSpec.from_settings(settings)
    signal = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    before = features.objective([toy_image_exemplar]).terms(signal)["also"]
    after = prepare(rebuilt, domain, seed=99, device="cpu").objective(
        [toy_image_exemplar]).terms(signal)["also"]
    assert after.item() == pytest.approx(before.item(), rel=1e-6)


def _train(manager: PluginManager, exemplar: torch.Tensor, **kwargs: Any
           ) -> texsynth.feedforward.training.TrainResult:
    options: dict[str, Any] = {
        "domain": "toy-image", "size": (32, 32), "batch_size": 2, "iterations": 4, "seed": 0,
        "generator_options": {"num_scales": 3}, "device": "cpu", "progress": False,
        "manager": manager, "extractor": "toy-image-conv",
        # sliced Wasserstein in the further statistics: random streams to resume
        "also": ((FeatureSpec(**MAIN), 0.5),),
    }
    options.update(kwargs)
    return train_generator(exemplar, **options)


def test_training_stores_and_resumes_the_further_statistics(
        toy_image_manager: PluginManager, toy_image_exemplar: torch.Tensor,
        tmp_path: Path) -> None:
    straight = _train(toy_image_manager, toy_image_exemplar, iterations=8)
    path = tmp_path / "run.ckpt"
    _train(toy_image_manager, toy_image_exemplar, iterations=3, checkpoint=path)
    stored = load_checkpoint(path).settings["also"]
    assert [(e["extractor"]["name"], e["texture_loss"], e["weight"]) for e in stored] == \
        [("patches", "sw", 0.5)]
    resumed = train_generator(toy_image_exemplar, domain="toy-image", iterations=8,
                              checkpoint=path, resume=True, device="cpu", progress=False,
                              manager=toy_image_manager)
    # the same losses: the further statistics came back, their directions where they were
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)
    without = _train(toy_image_manager, toy_image_exemplar, iterations=8, also=())
    assert without.losses[1:] != pytest.approx(straight.losses[1:], rel=1e-3)


def test_resume_refuses_other_further_statistics(toy_image_manager: PluginManager,
                                                 toy_image_exemplar: torch.Tensor,
                                                 tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    _train(toy_image_manager, toy_image_exemplar, iterations=1, checkpoint=path)
    with pytest.raises(UsageError, match=r"also=.*'weight': 0\.5.*given.*'weight': 2\.0"):
        _train(toy_image_manager, toy_image_exemplar, iterations=2, checkpoint=path,
               resume=True, also=((FeatureSpec(**MAIN), 2.0),))


@pytest.mark.parametrize(("text", "expected"), [
    ("random-multiscale", ("random-multiscale", "gram", 1.0)),
    ("patches:sw", ("patches", "sw", 1.0)),
    ("vgg19:gram+0.5*sw:0.25", ("vgg19", "gram+0.5*sw", 0.25)),
])
def test_parse_also(text: str, expected: tuple[str, str, float]) -> None:
    spec, weight = parse_also(text)
    assert (spec.extractor, spec.texture_loss, weight) == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "expected EXTRACTOR[:LOSS[:WEIGHT]]"),
    ("patches::1", "expected EXTRACTOR[:LOSS[:WEIGHT]]"),
    ("patches:sw:1:2", "expected EXTRACTOR[:LOSS[:WEIGHT]]"),
    ("patches:sw:-1", "'-1' must be a non-negative number"),
    ("patches:sw:nan", "'nan' must be a non-negative number"),
])
def test_parse_also_refuses_bad_text(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=re.escape(fragment)):
        parse_also(text)


def test_specs_refuse_nesting_and_negative_weights() -> None:
    inner = FeatureSpec(also=((FeatureSpec(), 1.0),))
    with pytest.raises(UsageError, match="cannot have further statistics"):
        FeatureSpec(also=((inner, 1.0),))
    with pytest.raises(UsageError, match="non-negative"):
        FeatureSpec(also=((FeatureSpec(), -1.0),))
    with pytest.raises(UsageError, match="pair"):
        FeatureSpec(also=(FeatureSpec(),))  # type: ignore[arg-type]


def test_the_command_line_adds_statistics(sample_image: Any, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    exemplar = sample_image("grass.png")
    out = tmp_path / "out.png"
    args = ["synthesize", str(exemplar), "-o", str(out), "--size", "32x32", "--steps", "2",
            "--extractor", "patches", "--loss", "sw", "--seed", "0", "--quiet"]
    assert main([*args, "--also", "random-multiscale:gram:0.5"]) == 0
    settings = read_metadata(out)
    assert settings is not None
    assert [(e["extractor"]["name"], e["weight"]) for e in settings["also"]] == \
        [("random-multiscale", 0.5)]
    assert main([*args, "--also", "random-multiscale:gram:-2", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("texsynth: error: --also 'random-multiscale:gram:-2': the weight "
                       "'-2' must be a non-negative number")
    assert "Traceback" not in "\n".join(err)
