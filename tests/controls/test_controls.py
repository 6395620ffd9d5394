"""Controls on the toy domain: guides give regions their own exemplar's statistics, blend
weights move the statistics between exemplars, the exemplar scale sets the element size,
and bad controls are refused in one line."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import texsynth
from texsynth import UsageError
from texsynth.controls.regions import guide_masks, guide_palette, pool_masks, region_names
from texsynth.controls.run import split_weight
from texsynth.stats.guided import masked_grams
from texsynth.stats.losses import gram_matrix

pytestmark = pytest.mark.usefixtures("toy_manager")


def _sine(period: float, length: int = 128) -> torch.Tensor:
    t = torch.arange(length, dtype=torch.float32)
    return (0.8 * torch.sin(2 * torch.pi * t / period)).reshape(1, 1, -1)


SLOW, FAST = 32.0, 6.0


def _run(exemplars: Any, **settings: Any) -> texsynth.OptimizationResult:
    options: dict[str, Any] = {"domain": "toy", "size": (128,), "steps": 60, "seed": 0,
                               "progress": False, "device": "cpu", "levels": 1}
    options.update(settings)
    return texsynth.synthesize(exemplars, **options)


def _period(signal: torch.Tensor) -> float:
    """The period (samples) of the strongest non-DC frequency of a ``(1, 1, T)`` signal."""
    x = signal[0, 0] - signal[0, 0].mean()
    power = torch.fft.rfft(x).abs()
    power[0] = 0
    return x.shape[0] / int(power.argmax())


# -- guide maps --------------------------------------------------------------------------
def test_guide_palette_orders_regions_darkest_first_and_drops_specks() -> None:
    guide = torch.zeros(3, 40, 50)
    guide[:, :, 25:] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # red right half
    guide[:, :20, :25] = 1.0  # white top left
    guide[:, 0, 0] = 0.5  # one grey pixel: an anti-aliasing speck, not a region
    palette = guide_palette([guide])
    assert region_names(palette) == ("#000000", "#ff0000", "#ffffff")
    masks = guide_masks(guide, palette)
    assert masks.shape == (3, 40, 50)
    torch.testing.assert_close(masks.sum(dim=0), torch.ones(40, 50))
    assert masks[1, :, 25:].min() == 1 and masks[2, 1:20, :25].min() == 1
    assert masks[:, 0, 0].sum() == 1  # the speck joined its nearest region


def test_pool_masks_average_down_and_keep_shares() -> None:
    masks = torch.zeros(2, 64, 64)
    masks[0, :, :16] = 1
    masks[1, :, 16:] = 1
    pooled = pool_masks(masks, (8, 8))
    assert pooled.shape == (2, 8, 8)
    torch.testing.assert_close(pooled.mean(dim=(1, 2)), torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(pooled.sum(dim=0), torch.ones(8, 8))


def test_masked_gram_of_a_whole_mask_is_the_gram_and_ignores_the_outside() -> None:
    maps = torch.randn(1, 5, 12, 10, requires_grad=True)
    whole = torch.ones(1, 1, 12, 10)
    grams, area = masked_grams(maps, whole, "chw")
    torch.testing.assert_close(grams[:, 0], gram_matrix(maps, "chw"))
    assert float(area[0, 0]) == 120
    half = torch.zeros(1, 1, 12, 10)
    half[..., :5] = 1
    grams, _ = masked_grams(maps, half, "chw")
    torch.testing.assert_close(grams[:, 0], gram_matrix(maps[..., :5], "chw"))
    grams.sum().backward()
    assert maps.grad is not None
    assert maps.grad[..., 5:].abs().max() == 0 and maps.grad[..., :5].abs().max() > 0


# -- guided synthesis --------------------------------------------------------------------
def test_each_region_takes_its_own_exemplar_and_not_the_other(toy_texture_loss) -> None:
    slow, fast = _sine(SLOW), _sine(FAST)
    guide = torch.zeros(1, 256)
    guide[:, 128:] = 1.0
    result = _run([slow, fast], guide=guide, size=(256,))
    left, right = result.signal[..., :128], result.signal[..., 128:]
    assert toy_texture_loss(slow, left) < 0.5 * toy_texture_loss(fast, left)
    assert toy_texture_loss(fast, right) < 0.5 * toy_texture_loss(slow, right)
    assert _period(left) > 2 * _period(right)
    assert result.settings["regions"] == ["0", "1"]
    # the guide decides: swap its regions and the halves swap textures
    swapped = _run([slow, fast], guide=1.0 - guide, size=(256,)).signal
    left = swapped[..., :128]
    assert toy_texture_loss(fast, left) < 0.5 * toy_texture_loss(slow, left)


@pytest.mark.parametrize("loss", ["sw", "gram+0.5*sw"])
def test_guides_work_with_position_free_losses(toy_texture_loss, loss: str) -> None:
    slow, fast = _sine(SLOW), _sine(FAST)
    guide = torch.zeros(1, 256)
    guide[:, 128:] = 1.0
    result = _run([slow, fast], guide=guide, size=(256,), texture_loss=loss)
    left, right = result.signal[..., :128], result.signal[..., 128:]
    assert toy_texture_loss(slow, left) < 0.5 * toy_texture_loss(fast, left)
    assert toy_texture_loss(fast, right) < 0.5 * toy_texture_loss(slow, right)


def test_exemplar_guides_pick_regions_inside_one_exemplar(toy_texture_loss) -> None:
    both = torch.cat([_sine(SLOW)[..., :64], _sine(FAST)[..., :64]], dim=-1)
    labels = torch.zeros(1, 128)
    labels[:, 64:] = 1.0
    guide = torch.zeros(1, 128)
    guide[:, :64] = 1.0  # the fast region first this time
    result = _run(both, guide=guide, exemplar_guides=[labels])
    assert toy_texture_loss(_sine(FAST), result.signal[..., :64]) < \
        0.5 * toy_texture_loss(_sine(SLOW), result.signal[..., :64])


def test_a_guide_survives_coarse_to_fine(toy_texture_loss) -> None:
    guide = torch.zeros(1, 128)
    guide[:, 64:] = 1.0
    result = _run([_sine(SLOW), _sine(FAST)], guide=guide, levels=2, level_steps=[20, 40])
    right = result.signal[..., 64:]
    assert toy_texture_loss(_sine(FAST), right) < 0.5 * toy_texture_loss(_sine(SLOW), right)


@pytest.mark.parametrize(("count", "settings", "message"), [
    (3, {}, "the guide has 2 regions (0, 1) for 3 exemplar(s)"),
    (2, {"value_weight": 1.0}, "a guide cannot be combined with the value term"),
    (2, {"exemplar_weights": [1, 1]}, "a guide cannot be combined with blend weights"),
    (2, {"exemplar_guides": [torch.zeros(1, 128)]}, "1 exemplar guides for 2 exemplars"),
    (2, {"guide": torch.zeros(2, 3, 128)}, "a guide tensor must be (V, *spatial) with 1"),
])
def test_bad_guides_are_refused_in_one_line(count: int, settings: dict[str, Any],
                                            message: str) -> None:
    guide = torch.zeros(1, 128)
    guide[:, 64:] = 1.0
    settings = {"guide": guide, **settings}
    with pytest.raises(UsageError) as info:
        _run([_sine(SLOW), _sine(FAST), _sine(12)][:count], steps=1, **settings)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_region_no_exemplar_has_is_refused() -> None:
    guide = torch.zeros(1, 128)
    guide[:, 64:] = 1.0
    labels = torch.zeros(1, 128)  # the exemplar has region 0 only
    with pytest.raises(UsageError, match="region 1 of the guide is in no exemplar"):
        _run(_sine(SLOW), guide=guide, exemplar_guides=[labels], steps=1)


# -- blends ------------------------------------------------------------------------------
def test_blend_weights_move_the_statistics_from_one_exemplar_to_the_other(toy_texture_loss) -> None:
    slow, fast = _sine(SLOW), _sine(FAST)
    outputs = [_run([slow, fast], exemplar_weights=[w, 1 - w]).signal
               for w in (1.0, 0.6, 0.3, 0.0)]
    to_slow = [toy_texture_loss(slow, x) for x in outputs]
    to_fast = [toy_texture_loss(fast, x) for x in outputs]
    assert to_slow == sorted(to_slow), to_slow  # further from the slow sine as w falls
    assert to_fast == sorted(to_fast, reverse=True), to_fast
    assert to_slow[-1] > 4 * to_slow[0] and to_fast[0] > 4 * to_fast[-1]


def test_blend_weights_are_recorded_normalised() -> None:
    result = _run([_sine(SLOW), _sine(FAST)], exemplar_weights=[3, 1], steps=2)
    assert result.settings["exemplar_weights"] == [0.75, 0.25]


@pytest.mark.parametrize(("weights", "message"), [
    ([1.0], "1 blend weights for 2 exemplars"),
    ([1.0, -1.0], "blend weights must be non-negative numbers"),
    ([0.0, 0.0], "not all zero"),
])
def test_bad_blend_weights_are_refused(weights: list[float], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _run([_sine(SLOW), _sine(FAST)], exemplar_weights=weights, steps=1)


def test_split_weight_reads_file_weight_pairs(tmp_path: Any) -> None:
    assert split_weight("a.png:0.7") == ("a.png", 0.7)
    assert split_weight("a.png") == ("a.png", None)
    assert split_weight("C:/tex/a.png") == ("C:/tex/a.png", None)
    odd = tmp_path / "b.png:2"
    odd.write_text("")
    assert split_weight(str(odd)) == (str(odd), None)  # an existing file wins
    with pytest.raises(UsageError, match="blend weight '-1' must be a non-negative"):
        split_weight("a.png:-1")


# -- exemplar scale ----------------------------------------------------------------------
def test_exemplar_scale_sets_the_element_size(toy_texture_loss) -> None:
    exemplar = _sine(16.0, 256)
    outputs = {s: _run(exemplar, exemplar_scale=s, size=(256,)).signal
               for s in (0.5, 1.0, 2.0)}
    periods = [_period(outputs[s]) for s in (0.5, 1.0, 2.0)]
    assert periods == sorted(periods) and periods[2] > 2 * periods[0], periods
    for scale, out in outputs.items():  # nearest to the sine of the scaled period
        losses = {p: toy_texture_loss(_sine(p, 256), out) for p in (8.0, 16.0, 32.0)}
        assert min(losses, key=losses.__getitem__) == 16.0 * scale, (scale, losses)


@pytest.mark.parametrize(("scale", "message"), [
    (0.0, "the exemplar scale must be a positive number, got 0"),
    (float("nan"), "the exemplar scale must be a positive number"),
])
def test_bad_exemplar_scales_are_refused(scale: float, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _run(_sine(SLOW), exemplar_scale=scale, steps=1)


def test_a_scale_below_one_synthesises_a_larger_canvas() -> None:
    result = _run(_sine(SLOW), exemplar_scale=0.5, steps=2)
    assert result.signal.shape == (1, 1, 128)
    assert result.settings["canvas"] == "256" and result.settings["size"] == "128"
    with pytest.raises(UsageError, match="starts from noise; drop --init"):
        _run(_sine(SLOW), exemplar_scale=0.5, steps=1, init=_sine(SLOW))


def test_a_style_rescaled_below_the_minimum_is_refused() -> None:
    with pytest.raises(UsageError, match=r"exemplar scale 0\.01 makes an exemplar"):
        texsynth.stylize(_sine(SLOW), _sine(FAST), domain="toy", steps=1, progress=False,
                         exemplar_scale=0.01)
