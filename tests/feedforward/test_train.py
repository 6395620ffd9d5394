"""Training feed-forward generators: the loss falls, checkpoints resume, interrupts save.

Most tests train on the shared toy image domain (``toy_image_manager`` in conftest.py:
domains ``toy-image``, ``toy-image-preferring`` and ``toy-image-logit`` with the random-conv
extractor ``toy-image-conv``), so they do not depend on the image plugin; one test uses
the real image plugin's ``random-multiscale`` extractor.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import texsynth
from texsynth import ExtractorConfig, PluginManager, UsageError
from texsynth.feedforward.checkpoint import load_checkpoint
from texsynth.feedforward.sampling import generate as sample
from texsynth.feedforward.training import train_generator


@pytest.fixture
def toy(toy_image_manager: PluginManager) -> PluginManager:
    return toy_image_manager


@pytest.fixture
def grass(toy_image_exemplar: torch.Tensor) -> torch.Tensor:
    """The 64² grass exemplar (a copy: tests may not change the sample file)."""
    return toy_image_exemplar.clone()


def tiny(manager: PluginManager, exemplar: torch.Tensor, **kwargs: Any
         ) -> texsynth.feedforward.training.TrainResult:
    """A 3-scale generator on 32² crops, batch 2, on the CPU."""
    options: dict[str, Any] = {
        "domain": "toy-image", "size": (32, 32), "batch_size": 2, "iterations": 4, "seed": 0,
        "generator_options": {"num_scales": 3}, "device": "cpu", "progress": False,
        "manager": manager,
    }
    options.update(kwargs)
    return train_generator(exemplar, **options)


def test_loss_falls_on_a_real_exemplar(toy: PluginManager, grass: torch.Tensor) -> None:
    result = tiny(toy, grass, iterations=30)
    assert len(result.losses) == 30
    assert all(np.isfinite(result.losses))
    assert np.mean(result.losses[-5:]) < 0.3 * result.losses[0]
    assert result.step == 30
    assert not result.generator.training
    settings = result.settings
    assert settings["domain"] == "toy-image"
    assert settings["generator"]["options"]["value_range"] == [0.0, 1.0]
    assert settings["extractor"]["name"] == "toy-image-conv"
    assert settings["texture_layers"] == ["relu1", "relu2", "relu3"]
    out = sample(result.generator, (40, 52), seed=1, count=2)
    assert out.shape == (2, 3, 40, 52)


def test_instance_norm_generator_trains(toy: PluginManager, grass: torch.Tensor) -> None:
    result = tiny(toy, grass, iterations=20,
                  generator_options={"num_scales": 3, "norm": "instance"})
    assert np.mean(result.losses[-5:]) < 0.3 * result.losses[0]


def test_real_image_plugin_random_multiscale(texsynth_plugins: PluginManager,
                                             sample_image: Callable[[str], Path]) -> None:
    assert "random-multiscale" in texsynth_plugins.extractors("image")
    exemplar = texsynth_plugins.get_domain("image").load(sample_image("grass.png"))
    exemplar = F.interpolate(exemplar, size=(64, 64), mode="area")
    result = train_generator(
        exemplar, domain="image", extractor="random-multiscale",
        extractor_options={"sizes": [3, 5, 7], "filters": 32}, size=(32, 32), batch_size=2,
        iterations=15, seed=0, generator_options={"num_scales": 3}, device="cpu",
        progress=False, manager=texsynth_plugins)
    assert np.mean(result.losses[-3:]) < 0.5 * result.losses[0]


def test_image_training_defaults_to_the_domains_statistics(
        texsynth_plugins: PluginManager, sample_image: Callable[[str], Path]) -> None:
    exemplar = texsynth_plugins.get_domain("image").load(sample_image("grass.png"))
    exemplar = F.interpolate(exemplar, size=(64, 64), mode="area")
    common: dict[str, Any] = {
        "domain": "image", "size": (56, 56), "batch_size": 2, "iterations": 0, "seed": 0,
        "generator_options": {"num_scales": 3}, "device": "cpu", "progress": False,
        "manager": texsynth_plugins}
    plain = train_generator(exemplar, **common).settings
    assert plain["extractor"]["name"] == "patches"
    assert plain["extractor"]["options"] == {"scales": [1, 2, 4, 8]}
    assert plain["loss"]["texture_loss"] == "sw"
    assert [(a["extractor"]["name"], a["texture_loss"], a["weight"]) for a in plain["also"]] \
        == [("random-multiscale", "gram", 1.0)]
    # crops too small for 7 × 7 patches at 1/8 train on the scales they hold
    small = train_generator(exemplar, **{**common, "size": (32, 32)}).settings
    assert small["extractor"]["options"] == {"scales": [1, 2, 4]}
    # naming any statistic chooses them all: the domain's default extractor, Grams
    named = train_generator(exemplar, texture_loss="gram", **common).settings
    assert named["extractor"]["name"] == "random-multiscale"
    assert named["loss"]["texture_loss"] == "gram" and not named.get("also")
    # stylisation keeps the default extractor (a content loss on pixel values is no use)
    styled = train_generator(exemplar, content=exemplar, **common).settings
    assert styled["extractor"]["name"] == "random-multiscale"


def test_checkpoint_holds_everything_to_resume(toy: PluginManager, grass: torch.Tensor,
                                               tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    result = tiny(toy, grass, iterations=3, checkpoint=path, checkpoint_every=2)
    ckpt = load_checkpoint(path, domain="toy-image")
    assert ckpt.step == 3
    assert ckpt.losses == result.losses
    for key in ("seed", "extractor", "texture_layers", "content_layers", "loss", "generator",
                "training"):
        assert key in ckpt.settings
    assert ckpt.settings["training"]["batch_size"] == 2
    assert ckpt.settings["training"]["lr_decay"] == 0.7
    assert ckpt.optimizer_state is not None
    assert ckpt.optimizer_state["param_groups"][0]["betas"] == (0.9, 0.999)
    assert ckpt.scheduler_state is not None
    assert ckpt.rng_state is not None
    assert {"python", "numpy", "torch", "stream"} <= set(ckpt.rng_state)
    torch.testing.assert_close(sample(path, (32, 32), seed=5),
                               sample(result.generator, (32, 32), seed=5))


def test_resume_continues_the_loss_curve(toy: PluginManager, grass: torch.Tensor,
                                         tmp_path: Path) -> None:
    straight = tiny(toy, grass, iterations=8, lr_step=3, lr_decay=0.5)
    path = tmp_path / "run.ckpt"
    first = tiny(toy, grass, iterations=4, lr_step=3, lr_decay=0.5, checkpoint=path)
    assert first.losses == pytest.approx(straight.losses[:4], rel=1e-6)
    # Resume without repeating the settings: they come from the checkpoint.
    resumed = train_generator(grass, domain="toy-image", iterations=8, checkpoint=path,
                              resume=True, device="cpu", progress=False, manager=toy)
    assert resumed.step == 8
    assert len(resumed.losses) == 8
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)
    for name, value in straight.generator.state_dict().items():
        torch.testing.assert_close(resumed.generator.state_dict()[name], value,
                                   rtol=1e-5, atol=1e-6)
    assert load_checkpoint(path).step == 8
    # A finished run resumes to nothing more to do.
    again = train_generator(grass, domain="toy-image", iterations=8, checkpoint=path, resume=True,
                            device="cpu", progress=False, manager=toy)
    assert again.losses == resumed.losses
    assert again.step == 8


@pytest.mark.parametrize("stop", [5, 7])  # inside a draw of directions, and at its end
def test_resume_continues_random_loss_streams(toy: PluginManager, grass: torch.Tensor,
                                              tmp_path: Path, stop: int) -> None:
    # sliced Wasserstein (on the features and as the value term) renews its directions
    # every 5 evaluations: a resumed run must draw what the uninterrupted one drew
    settings: dict[str, Any] = {"texture_loss": "sw", "value_weight": 0.5}
    straight = tiny(toy, grass, iterations=12, **settings)
    path = tmp_path / "run.ckpt"
    tiny(toy, grass, iterations=stop, checkpoint=path, **settings)
    resumed = train_generator(grass, domain="toy-image", iterations=12, checkpoint=path,
                              resume=True, device="cpu", progress=False, manager=toy)
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)


def test_zero_iterations_writes_the_initial_generator(toy: PluginManager,
                                                      grass: torch.Tensor,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    result = tiny(toy, grass, iterations=0, checkpoint=path)
    assert result.losses == []
    assert load_checkpoint(path).step == 0
    assert load_checkpoint(path).losses == []


def test_resume_refuses_other_settings(toy: PluginManager, grass: torch.Tensor,
                                       tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    tiny(toy, grass, iterations=2, checkpoint=path)
    with pytest.raises(UsageError, match="batch_size=2"):
        tiny(toy, grass, iterations=4, checkpoint=path, resume=True, batch_size=3)
    with pytest.raises(UsageError, match="different exemplar"):
        tiny(toy, grass.flip(-1), iterations=4, checkpoint=path, resume=True)
    # Without resume the file is overwritten by a new run.
    assert tiny(toy, grass, iterations=1, checkpoint=path).step == 1
    assert load_checkpoint(path).step == 1


def test_keyboard_interrupt_saves_then_reraises(toy: PluginManager, grass: torch.Tensor,
                                                tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"

    def interrupt(step: int, loss: float, generator: Any) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny(toy, grass, iterations=10, checkpoint=path, checkpoint_every=2,
             callback=interrupt)
    assert load_checkpoint(path).step == 3


def test_sigint_is_deferred_to_the_end_of_a_step(toy: PluginManager, grass: torch.Tensor,
                                                 tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"

    def send(step: int, loss: float, generator: Any) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        tiny(toy, grass, iterations=10, checkpoint=path, checkpoint_every=0, callback=send)
    assert load_checkpoint(path).step == 2
    assert signal.getsignal(signal.SIGINT) is before


class _Terminated(Exception):
    pass


def test_sigterm_saves_then_reaches_the_previous_handler(
        toy: PluginManager, grass: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    def send(step: int, loss: float, generator: Any) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        with pytest.raises(_Terminated):
            tiny(toy, grass, iterations=10, checkpoint=path, checkpoint_every=0,
                 callback=send)
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, old)
    assert load_checkpoint(path).step == 2


def test_stylisation_trains_on_a_content_folder(
        toy: PluginManager, grass: torch.Tensor, tmp_path: Path,
        sample_image: Callable[[str], Path],
        toy_image_loader: Callable[..., torch.Tensor]) -> None:
    folder = tmp_path / "content"
    folder.mkdir()
    for name in ("bricks", "gravel"):
        Image.open(sample_image(f"{name}.png")).convert("RGB").resize((48, 48)).save(
            folder / f"{name}.png")
    (folder / "notes.txt").write_text("not content")
    result = tiny(toy, grass, content=folder, iterations=2, content_weight=2.0,
                  style_weight=5.0)
    assert len(result.losses) == 2
    assert all(np.isfinite(result.losses))
    assert result.settings["generator"]["name"] == "pyramid-stylize"
    assert result.settings["generator"]["content_channels"] == 3
    assert result.settings["content_layers"] == ["relu2"]
    assert result.settings["loss"]["content_weight"] == 2.0
    assert len(result.settings["training"]["content"]) == 2
    content = toy_image_loader(sample_image("bricks.png"), 40)
    out = sample(result.generator, seed=0, content=content)
    assert out.shape == (1, 3, 40, 40)


def test_stylisation_rejects_content_smaller_than_the_crops(
        toy: PluginManager, grass: torch.Tensor) -> None:
    with pytest.raises(texsynth.InputError, match="smaller than the training size"):
        tiny(toy, grass, content=torch.rand(2, 3, 20, 20), iterations=1)


def test_domain_defaults_fill_in_what_is_not_given(toy: PluginManager,
                                                   grass: torch.Tensor) -> None:
    result = tiny(toy, grass, domain="toy-image-preferring", size=None, generator_options=None,
                  iterations=1)
    assert result.settings["generator"]["options"]["num_scales"] == 2
    assert result.settings["training"]["size"] == [24, 24]  # the 64² exemplar, cropped
    given = tiny(toy, grass, domain="toy-image-preferring", size=(32, 32), iterations=1,
                 generator_options={"num_scales": 3})
    assert given.settings["generator"]["options"]["num_scales"] == 3
    assert given.settings["training"]["size"] == [32, 32]
    small = grass[..., :20, :20]  # smaller than the preferred crop: used whole
    assert tiny(toy, small, domain="toy-image-preferring", size=None, generator_options=None,
                iterations=0).settings["training"]["size"] == [20, 20]

    synth = texsynth.synthesize(grass, domain="toy-image-preferring", size=(24, 24), seed=0,
                                progress=False, manager=toy)
    assert synth.settings["steps"] == 3
    assert len(synth.losses) <= 3
    styled = texsynth.stylize(grass, grass, domain="toy-image-preferring", steps=1, seed=0,
                              progress=False, manager=toy)
    assert (styled.settings["style_weight"], styled.settings["content_weight"]) == (5.0, 1.0)
    plain = texsynth.stylize(grass, grass, domain="toy-image", steps=1, seed=0, progress=False,
                             manager=toy)
    assert (plain.settings["style_weight"], plain.settings["content_weight"]) == (1000.0, 1.0)


def test_optimisation_in_a_domain_representation(toy: PluginManager,
                                                 grass: torch.Tensor, tmp_path: Path) -> None:
    seen: list[tuple[int, ...]] = []
    result = texsynth.synthesize(grass, domain="toy-image-logit", size=(24, 24), steps=8, seed=0,
                                 progress=False, manager=toy,
                                 callback=lambda step, loss, x: seen.append(tuple(x.shape)))
    assert result.signal.shape == (1, 3, 24, 24)
    assert float(result.signal.min()) > 0.0 and float(result.signal.max()) < 1.0
    assert result.losses[-1] < result.losses[0]
    assert result.settings["representation"] == {"name": "logit", "squash": "sigmoid"}
    assert seen and seen[0] == (1, 3, 24, 24)
    # Stylisation starts from the content's variable.
    styled = texsynth.stylize(grass, grass, domain="toy-image-logit", steps=2, seed=0,
                              progress=False, manager=toy)
    assert styled.signal.shape == grass.shape


def test_batch_gram_matches_the_mean_gram_of_the_batch(toy: PluginManager,
                                                       grass: torch.Tensor) -> None:
    from texsynth.stats.losses import gram_matrix
    from texsynth.stats.objective import TextureObjective

    domain = toy.get_domain("toy-image")
    net = toy.create_extractor(ExtractorConfig("toy-image-conv", seed=0), domain)
    batch = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(0)) \
        * torch.tensor([0.4, 1.0, 0.7]).view(3, 1, 1, 1)  # samples with different Grams
    per_sample = TextureObjective(domain, net, [grass], texture_layers=("relu1", "relu2"),
                                  manager=toy)
    pooled = TextureObjective(domain, net, [grass], texture_layers=("relu1", "relu2"),
                              batch_gram=True, manager=toy)
    feats = net(domain.to_features_input(batch), layers=("relu1", "relu2"))
    targets = per_sample.texture.target_grams()
    expected = sum(float((gram_matrix(feats[k]).mean(0) - targets[k][0]).pow(2).sum())
                   for k in ("relu1", "relu2"))
    assert float(pooled(batch)) == pytest.approx(expected, rel=1e-4)
    # The per-sample loss adds the spread of the samples' Grams: it is larger.
    spread = sum(float((gram_matrix(feats[k]) - gram_matrix(feats[k]).mean(0)).pow(2)
                       .sum((1, 2)).mean()) for k in ("relu1", "relu2"))
    assert float(per_sample(batch)) == pytest.approx(expected + spread, rel=1e-4)
    assert spread > 0.05 * expected
    # One sample: the same either way.
    assert float(pooled(batch[:1])) == pytest.approx(float(per_sample(batch[:1])), rel=1e-5)


def test_batch_gram_training_is_recorded_and_resumed(toy: PluginManager, grass: torch.Tensor,
                                                     tmp_path: Path) -> None:
    ckpt = tmp_path / "pooled.ckpt"
    first = tiny(toy, grass, batch_gram=True, iterations=2, checkpoint=ckpt)
    assert first.settings["loss"]["batch_gram"] is True
    assert first.losses[-1] < first.losses[0]
    resumed = tiny(toy, grass, iterations=3, checkpoint=ckpt, resume=True)
    assert resumed.step == 3 and resumed.settings["loss"]["batch_gram"] is True
    with pytest.raises(UsageError, match="batch_gram"):
        tiny(toy, grass, batch_gram=False, iterations=4, checkpoint=ckpt, resume=True)


def test_recalibration_sets_batch_norm_statistics_from_fresh_batches(
        toy: PluginManager, grass: torch.Tensor) -> None:
    from texsynth.feedforward.batch_norm import recalibrate_batch_norm

    gen = tiny(toy, grass, iterations=2, norm_batches=0).generator
    norm = next(m for m in gen.modules() if isinstance(m, torch.nn.BatchNorm2d))
    norm.running_mean.add_(5.0)  # stale statistics, far from what the weights produce
    inputs: list[torch.Tensor] = []
    hook = norm.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    assert recalibrate_batch_norm(gen, 3, 2, (32, 32), seed=7)
    hook.remove()
    assert not gen.training
    expected = torch.stack([x.mean(dim=(0, 2, 3)) for x in inputs]).mean(dim=0)
    assert len(inputs) == 3
    torch.testing.assert_close(norm.running_mean, expected, rtol=1e-4, atol=1e-6)
    assert norm.momentum == 0.1  # put back


def test_training_ends_with_recalibrated_statistics(toy: PluginManager,
                                                    grass: torch.Tensor,
                                                    tmp_path: Path) -> None:
    from texsynth.feedforward.batch_norm import recalibrate_batch_norm

    plain = tiny(toy, grass, iterations=3, norm_batches=0)
    path = tmp_path / "run.ckpt"
    recalibrated = tiny(toy, grass, iterations=3, norm_batches=4, checkpoint=path)
    assert recalibrated.losses == plain.losses  # training itself is the same
    assert load_checkpoint(path).settings["training"]["norm_batches"] == 4
    recalibrate_batch_norm(plain.generator, 4, 2, (32, 32), seed=1)  # the run's seed + 1
    stored = load_checkpoint(path).generator_state
    for name, value in plain.generator.state_dict().items():
        torch.testing.assert_close(stored[name], value, rtol=1e-5, atol=1e-7, msg=name)
    stats = [n for n in stored if n.endswith("running_mean")]
    assert stats and any(not torch.equal(stored[n], tiny(toy, grass, iterations=3,
                                                         norm_batches=0)
                                         .generator.state_dict()[n]) for n in stats)


def test_negative_norm_batches_are_refused(toy: PluginManager, grass: torch.Tensor) -> None:
    with pytest.raises(UsageError, match="norm_batches must be at least 0"):
        tiny(toy, grass, norm_batches=-1)
