"""Audio synthesis through the core, Griffin-Lim, style transfer and spectrogram pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import texsynth
from texsynth.errors import UsageError
from texsynth_audio.domain import AudioDomain
from texsynth_audio.magnitude import synthesize_magnitude
from texsynth_audio.spectrogram import save_spectrogram_comparison
from texsynth_audio.stft import log_magnitude

SMALL = {"filters": 32, "widths": [2, 4, 8, 16, 32]}


@pytest.fixture
def domain() -> AudioDomain:
    return AudioDomain()


def _clip(domain: AudioDomain, path, seconds: float = 1.0) -> torch.Tensor:
    signal = domain.load(path)
    return signal[..., : round(seconds * domain.sample_rate)].contiguous()


def _mean_spectrum(signal: torch.Tensor) -> torch.Tensor:
    return log_magnitude(signal, n_fft=2048, hop_length=512).mean(dim=(0, 2))


def test_synthesize_rain(domain, sample_audio, tmp_path):
    exemplar = _clip(domain, sample_audio("rain.wav"))
    size = domain.size_from_duration(0.75)
    result = texsynth.synthesize(exemplar, domain=domain, size=size, extractor_options=SMALL,
                                 steps=40, seed=0, progress=False)
    assert result.signal.shape == (1, 1, size[0])
    assert float(result.signal.abs().max()) <= 1.0
    assert torch.isfinite(result.signal).all()
    assert result.losses[-1] < 0.05 * result.losses[0]
    # The average log-magnitude spectrum moved toward the exemplar's.
    start = domain.noise((1, 1, size[0]), generator=torch.Generator().manual_seed(0),
                         like=exemplar)
    target = _mean_spectrum(exemplar)
    before = float((_mean_spectrum(start) - target).abs().mean())
    after = float((_mean_spectrum(result.signal) - target).abs().mean())
    assert after < 0.5 * before
    # Saved at the working rate, peak-normalised without clipping, with its settings.
    out = texsynth.save(result, tmp_path / "rain_out.wav", domain=domain)
    data, rate = sf.read(out)
    assert rate == 22050
    assert data.shape == (size[0],)
    assert np.abs(data).max() == pytest.approx(0.98, abs=1e-3)
    settings = json.loads((tmp_path / "rain_out.wav.json").read_text())
    assert settings["seed"] == 0
    assert settings["extractor"]["name"] == "multikernel"
    assert settings["size"] == "16538 samples (0.75 s)"


def test_synthesize_from_a_file_with_the_ulyanov_extractor(domain, sample_audio, tmp_path):
    path = tmp_path / "crickets_short.flac"
    domain.save(_clip(domain, sample_audio("crickets.wav"), 0.6), path)
    result = texsynth.synthesize(path, size=(8192,), extractor="ulyanov",
                                 extractor_options={"filters": 64}, steps=15, seed=1,
                                 progress=False)
    assert result.signal.shape == (1, 1, 8192)
    assert result.losses[-1] < 0.2 * result.losses[0]


def test_exemplar_with_a_silent_gap_gives_finite_losses(domain, sample_audio):
    exemplar = _clip(domain, sample_audio("fire.wav")).clone()
    exemplar[..., 5000:15000] = 0.0
    result = texsynth.synthesize(exemplar, domain=domain, size=(11025,),
                                 extractor_options=SMALL, steps=10, seed=0, progress=False)
    assert all(np.isfinite(result.losses))
    assert torch.isfinite(result.signal).all()


def test_silent_start_signal_has_finite_gradients(domain, sample_audio):
    exemplar = _clip(domain, sample_audio("rain.wav"), 0.5)
    result = texsynth.synthesize(exemplar, domain=domain, size=(8192,),
                                 init=torch.zeros(1, 1, 8192), extractor_options=SMALL,
                                 steps=5, seed=0, progress=False)
    assert all(np.isfinite(result.losses))


def test_stereo_synthesis_keeps_channels(sample_audio, tmp_path):
    dom = AudioDomain(keep_channels=True)
    mono = AudioDomain().load(sample_audio("wind.wav"))[..., :16384]
    stereo = torch.cat([mono, mono.roll(4000, dims=-1) * 0.5], dim=1)
    result = texsynth.synthesize(stereo, domain=dom, size=(8192,), extractor_options=SMALL,
                                 steps=5, seed=0, progress=False)
    assert result.signal.shape == (1, 2, 8192)
    dom.save(result.signal, tmp_path / "st.wav")
    assert sf.info(str(tmp_path / "st.wav")).channels == 2


def test_stylize_speech_with_rain(domain, sample_audio):
    content = _clip(domain, sample_audio("speech_espeak.wav"), 0.75)
    style = _clip(domain, sample_audio("rain.wav"), 0.75)
    result = texsynth.stylize(content, style, domain=domain, extractor_options=SMALL,
                              steps=10, seed=0, progress=False)
    assert result.signal.shape == content.shape
    assert result.settings["content_layers"] == ["w2", "w4"]
    assert result.losses[-1] < result.losses[0]


def test_griffin_lim_option(domain, sample_audio):
    exemplar = _clip(domain, sample_audio("rain.wav"))
    result = synthesize_magnitude(exemplar, domain=domain, size=(12345,),
                                  extractor_options=SMALL, steps=20, griffin_lim_iters=8,
                                  seed=0, progress=False)
    assert result.signal.shape == (1, 1, 12345)
    assert float(result.signal.abs().max()) <= 1.0
    assert float(result.signal.abs().max()) > 0.0
    assert result.losses[-1] < 0.1 * result.losses[0]
    assert result.settings["representation"] == {"name": "griffin-lim",
                                                 "griffin_lim_iters": 8}
    json.dumps(result.settings)
    with pytest.raises(UsageError, match="too small"):
        synthesize_magnitude(exemplar, domain=domain, size=(100,), steps=1, progress=False)


def test_spectrogram_comparison_png(domain, sample_audio, tmp_path):
    exemplar = _clip(domain, sample_audio("crickets.wav"))
    other = torch.zeros(1, 1, 11025)  # silence must not break the colour scale
    path = save_spectrogram_comparison([("exemplar", exemplar), ("silence", other)],
                                       tmp_path / "cmp.png", rate=22050, n_fft=2048, hop=512)
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    frames = (1 + 22050 // 512) + (1 + 11025 // 512)
    assert width >= frames
    assert height >= 256
    assert pixels.std() > 10
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    with pytest.raises(UsageError, match="PNG"):
        save_spectrogram_comparison([("x", exemplar)], tmp_path / "cmp.jpg", rate=22050)
