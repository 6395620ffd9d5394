"""Controls on real pictures: colour preservation keeps the content's chrominance, a
doodle gives each region its exemplar's colours, blends and scale are recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import texsynth
from texsynth import UsageError
from texsynth_image.color import match_color, preserve_color, rgb_to_yiq, yiq_to_rgb


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _small(path: Path, size: int = 48) -> torch.Tensor:
    return F.interpolate(texsynth.load(path), size=(size, size), mode="area")


@pytest.fixture
def bricks(sample_image) -> torch.Tensor:
    return _small(sample_image("bricks.png"))


@pytest.fixture
def grass(sample_image) -> torch.Tensor:
    return _small(sample_image("grass.png"))


FAST = {"steps": 8, "seed": 0, "progress": False, "levels": 1,
        "extractor_options": {"filters": 8}}


def _chroma(signal: torch.Tensor) -> torch.Tensor:
    return rgb_to_yiq(signal)[:, 1:]


def test_yiq_round_trips(bricks: torch.Tensor) -> None:
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(bricks)), bricks, atol=1e-5, rtol=0)


def test_luminance_preservation_keeps_the_content_chrominance(bricks, grass) -> None:
    settings = {**FAST, "steps": 20}
    kept = texsynth.stylize(grass, bricks, domain="image", preserve_color="luminance",
                            **settings)
    plain = texsynth.stylize(grass, bricks, domain="image", **settings)
    inside = (kept.signal > 0.01).all(dim=1) & (kept.signal < 0.99).all(dim=1)  # unclamped
    error = (_chroma(kept.signal) - _chroma(grass)).abs().amax(dim=1)[inside]
    assert inside.float().mean() > 0.9
    assert float(error.max()) < 1e-4
    # without it the style's colours come in (so the check above can fail)
    assert float((_chroma(plain.signal) - _chroma(grass)).abs().mean()) > 0.005
    # and the luminance was stylised: the output is not the content
    assert float((rgb_to_yiq(kept.signal)[:, 0] - rgb_to_yiq(grass)[:, 0]).abs().mean()) \
        > 0.01
    assert kept.settings["preserve_color"] == "luminance"


def test_histogram_matching_gives_the_style_the_content_colour_moments(bricks, grass) -> None:
    matched = match_color(bricks, grass)

    def moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x[0].reshape(3, -1).double()
        return flat.mean(dim=1), torch.cov(flat, correction=0)

    mean, cov = moments(matched)
    want_mean, want_cov = moments(grass)
    torch.testing.assert_close(mean, want_mean, atol=0.01, rtol=0)
    torch.testing.assert_close(cov, want_cov, atol=0.002, rtol=0)
    assert float((moments(bricks)[0] - want_mean).abs().max()) > 0.05  # it did move
    kept = preserve_color("histogram", grass, [bricks])
    assert kept.content is grass and kept.finish(grass) is grass
    torch.testing.assert_close(kept.styles[0], matched)


def test_histogram_preservation_brings_the_output_to_the_content_colours(bricks, grass):
    kept = texsynth.stylize(grass, bricks, domain="image", preserve_color="histogram",
                            **FAST).signal
    plain = texsynth.stylize(grass, bricks, domain="image", **FAST).signal
    target = grass.mean(dim=(2, 3))
    assert float((kept.mean(dim=(2, 3)) - target).abs().max()) < \
        0.5 * float((plain.mean(dim=(2, 3)) - target).abs().max())


def test_an_unknown_colour_mode_lists_the_modes(bricks, grass) -> None:
    with pytest.raises(UsageError, match=r"no colour preservation 'lab' \(modes: histogram, "
                                         r"luminance\)"):
        texsynth.stylize(grass, bricks, domain="image", preserve_color="lab", **FAST)


def _doodle(path: Path, size: tuple[int, int], split: int) -> Path:
    """A two-colour doodle (dark blue left of ``split``, yellow right), drawn with an
    anti-aliased edge of in-between colours."""
    width, height = size
    image = Image.new("RGB", (width, height), (20, 30, 120))
    for x in range(split, width):
        for y in range(height):
            image.putpixel((x, y), (240, 220, 40))
    for y in range(height):
        image.putpixel((split, y), (130, 125, 80))  # the anti-aliased seam
    image.save(path)
    return path


def test_a_doodle_gives_each_region_its_exemplar(bricks, grass, tmp_path) -> None:
    guide = _doodle(tmp_path / "doodle.png", (64, 32), 32)
    result = texsynth.synthesize([bricks, grass], domain="image", size=(32, 64), guide=guide,
                                 **{**FAST, "steps": 30})
    assert result.settings["regions"] == ["#141e78", "#f0dc28"]
    left, right = result.signal[..., 4:28], result.signal[..., 36:60]
    green = lambda x: float(x[:, 1].mean() - x[:, 0].mean())  # noqa: E731
    assert green(grass) > green(bricks) + 0.05  # grass is greener than the bricks
    assert green(right) > green(left) + 0.5 * (green(grass) - green(bricks))


def test_exemplar_doodles_name_the_same_regions(bricks, grass, tmp_path) -> None:
    both = torch.cat([bricks[..., :24], grass[..., 24:]], dim=-1)  # bricks | grass
    labels = _doodle(tmp_path / "labels.png", (48, 48), 24)
    guide = _doodle(tmp_path / "guide.png", (64, 32), 20)
    result = texsynth.synthesize(both, domain="image", size=(32, 64), guide=guide,
                                 exemplar_guides=[labels], **{**FAST, "steps": 30})
    left, right = result.signal[..., :16], result.signal[..., 28:]
    assert float(right[:, 1].mean() - left[:, 1].mean()) > 0.05


def test_guide_files_are_checked(bricks, grass, tmp_path) -> None:
    with pytest.raises(texsynth.InputError, match=r"missing\.png"):
        texsynth.synthesize([bricks, grass], domain="image", size=(32, 32),
                            guide=tmp_path / "missing.png", **FAST)


def test_exemplar_scale_makes_larger_elements(sample_image) -> None:
    bricks = _small(sample_image("bricks.png"), 64)
    scaled = texsynth.get_domain("image").rescale(bricks, 2.0)
    assert scaled.shape == (1, 3, 128, 128)
    result = texsynth.synthesize(bricks, domain="image", size=(32, 32), exemplar_scale=0.5,
                                 **FAST)
    assert result.settings["exemplar_scale"] == 0.5
