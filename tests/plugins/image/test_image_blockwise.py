"""Blockwise evaluation (:mod:`texsynth.stats.blockwise`): the loss and its gradient computed
block by block equal the whole evaluation for the image extractors (circular random
filters, zero-padded VGG with pooling strides), with content and odd sizes; blocks cover
every position once; what cannot be blocked is refused with a clear error; and
optimisation with blocks runs and records them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import texsynth
from texsynth import FeatureSpec, UsageError
from texsynth.extractor import BlockGeometry
from texsynth.optim.fitting import choose_block, lbfgs_history, plan_memory
from texsynth.stats.blockwise import spans
from texsynth.stats.features import prepare, resolve_domain


def load_rgb(path: Path, size: int) -> torch.Tensor:
    """The image at ``path`` area-downscaled to ``size``², ``(1, 3, size, size)``."""
    return F.interpolate(texsynth.load(path), size=(size, size), mode="area")


def _objective(extractor: str, exemplar: torch.Tensor, content: torch.Tensor | None = None,
               **spec: object) -> texsynth.TextureObjective:
    domain = resolve_domain("image", None)
    feats = prepare(FeatureSpec(extractor=extractor, **spec),  # type: ignore[arg-type]
                    domain, seed=0, stylising=content is not None, device="cpu")
    return feats.objective([exemplar], content=content, style_weight=2.0,
                           content_weight=3.0)


def _evaluate(objective: texsynth.TextureObjective, signal: torch.Tensor,
              block: int | None) -> tuple[dict[str, float], torch.Tensor]:
    objective.set_block(block)
    x = signal.clone().requires_grad_(True)
    terms = objective.terms(x)
    terms["total"].backward()
    assert x.grad is not None
    return {k: float(v.detach()) for k, v in terms.items()}, x.grad


@pytest.mark.parametrize(("extractor", "options", "block"), [
    ("random-multiscale", {"layers": ("k3", "k7", "k15")}, 24),
    ("vgg19-random", {"layers": ("relu1_1", "relu2_1", "relu3_1")}, 16),
    ("vgg19-random", {"layers": ("relu1_1", "relu2_1"),
                      "extractor_options": {"padding": "circular"}}, 16),
])
def test_blocks_equal_the_whole_evaluation(sample_image: Callable[[str], Path],
                                           extractor: str, options: dict[str, object],
                                           block: int) -> None:
    exemplar = load_rgb(sample_image("bricks.png"), 64)
    content = torch.rand(1, 3, 72, 56, generator=torch.Generator().manual_seed(1))
    objective = _objective(extractor, exemplar, content, **options)
    signal = torch.rand(1, 3, 72, 56, generator=torch.Generator().manual_seed(2))
    whole, grad_whole = _evaluate(objective, signal, None)
    blocked, grad_blocked = _evaluate(objective, signal, block)
    assert set(blocked) == set(whole)
    for name, value in whole.items():
        assert blocked[name] == pytest.approx(value, rel=1e-4), name
    scale = float(grad_whole.abs().max())
    assert scale > 0
    assert float((grad_blocked - grad_whole).abs().max()) < 1e-4 * scale


def test_blocks_without_gradient_give_the_loss(sample_image: Callable[[str], Path]) -> None:
    exemplar = load_rgb(sample_image("grass.png"), 48)
    objective = _objective("random-multiscale", exemplar, layers=("k3", "k5"))
    signal = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = float(objective(signal))
        objective.set_block(16)
        blocked = float(objective(signal))
    assert blocked == pytest.approx(whole, rel=1e-5)


@pytest.mark.parametrize("wrap", [True, False])
def test_spans_cover_every_position_once(wrap: bool) -> None:
    geometry = BlockGeometry(halo=8, align=4, strides={"a": 4}, wrap=wrap)
    parts = spans(50, 12, geometry)
    owned = [p for span in parts for p in range(span.start, span.stop)]
    assert owned == list(range(50))
    for span in parts:
        assert span.crop_start <= span.start - (8 if wrap else min(8, span.start))
        if wrap:  # one crop size for all
            assert span.crop_stop - span.crop_start == 12 + 16
        else:
            assert span.crop_start >= 0 and span.crop_stop <= 50


def test_bad_block_settings_are_refused(sample_image: Callable[[str], Path]) -> None:
    exemplar = load_rgb(sample_image("bricks.png"), 48)
    vgg = _objective("vgg19-random", exemplar, layers=("relu1_1", "relu2_1"))
    with pytest.raises(UsageError, match="multiple of 2"):
        vgg.set_block(15)
    sliced = _objective("random-multiscale", exemplar, layers=("k3",), texture_loss="sw")
    assert sliced.block_geometry() is None
    with pytest.raises(UsageError, match="not a plain Gram loss"):
        sliced.set_block(32)
    valid = _objective("random-multiscale", exemplar, layers=("k3",),
                       extractor_options={"padding": "valid"})
    with pytest.raises(UsageError, match="cannot compute blocks"):
        valid.set_block(32)


def test_history_and_block_size_shrink_with_memory() -> None:
    assert lbfgs_history(3 * 256 * 256) == 50
    assert lbfgs_history(3 * 2048 * 2048) == 5
    assert 5 < lbfgs_history(3 * 1024 * 1024) < 50
    geometry = BlockGeometry(halo=80, align=16, strides={"a": 16}, wrap=False)
    small = choose_block(4000.0, geometry, (2048, 2048), budget=1 << 30)
    large = choose_block(1000.0, geometry, (2048, 2048), budget=1 << 30)
    assert small % 16 == 0 and large % 16 == 0
    assert small < large
    assert (small + 160) ** 2 * 4000.0 <= 1 << 30


def test_plan_memory_uses_blocks_for_large_signals(sample_image: Callable[[str], Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    exemplar = load_rgb(sample_image("bricks.png"), 48)
    objective = _objective("random-multiscale", exemplar, layers=("k3", "k5"))
    domain = resolve_domain("image", None)
    whole = plan_memory(objective, domain, (1, 3, 200, 200), torch.device("cpu"))
    assert whole.block is None and objective.block is None
    monkeypatch.setattr("texsynth.optim.fitting.BLOCK_ABOVE", 1 << 20)  # 1 MiB: blocks now
    blocked = plan_memory(objective, domain, (1, 3, 200, 200), torch.device("cpu"))
    assert blocked.block is not None and objective.block == blocked.block
    assert blocked.estimate > 0
    never = plan_memory(objective, domain, (1, 3, 200, 200), torch.device("cpu"), block=0)
    assert never.block is None and objective.block is None


def test_synthesis_in_blocks_lowers_the_loss(sample_image: Callable[[str], Path]) -> None:
    result = texsynth.synthesize(load_rgb(sample_image("gravel.png"), 48), size=(40, 48),
                                 extractor="random-multiscale", layers=["k3", "k5", "k7"],
                                 steps=12, levels=1, block=16, seed=0, progress=False,
                                 domain="image", device="cpu")
    assert result.signal.shape == (1, 3, 40, 48)
    assert result.settings["block"] == 16
    assert result.losses[-1] < 0.5 * result.losses[0]
