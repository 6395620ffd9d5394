"""End to end on a real exemplar: synthesis with the image plugin's extractors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import texsynth
from texsynth_image import read_metadata


@pytest.fixture(autouse=True)
def _one_thread():
    """Run these optimisations on one thread: with two OpenMP threads on a 2-core machine
    that is busy with anything else, every parallel op waits for a descheduled thread and
    the runs take tens of times longer; one thread keeps them at a few seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def bricks64(sample_image) -> torch.Tensor:
    """The sample bricks exemplar, downscaled to 64 × 64 for speed."""
    signal = texsynth.load(sample_image("bricks.png"))
    return F.interpolate(signal, size=(64, 64), mode="area")


def test_random_multiscale_synthesis_matches_the_exemplar_statistics(bricks64, tmp_path):
    # default kernel sizes (3 … 55 px), fewer filters per size to keep the test fast
    result = texsynth.synthesize(bricks64, domain="image", size=(48, 80), steps=40, seed=0,
                                 extractor_options={"filters": 32}, progress=False)
    assert result.settings["extractor"]["name"] == "random-multiscale"
    assert result.signal.shape == (1, 3, 48, 80)  # a size other than the exemplar's
    assert result.signal.min() >= 0 and result.signal.max() <= 1
    assert len(result.losses) == 40
    assert result.losses[-1] < 0.1 * result.losses[0]
    # the colour comes out right too (brightness is set by the start noise)
    torch.testing.assert_close(result.signal.mean(dim=(2, 3)), bricks64.mean(dim=(2, 3)),
                               atol=0.05, rtol=0)
    path = texsynth.save(result, tmp_path / "bricks.png")
    meta = read_metadata(path)
    assert meta is not None
    assert meta["seed"] == 0
    assert meta["extractor"]["name"] == "random-multiscale"


def test_noise_start_is_near_the_exemplar_colour(bricks64):
    domain = texsynth.get_domain("image")
    start = domain.noise((1, 3, 32, 32), generator=torch.Generator().manual_seed(0),
                         like=bricks64)
    torch.testing.assert_close(start.mean(dim=(2, 3)), bricks64.mean(dim=(2, 3)),
                               atol=0.02, rtol=0)


def test_vgg19_random_synthesis_runs(bricks64):
    result = texsynth.synthesize(bricks64, domain="image", size=(32, 32), steps=10, seed=0,
                                 extractor="vgg19-random", layers=("relu1_1", "relu2_1"),
                                 progress=False)
    assert result.signal.shape == (1, 3, 32, 32)
    assert result.losses[-1] < result.losses[0]


def test_stylize_with_default_content_layers(bricks64):
    content = F.interpolate(bricks64.flip(-1), size=(32, 40), mode="area")
    result = texsynth.stylize(content, bricks64, domain="image", steps=5, seed=0,
                              extractor_options={"filters": 8}, progress=False)
    assert result.signal.shape == (1, 3, 32, 40)
    assert result.settings["content_layers"] == ["k3", "k5", "k7"]
