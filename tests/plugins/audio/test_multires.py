"""``multires``: an extractor that reads the waveform and makes several STFTs of it."""

from __future__ import annotations

import pytest
import torch

import texsynth
from texsynth import UsageError
from texsynth_audio import AudioDomain


def make(**options: object) -> texsynth.FeatureExtractor:
    return texsynth.get_extractor("multires", "audio", seed=0, options=options)


def test_layers_follow_each_resolution() -> None:
    net = make(n_ffts="256,1024", widths="2,8", filters=16)
    assert net.reads == "signal"
    assert net.layers == ("spectrum256", "all256", "spectrum1024", "all1024")
    wave = torch.rand(2, 1, 4000) - 0.5
    feats = net(net.input_of(AudioDomain(), wave))
    assert feats["spectrum256"].shape == (2, 129, 1 + 4000 // 64)
    assert feats["spectrum1024"].shape == (2, 513, 1 + 4000 // 256)
    assert feats["all256"].shape == (2, 2 * 16, 1 + 4000 // 64)
    assert feats["all1024"].shape == (2, 2 * 16, 1 + 4000 // 256)


def test_it_resolves_two_clicks_the_domains_stft_merges() -> None:
    """Two clicks 20 ms apart are two peaks of frame energy at 256 samples (hop 3 ms) and
    one at the domain's 2048 (hop 23 ms, window 93 ms)."""
    wave = torch.zeros(1, 1, 16384)
    wave[..., 8192] = wave[..., 8192 + 441] = 1.0
    net = make(n_ffts="256,2048", widths="2", filters=4)
    feats = net(net.input_of(AudioDomain(), wave))

    def peaks(name: str) -> int:
        energy = feats[name][0].sum(dim=0)
        inner = energy[1:-1]
        top = (inner > energy[:-2]) & (inner >= energy[2:]) & (inner > 0.5 * energy.max())
        return int(top.sum())

    assert peaks("spectrum256") == 2
    assert peaks("spectrum2048") == 1


def test_gradients_reach_the_waveform() -> None:
    net = make(n_ffts="256,512", widths="2,4", filters=8)
    wave = (torch.rand(1, 1, 3000) - 0.5).requires_grad_(True)
    feats = net(net.input_of(AudioDomain(), wave))
    sum(texsynth.gram_matrix(m).sum() for m in feats.values()).backward()
    assert wave.grad is not None and torch.isfinite(wave.grad).all()
    assert wave.grad.abs().sum() > 0


@pytest.mark.parametrize(("options", "message"), [
    ({"n_ffts": "256,256"}, "distinct STFT windows"),
    ({"n_ffts": "8"}, "16 to 65536 samples"),
    ({"filters": 0}, "filters must be a positive integer"),
    ({"n_ffts": "x"}, "n_ffts must be a positive integer"),
    ({"hop": 3}, "unknown option"),
])
def test_bad_options_are_one_line_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make(**options)


def test_a_too_short_signal_is_named() -> None:
    net = make(n_ffts="256,4096", widths="2", filters=4)
    with pytest.raises(UsageError, match="2000 samples is too short for the 4096-sample"):
        net(torch.zeros(1, 1, 2000))


def test_griffin_lim_magnitudes_cannot_feed_it(sample_audio) -> None:  # type: ignore[no-untyped-def]
    domain = AudioDomain(phase="griffin-lim", griffin_lim_iters=2)
    with pytest.raises(UsageError, match="analyses the signal itself"):
        texsynth.synthesize(sample_audio("rain.wav"), domain=domain, size=(4096,), steps=2,
                            extractor="multires", progress=False, seed=0,
                            extractor_options={"n_ffts": [256, 512], "filters": 4})


def test_mixed_readers_join_through_also(sample_audio) -> None:  # type: ignore[no-untyped-def]
    """A model-input extractor with a signal-reading one as further statistics: both
    terms are computed, each from its own input, and the loss falls."""
    spec = texsynth.FeatureSpec(
        extractor="multikernel", extractor_options={"widths": [2, 4], "filters": 16},
        also=((texsynth.FeatureSpec(extractor="multires", extractor_options={
            "n_ffts": [256, 1024], "widths": [2, 4], "filters": 16}), 1.0),))
    result = texsynth.synthesize(sample_audio("rain.wav"), features=spec, size=(8192,),
                                 steps=15, progress=False, seed=0)
    assert result.losses[-1] < 0.5 * result.losses[0]
    also = result.settings["also"][0]
    assert also["extractor"]["name"] == "multires"
