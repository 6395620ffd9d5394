from __future__ import annotations

import pytest
import torch

from texsynth import (
    ContentLoss,
    TextureLoss,
    UsageError,
    content_loss,
    gram_matrix,
    texture_loss,
)


def test_gram_matches_hand_computation() -> None:
    # Two channels over a 2x2 grid: F1 = [1, 2, 3, 4], F2 = [0, 1, 0, -1].
    feats = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]]])
    expected = torch.tensor([[[1 + 4 + 9 + 16, 0 + 2 + 0 - 4], [-2.0, 0 + 1 + 0 + 1]]])
    assert torch.equal(gram_matrix(feats, "none"), expected)
    assert torch.allclose(gram_matrix(feats, "hw"), expected / 4)
    assert torch.allclose(gram_matrix(feats, "chw"), expected / 8)


def test_gram_works_for_one_and_three_spatial_dims() -> None:
    torch.manual_seed(0)
    f1 = torch.randn(2, 5, 17)
    g1 = gram_matrix(f1, "none")
    assert g1.shape == (2, 5, 5)
    assert torch.allclose(g1[1], f1[1] @ f1[1].T, atol=1e-5)
    f3 = torch.randn(1, 4, 3, 5, 6)
    assert torch.allclose(gram_matrix(f3, "hw")[0], f3.reshape(4, -1) @ f3.reshape(4, -1).T / 90,
                          atol=1e-5)


def test_gram_is_symmetric_and_position_invariant() -> None:
    torch.manual_seed(1)
    f = torch.randn(1, 6, 8, 8)
    g = gram_matrix(f)
    assert torch.allclose(g, g.transpose(1, 2))
    shuffled = f.reshape(1, 6, -1)[..., torch.randperm(64)].reshape(1, 6, 8, 8)
    assert torch.allclose(gram_matrix(shuffled), g, atol=1e-6)


@pytest.mark.parametrize("normalize", ["hw", "chw", "none"])
def test_gram_gradient_equals_autograd_of_the_plain_product(normalize: str) -> None:
    torch.manual_seed(0)
    feats = torch.randn(2, 5, 6, 7, dtype=torch.double, requires_grad=True)
    weight = torch.randn(2, 5, 5, dtype=torch.double)  # not symmetric on purpose
    (gram_matrix(feats, normalize) * weight).sum().backward()  # type: ignore[arg-type]
    fast = feats.grad.clone()  # type: ignore[union-attr]
    feats.grad = None
    flat = feats.reshape(2, 5, -1)
    scale = {"hw": 1 / 42, "chw": 1 / (5 * 42), "none": 1.0}[normalize]
    (torch.bmm(flat, flat.transpose(1, 2)) * scale * weight).sum().backward()
    torch.testing.assert_close(fast, feats.grad)
    small = torch.randn(1, 3, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: gram_matrix(t, normalize), (small,))  # type: ignore[arg-type]


def test_unknown_normalisation_is_an_error() -> None:
    with pytest.raises(UsageError, match="hw, chw, none"):
        gram_matrix(torch.ones(1, 2, 3), "bogus")  # type: ignore[arg-type]


def test_texture_loss_is_zero_on_exemplar_and_weighted_per_layer() -> None:
    torch.manual_seed(2)
    ex = {"a": torch.randn(1, 3, 8, 8), "b": torch.randn(1, 4, 4, 4)}
    other = {"a": torch.randn(1, 3, 8, 8), "b": torch.randn(1, 4, 4, 4)}
    module = TextureLoss(ex)
    assert module(ex).item() == pytest.approx(0.0, abs=1e-10)
    grams = module.target_grams()
    la = texture_loss(other, {"a": grams["a"]}).item()
    lb = texture_loss(other, {"b": grams["b"]}).item()
    both = texture_loss(other, grams, layer_weights={"a": 2.0, "b": 0.5}).item()
    assert both == pytest.approx(2 * la + 0.5 * lb, rel=1e-5)
    with pytest.raises(UsageError, match="not in use"):
        TextureLoss(ex, layer_weights={"zzz": 1.0})


def test_texture_loss_gradient_reaches_input() -> None:
    torch.manual_seed(3)
    target = TextureLoss({"a": torch.randn(1, 3, 6, 6)})
    x = torch.randn(1, 3, 6, 6, requires_grad=True)
    target({"a": x}).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_content_loss_and_size_mismatch() -> None:
    torch.manual_seed(4)
    c = {"x": torch.randn(1, 2, 4, 4)}
    assert ContentLoss(c)(c).item() == 0.0
    shifted = {"x": c["x"] + 1.0}
    assert content_loss(shifted, c).item() == pytest.approx(1.0)
    with pytest.raises(UsageError, match="content's size"):
        content_loss({"x": torch.randn(1, 2, 5, 5)}, c)


def test_wrap_margins_may_differ_between_axes() -> None:
    from texsynth.extractor import axis_margins
    from texsynth.stats.exemplar_targets import unwrapped, widest_margin

    maps = torch.arange(2 * 12 * 10 * 9, dtype=torch.float32).reshape(1, 2, 12, 10, 9)
    cut = unwrapped(maps, (0, 2, 3))
    assert cut.shape == (1, 2, 12, 6, 3)
    assert torch.equal(cut, maps[:, :, :, 2:8, 3:6])
    assert unwrapped(maps, 2).shape == (1, 2, 8, 6, 5)
    assert unwrapped(maps, (0, 0, 0)) is maps
    assert axis_margins(4, 3) == (4, 4, 4) and widest_margin((1, 5, 2)) == 5
    with pytest.raises(UsageError, match="2 axes for maps of 3"):
        axis_margins((1, 2), 3)
