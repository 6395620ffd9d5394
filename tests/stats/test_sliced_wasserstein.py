"""The sliced Wasserstein loss: hand computations, quantile matching for unequal sizes,
the seeded stream of directions, gradients, combined losses and their names, and short
syntheses that lower it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import texsynth
from texsynth import PluginManager, TextureLoss, UsageError
from texsynth.stats.losses import CombinedLoss
from texsynth.stats.sliced import (
    SlicedWassersteinLoss,
    match_quantiles,
    random_directions,
    sliced_wasserstein,
    sort_last,
)
from texsynth.stats.texture_losses import build_texture_loss, parse_texture_loss

ONE = torch.ones(1, 1)  # the one direction of 1-channel samples


# -- the function -------------------------------------------------------------------------
def test_one_direction_is_the_mean_squared_difference_of_sorted_values() -> None:
    a = torch.tensor([[[3.0, -1.0, 2.0, 0.5]]])  # (1, 1, 4): sorted -1, 0.5, 2, 3
    b = torch.tensor([[[0.0, 4.0, 1.0, -2.0]]])  # sorted -2, 0, 1, 4
    expected = ((1.0**2) + (0.5**2) + (1.0**2) + (1.0**2)) / 4
    assert sliced_wasserstein(a, b, directions=ONE).item() == pytest.approx(expected)
    # a unit direction of the opposite sign reverses both orders: same distance
    assert sliced_wasserstein(a, b, directions=-ONE).item() == pytest.approx(expected)


def test_two_channels_project_on_the_given_direction() -> None:
    feats = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]])  # positions (1, 3) and (2, 0)
    target = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])  # positions (0, 0) and (1, 1)
    v = torch.tensor([[0.6, 0.8]])
    ours = sorted([0.6 * 1 + 0.8 * 3, 0.6 * 2])  # 1.2, 3.0
    theirs = [0.0, 1.4]
    expected = sum((o - t) ** 2 for o, t in zip(ours, theirs, strict=True)) / 2
    assert sliced_wasserstein(feats, target, directions=v).item() == pytest.approx(expected)


def test_zero_for_identical_features_and_positive_otherwise() -> None:
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(1, 6, 5, 7, generator=gen)
    assert sliced_wasserstein(feats, feats, generator=gen).item() == pytest.approx(0, abs=1e-12)
    shuffled = feats.reshape(1, 6, -1)[..., torch.randperm(35, generator=gen)]
    assert sliced_wasserstein(shuffled, feats, generator=gen).item() == pytest.approx(
        0, abs=1e-10)  # a distribution of positions: their order does not count
    other = torch.randn(1, 6, 5, 7, generator=gen)
    assert sliced_wasserstein(other, feats, generator=gen).item() > 1e-3


def test_quantiles_of_unequal_sizes_match_a_hand_computation() -> None:
    # levels (j + 1/2) / M_t, read at (i + 1/2) / M, linear in between, flat beyond
    assert match_quantiles(torch.tensor([[[0.0, 1.0, 2.0, 3.0]]]), 2).tolist() == [[[0.5, 2.5]]]
    assert match_quantiles(torch.tensor([[[0.0, 2.0]]]), 4).tolist() == [[[0.0, 0.5, 1.5, 2.0]]]
    same = torch.tensor([[[1.0, 5.0, 7.0]]])
    assert match_quantiles(same, 3) is same
    # an output of 2 positions against an exemplar of 4: compared with 0.5 and 2.5
    out = torch.tensor([[[2.0, 0.0]]])
    target = torch.tensor([[[3.0, 0.0, 2.0, 1.0]]])
    expected = ((0.0 - 0.5) ** 2 + (2.0 - 2.5) ** 2) / 2
    assert sliced_wasserstein(out, target, directions=ONE).item() == pytest.approx(expected)


def test_several_exemplars_pool_into_one_distribution() -> None:
    gen = torch.Generator().manual_seed(1)
    one, two = torch.randn(1, 3, 4, 4, generator=gen), torch.randn(1, 3, 4, 4, generator=gen)
    feats = torch.randn(1, 3, 6, 6, generator=gen)
    dirs = random_directions(5, 3, generator=gen)
    stacked = sliced_wasserstein(feats, torch.cat([one, two]), directions=dirs)
    joined = sliced_wasserstein(feats, torch.cat([one.flatten(2), two.flatten(2)], dim=2),
                                directions=dirs)
    assert stacked.item() == pytest.approx(joined.item(), rel=1e-6)


@pytest.mark.parametrize("spatial", [(17,), (4, 5)])
def test_each_sample_of_a_batch_is_compared_with_the_target(spatial: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(2)
    target = torch.randn(1, 4, *spatial, generator=gen)
    batch = torch.randn(3, 4, *spatial, generator=gen)
    dirs = random_directions(4, 4, generator=gen)
    each = [sliced_wasserstein(batch[i:i + 1], target, directions=dirs) for i in range(3)]
    assert sliced_wasserstein(batch, target, directions=dirs).item() == pytest.approx(
        sum(e.item() for e in each) / 3, rel=1e-6)


def test_gradients_flow_to_the_features() -> None:
    gen = torch.Generator().manual_seed(3)
    target = torch.randn(2, 3, 9, dtype=torch.double, generator=gen)
    dirs = random_directions(4, 3, generator=gen, dtype=torch.double)
    feats = torch.randn(2, 3, 7, dtype=torch.double, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda f: sliced_wasserstein(f, target, directions=dirs), (feats,))
    module = SlicedWassersteinLoss({"a": torch.randn(1, 3, 6, 6)}, seed=0)
    x = torch.randn(1, 3, 6, 6, requires_grad=True)
    module({"a": x}).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_the_cpu_sort_matches_torch_sort_in_values_and_gradient() -> None:
    gen = torch.Generator().manual_seed(4)
    values = torch.randn(2, 3, 50, generator=gen, requires_grad=True)
    weights = torch.randn(2, 3, 50, generator=gen)
    (sort_last(values) * weights).sum().backward()
    ours = values.grad.clone()  # type: ignore[union-attr]
    values.grad = None
    (torch.sort(values, dim=-1).values * weights).sum().backward()
    assert torch.equal(sort_last(values.detach()), torch.sort(values.detach(), dim=-1).values)
    assert torch.equal(ours, values.grad)  # type: ignore[arg-type]


# -- the module: a seeded stream of directions ----------------------------------------------
def _pair(seed: int, **options: Any) -> tuple[dict[str, torch.Tensor], SlicedWassersteinLoss]:
    gen = torch.Generator().manual_seed(5)
    target = {"a": torch.randn(1, 4, 8, 8, generator=gen),
              "b": torch.randn(1, 2, 30, generator=gen)}
    return target, SlicedWassersteinLoss(target, seed=seed, **options)


def test_directions_are_redrawn_but_reproducible_from_the_seed() -> None:
    _, first = _pair(7, redraw_every=1)
    _, again = _pair(7, redraw_every=1)
    _, other = _pair(8, redraw_every=1)
    feats = {"a": torch.randn(1, 4, 8, 8), "b": torch.randn(1, 2, 30)}
    drawn = [first.current_directions()["a"].clone()]
    values = [first(feats).item()]
    drawn.append(first.current_directions()["a"].clone())
    values.append(first(feats).item())
    assert not torch.equal(drawn[0], drawn[1]) and values[0] != values[1]
    assert [again(feats).item(), again(feats).item()] == values
    assert other(feats).item() != values[0]
    assert drawn[0].shape == (4, 4)  # as many directions as channels
    assert torch.allclose(drawn[0].norm(dim=1), torch.ones(4))


def test_draws_are_kept_for_redraw_every_calls_and_their_count_is_an_option() -> None:
    _, module = _pair(0, redraw_every=3, directions=9)
    seen = []
    for _ in range(7):
        seen.append(module.current_directions()["b"].clone())
        module({"a": torch.zeros(1, 4, 8, 8), "b": torch.zeros(1, 2, 30)})
    assert seen[0].shape == (9, 2)
    assert torch.equal(seen[0], seen[2]) and torch.equal(seen[3], seen[5])
    assert not torch.equal(seen[2], seen[3]) and not torch.equal(seen[5], seen[6])
    assert SlicedWassersteinLoss({"a": torch.ones(1, 2, 3)}).redraw_every == 5


def test_exemplar_positions_are_capped_by_a_seeded_choice() -> None:
    target = {"a": torch.randn(2, 3, 10, 10)}
    kept = SlicedWassersteinLoss(target, max_samples=64, seed=1).targets()["a"]
    assert kept.shape == (3, 64)
    assert torch.equal(kept, SlicedWassersteinLoss(target, max_samples=64, seed=1).targets()["a"])
    full = SlicedWassersteinLoss(target).targets()["a"]
    assert full.shape == (3, 200)
    assert any(torch.equal(kept[:, 0], full[:, j]) for j in range(200))


def test_module_is_zero_on_the_exemplar_and_weights_layers() -> None:
    target, module = _pair(0, redraw_every=1)
    assert module(target).item() == pytest.approx(0.0, abs=1e-10)
    _, a_only = _pair(3, redraw_every=1)
    weighted = SlicedWassersteinLoss(target, seed=3, redraw_every=1,
                                     layer_weights={"a": 2.0, "b": 0.0})
    feats = {"a": torch.randn(1, 4, 8, 8), "b": torch.randn(1, 2, 30)}
    dirs = a_only.current_directions()["a"]
    assert weighted(feats).item() == pytest.approx(
        2 * sliced_wasserstein(feats["a"], target["a"], directions=dirs).item(), rel=1e-5)
    with pytest.raises(UsageError, match="not in use"):
        SlicedWassersteinLoss(target, layer_weights={"zzz": 1.0})


# -- combined losses and their names --------------------------------------------------------
def test_the_syntax_of_combined_losses() -> None:
    known = ["gram", "sw", "a+b"]
    assert parse_texture_loss("gram", known) == [("gram", 1.0)]
    assert parse_texture_loss("gram+sw", known) == [("gram", 1.0), ("sw", 1.0)]
    assert parse_texture_loss(" gram + 0.5 * sw ", known) == [("gram", 1.0), ("sw", 0.5)]
    assert parse_texture_loss("2e-3*gram+sw", known) == [("gram", 0.002), ("sw", 1.0)]
    assert parse_texture_loss("a+b", known) == [("a+b", 1.0)]  # a registered name wins


@pytest.mark.parametrize(("text", "message"), [
    ("nope", r"^unknown texture loss 'nope'; available: a\+b, gram, sw "),
    ("gram+nope", r"^unknown texture loss 'nope' in 'gram\+nope'; available: a\+b, gram, sw"),
    ("gram+", r"'' is not NAME or WEIGHT\*NAME"),
    ("x*gram", r"weight 'x' must be a non-negative number"),
    ("-1*sw", r"weight '-1' must be a non-negative number"),
    ("gram+2*gram", r"names 'gram' twice"),
])
def test_bad_loss_names_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_texture_loss(text, ["gram", "sw", "a+b"])
    assert "\n" not in str(info.value)
    assert info.value.parameters == ("texture_loss",)


def test_gram_plus_sw_is_the_sum_of_the_two_losses() -> None:
    gen = torch.Generator().manual_seed(6)
    target, feats = ({"a": torch.randn(1, 5, 8, 8, generator=gen),
                      "b": torch.randn(1, 3, 4, 4, generator=gen)} for _ in range(2))
    both = build_texture_loss("gram+0.5*sw", target, seed=11)
    assert isinstance(both, CombinedLoss) and both.names == ("gram", "sw")
    gram = build_texture_loss("gram", target, seed=11)
    sw = build_texture_loss("sw", target, seed=11)
    assert isinstance(gram, TextureLoss) and isinstance(sw, SlicedWassersteinLoss)
    for _ in range(2):  # the same stream of directions in both
        expected = gram(feats) + 0.5 * sw(feats)
        assert both(feats).item() == pytest.approx(expected.item(), rel=1e-6)
    plain = build_texture_loss("gram+sw", target, seed=11)
    assert plain(feats).item() == pytest.approx(
        (gram(feats) + build_texture_loss("sw", target, seed=11)(feats)).item(), rel=1e-6)


def test_a_single_name_builds_the_registered_module_itself() -> None:
    target = {"a": torch.randn(1, 2, 4, 4)}
    built = build_texture_loss("gram", target, normalize="hw")
    assert type(built) is TextureLoss and built.normalize == "hw"


def test_plugin_loss_factories_get_a_seed_only_if_they_take_one(
        texsynth_isolated_plugins: PluginManager) -> None:
    calls: dict[str, dict[str, Any]] = {}

    def plain(target: Any, *, layer_weights: Any, normalize: Any) -> TextureLoss:
        calls["plain"] = {"normalize": normalize}
        return TextureLoss(target, layer_weights=layer_weights, normalize=normalize)

    def anything(target: Any, **options: Any) -> TextureLoss:
        calls["anything"] = options
        return TextureLoss(target)

    @texsynth.hookimpl
    def texsynth_register_losses(register: Callable[..., None]) -> None:
        register("plain", plain, description="no seed")
        register("anything", anything, description="keyword arguments")

    plugin = type("Plugin", (), {"texsynth_register_losses": staticmethod(
        texsynth_register_losses)})()
    texsynth_isolated_plugins.register(plugin, name="losses")
    target = {"a": torch.randn(1, 2, 4, 4)}
    loss = build_texture_loss("plain+anything", target, seed=4,
                              manager=texsynth_isolated_plugins)
    assert calls["plain"] == {"normalize": "chw"}
    assert calls["anything"] == {"layer_weights": None, "normalize": "chw", "seed": 4}
    assert loss(target).item() == pytest.approx(0.0, abs=1e-10)


def test_the_objective_seeds_sw_from_the_run(toy_manager: PluginManager,
                                             toy_exemplar: torch.Tensor) -> None:
    domain = toy_manager.get_domain("toy")
    net = toy_manager.create_extractor(texsynth.ExtractorConfig("toy-conv"), domain)

    def value(**options: Any) -> float:
        objective = texsynth.TextureObjective(domain, net, [toy_exemplar], texture_layers=("relu",),
                                              texture_loss="sw", **options)
        with torch.no_grad():
            return float(objective(torch.sin(torch.linspace(0, 9, 100)).reshape(1, 1, -1)))

    assert value(seed=1) == value(seed=1) != value(seed=2)
    texsynth.seed_everything(1)
    assert value() == value(seed=1)  # the run's seed when none is given


# -- short syntheses ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bricks(sample_image: Callable[[str], Path]) -> torch.Tensor:
    return texsynth.load(sample_image("bricks.png"))[..., 64:128, 64:128]


@pytest.mark.parametrize("options", [
    {"texture_loss": "sw", "extractor": "random-multiscale",
     "extractor_options": {"sizes": "3:5:7"}},
    {"texture_loss": "sw", "extractor": "patches"},
    {"texture_loss": "gram+sw", "extractor": "patches"},
])
def test_synthesis_with_sw_lowers_the_loss(bricks: torch.Tensor, options: dict[str, Any]) -> None:
    result = texsynth.synthesize(bricks, domain="image", size=(32, 32), steps=3, seed=0,
                                 progress=False, device="cpu", **options)
    assert result.signal.shape == (1, 3, 32, 32)
    assert len(result.losses) == 3
    assert min(result.losses[1:]) < result.losses[0]
    assert result.settings["texture_loss"] == options["texture_loss"]


def test_the_memory_probe_leaves_the_direction_stream_alone() -> None:
    """A run with the memory check equals one without it (the probe evaluates the loss)."""
    from pathlib import Path

    import texsynth

    exemplar = Path(__file__).resolve().parents[2] / "examples" / "data" / "bricks.png"
    runs = [texsynth.synthesize(exemplar, size=(144, 144), steps=7, seed=2, device="cpu",
                                progress=False, texture_loss="sw",
                                extractor_options={"filters": 2}, memory_check=check)
            for check in (True, False)]
    assert torch.equal(runs[0].signal, runs[1].signal)


@pytest.mark.parametrize("calls", [0, 1, 4, 5, 6, 13])
def test_fast_forward_gives_the_stream_of_a_module_called_that_often(calls: int) -> None:
    gen = torch.Generator().manual_seed(3)
    target = {"a": torch.randn(1, 4, 6, 6, generator=gen)}
    feats = {"a": torch.randn(1, 4, 6, 6, generator=gen)}
    called = SlicedWassersteinLoss(target, seed=1)
    for _ in range(calls):
        called(feats)
    skipped = SlicedWassersteinLoss(target, seed=1)
    skipped.fast_forward(calls)
    for _ in range(7):  # the draws to come agree, inside a draw and across its end
        assert skipped(feats).item() == called(feats).item()
    with pytest.raises(UsageError, match="fresh"):
        skipped.fast_forward(2)
