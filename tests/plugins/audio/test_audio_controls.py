"""Controls along time: a guide of boundaries in seconds (rain turning into fire) and a
time stretch that keeps the pitch."""

from __future__ import annotations

import pytest
import torch

import texsynth
from texsynth.errors import UsageError
from texsynth_audio.domain import AudioDomain
from texsynth_audio.stft import log_magnitude

SMALL = {"filters": 32, "widths": [2, 4, 8, 16, 32]}


@pytest.fixture
def domain() -> AudioDomain:
    return AudioDomain()


def _clip(domain: AudioDomain, path, seconds: float = 1.0) -> torch.Tensor:
    return domain.load(path)[..., : round(seconds * domain.sample_rate)].contiguous()


def _spectrum(signal: torch.Tensor) -> torch.Tensor:
    return log_magnitude(signal, n_fft=1024, hop_length=256).mean(dim=(0, 2))


def test_a_time_guide_reads_boundaries_in_seconds(domain) -> None:
    rate = domain.sample_rate
    labels = domain.load_guide("0.5,1.5", (2 * rate,))
    assert labels.shape == (1, 2 * rate)
    assert labels[0, : rate // 2].max() == 0
    assert torch.all(labels[0, rate // 2 : 3 * rate // 2] == 1 / 255)
    assert torch.all(labels[0, 3 * rate // 2 :] == 2 / 255)


@pytest.mark.parametrize(("text", "message"), [
    ("soon", "give region boundaries in seconds"),
    ("1.5,0.5", "boundaries must increase and lie inside the output's 2.00 s"),
    ("3", "inside the output's 2.00 s"),
    ("0", "inside the output's"),
])
def test_bad_time_guides_are_refused(domain, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        domain.load_guide(text, (2 * domain.sample_rate,))


def test_rain_turns_into_fire_along_the_guide(domain, sample_audio) -> None:
    rain = _clip(domain, sample_audio("rain.wav"))
    fire = _clip(domain, sample_audio("fire.wav"))
    size = domain.size_from_duration(1.0)
    result = texsynth.synthesize([rain, fire], domain=domain, size=size, guide="0.5",
                                 extractor_options=SMALL, steps=40, seed=0, progress=False,
                                 levels=1)
    assert result.signal.shape == (1, 1, size[0])
    assert result.settings["guide"] == "0.5"
    half = size[0] // 2
    first, second = result.signal[..., :half], result.signal[..., half:]

    def distance(x: torch.Tensor, y: torch.Tensor) -> float:
        return float((_spectrum(x) - _spectrum(y)).abs().mean())

    assert distance(first, rain) < distance(first, fire)
    assert distance(second, fire) < distance(second, rain)


def test_time_stretch_keeps_the_pitch(domain) -> None:
    rate = domain.sample_rate
    t = torch.arange(rate // 2) / rate
    tone = (0.5 * torch.sin(2 * torch.pi * 440.0 * t)).reshape(1, 1, -1)
    for factor in (0.5, 2.0):
        out = domain.rescale(tone, factor)
        assert out.shape == (1, 1, round(tone.shape[-1] * factor))
        spectrum = torch.fft.rfft(out[0, 0, 1024:-1024]).abs()
        peak = float(spectrum.argmax()) * rate / (out.shape[-1] - 2048)
        assert peak == pytest.approx(440.0, rel=0.02)
        assert float(out[..., 1024:-1024].abs().max()) == pytest.approx(0.5, rel=0.2)
