"""The audio domain: file I/O, errors, sizes and the differentiable STFT model input."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

import texsynth
from texsynth.errors import InputError, UsageError
from texsynth_audio.domain import AudioDomain
from texsynth_audio.io import AudioWriter

RATE = 22050


@pytest.fixture
def domain() -> AudioDomain:
    return AudioDomain()


def _tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    mono = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([mono * (1 + 0.1 * c) / 1.3 for c in range(channels)], axis=1)


# -- registration and sizes ---------------------------------------------------------------
def test_registered_through_the_entry_point():
    dom = texsynth.get_domain("audio")
    assert isinstance(dom, AudioDomain)
    for suffix in (".wav", ".flac", ".ogg", ".WAV"):
        assert isinstance(texsynth.get_domain(f"clip{suffix}"), AudioDomain)
    assert dom.spatial_dims == 1
    assert dom.value_range == (-1.0, 1.0)
    assert dom.default_extractor in texsynth.get_plugin_manager().extractors("audio")


def test_sizes(domain):
    assert domain.size_from_duration(10) == (220500,)
    assert domain.size_from_duration(0.5) == (11025,)
    assert domain.describe_size((220500,)) == "220500 samples (10.00 s)"
    assert domain.parse_size("4096") == (4096,)
    assert domain.min_extent() == 2048
    domain.check_size((2048,))
    with pytest.raises(UsageError, match="too small"):
        domain.check_size((100,))
    with pytest.raises(UsageError, match="positive"):
        domain.size_from_duration(0)
    assert AudioDomain(sample_rate=8000).size_from_duration(2) == (16000,)


def test_bad_settings_are_usage_errors():
    with pytest.raises(UsageError):
        AudioDomain(sample_rate=0)
    with pytest.raises(UsageError):
        AudioDomain(hop_length=4096)
    with pytest.raises(UsageError):
        AudioDomain(peak=1.5)


# -- loading --------------------------------------------------------------------------------
def test_load_real_clip(domain, sample_audio):
    path = sample_audio("rain.wav")
    signal = domain.load(path)
    assert signal.shape == (1, 1, sf.info(str(path)).frames)
    assert signal.dtype == torch.float32
    assert float(signal.abs().max()) <= 1.0
    assert float(signal.abs().max()) > 0.0


def test_speech_with_digital_silence_loads(domain, sample_audio):
    signal = domain.load(sample_audio("speech_espeak.wav"))
    assert (signal == 0).any()
    assert torch.isfinite(signal).all()


def test_stereo_mixdown_and_keep_channels(tmp_path):
    data = _tone(0.5, RATE, channels=2)
    path = tmp_path / "stereo.wav"
    sf.write(path, data, RATE, subtype="FLOAT")
    mono = AudioDomain().load(path)
    assert mono.shape == (1, 1, data.shape[0])
    np.testing.assert_allclose(mono[0, 0].numpy(), data.mean(axis=1), atol=1e-6)
    stereo = AudioDomain(keep_channels=True).load(path)
    assert stereo.shape == (1, 2, data.shape[0])
    np.testing.assert_allclose(stereo[0].numpy().T, data, atol=1e-6)


def test_eight_channels_mix_down(tmp_path):
    data = _tone(0.3, RATE, channels=8)
    path = tmp_path / "octo.wav"
    sf.write(path, data, RATE)
    assert AudioDomain().load(path).shape == (1, 1, data.shape[0])
    assert AudioDomain(keep_channels=True).load(path).shape == (1, 8, data.shape[0])


@pytest.mark.parametrize("rate", [8000, 48000])
def test_resampled_to_working_rate(tmp_path, rate):
    path = tmp_path / f"tone_{rate}.wav"
    sf.write(path, _tone(0.5, rate, freq=300.0), rate)
    signal = AudioDomain().load(path)
    assert abs(signal.shape[-1] - RATE // 2) <= 2
    # The tone stays at 300 Hz: its spectral peak is in the bin nearest 300 Hz.
    spectrum = np.abs(np.fft.rfft(signal[0, 0].numpy()))
    peak_hz = spectrum.argmax() * RATE / signal.shape[-1]
    assert abs(peak_hz - 300.0) < 5.0


def _assert_input_error(domain, path, pattern):
    with pytest.raises(InputError, match=pattern) as info:
        domain.load(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "\n" not in message
    return message


def test_missing_directory_and_zero_byte(domain, tmp_path):
    _assert_input_error(domain, tmp_path / "nope.wav", "no such file")
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    _assert_input_error(domain, folder, "directory")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    _assert_input_error(domain, empty, "0 bytes")


def test_not_audio(domain, tmp_path):
    path = tmp_path / "fake.wav"
    path.write_text("this is not a RIFF file\n" * 20)
    _assert_input_error(domain, path, "not a sound file")


def test_zero_frames(domain, tmp_path):
    path = tmp_path / "zero_frames.wav"
    sf.write(path, np.zeros((0, 1)), RATE)
    _assert_input_error(domain, path, "no audio samples")


@pytest.mark.parametrize("frames", [1, 1000])
def test_too_short(domain, tmp_path, frames):
    path = tmp_path / f"short{frames}.wav"
    sf.write(path, np.full((frames, 1), 0.25), RATE)
    _assert_input_error(domain, path, "too short")


def test_one_sample_at_another_rate(domain, tmp_path):
    path = tmp_path / "one.wav"
    sf.write(path, np.full((1, 1), 0.25), 8000)
    _assert_input_error(domain, path, "too short")


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_and_inf_samples(domain, tmp_path, bad):
    data = _tone(0.3, RATE)
    data[100, 0] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, data, RATE, subtype="FLOAT")
    _assert_input_error(domain, path, "NaN or infinite")


def test_digital_silence_is_refused(domain, tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((RATE, 1)), RATE)
    _assert_input_error(domain, path, "digital silence")


def test_loud_float_file_is_scaled_not_clipped(domain, tmp_path):
    data = _tone(0.3, RATE) * 6.0  # peak 3.0
    path = tmp_path / "loud.wav"
    sf.write(path, data, RATE, subtype="FLOAT")
    signal = domain.load(path)
    assert float(signal.abs().max()) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(signal[0, 0].numpy(), data[:, 0] / np.abs(data).max(),
                               atol=1e-6)


# -- saving -------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_round_trip(domain, tmp_path, suffix):
    wave = torch.from_numpy(_tone(0.5, RATE, freq=440.0).T.copy()).float().unsqueeze(0) * 0.5
    path = domain.save(wave, tmp_path / f"out{suffix}", metadata={"seed": 3})
    info = sf.info(str(path))
    assert info.samplerate == RATE
    assert info.channels == 1
    back = domain.load(path)
    assert abs(back.shape[-1] - wave.shape[-1]) <= (0 if suffix != ".ogg" else 2048)
    assert float(back.abs().max()) == pytest.approx(0.98, abs=0.02)
    if suffix != ".ogg":  # lossless: same waveform after peak normalisation
        expected = wave[0, 0] * (0.98 / wave.abs().max())
        np.testing.assert_allclose(back[0, 0].numpy(), expected.numpy(), atol=2e-4)
    sidecar = json.loads((tmp_path / f"out{suffix}.json").read_text())
    assert sidecar["seed"] == 3
    assert sidecar["audio"]["sample_rate"] == RATE
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_save_never_clips_and_keeps_silence(domain, tmp_path):
    loud = torch.randn(1, 1, 4096) * 3
    domain.save(loud, tmp_path / "loud.wav")
    data, _ = sf.read(tmp_path / "loud.wav")
    assert np.abs(data).max() == pytest.approx(0.98, abs=1e-3)
    domain.save(torch.zeros(1, 1, 4096), tmp_path / "silence.wav")
    data, _ = sf.read(tmp_path / "silence.wav")
    assert np.isfinite(data).all()
    assert not np.any(data)
    assert not (tmp_path / "silence.wav.json").exists()  # no metadata given


def test_save_stereo_and_errors(tmp_path):
    dom = AudioDomain(keep_channels=True)
    wave = torch.rand(1, 2, 4096) - 0.5
    dom.save(wave, tmp_path / "st.flac")
    assert sf.info(str(tmp_path / "st.flac")).channels == 2
    assert dom.load(tmp_path / "st.flac").shape == (1, 2, 4096)
    with pytest.raises(UsageError, match="mp3"):
        dom.save(wave, tmp_path / "x.mp3")
    bad = wave.clone()
    bad[0, 0, 5] = math.nan
    with pytest.raises(UsageError, match="NaN"):
        dom.save(bad, tmp_path / "nan.wav")
    assert not (tmp_path / "nan.wav").exists()


def test_unnormalised_save(tmp_path):
    dom = AudioDomain(peak=None)
    wave = torch.full((1, 1, 4096), 0.25)
    dom.save(wave, tmp_path / "quiet.wav")
    data, _ = sf.read(tmp_path / "quiet.wav")
    assert np.abs(data).max() == pytest.approx(0.25, abs=1e-3)


# -- model input ----------------------------------------------------------------------------
def test_features_input_shape(domain):
    signal = torch.rand(2, 1, 22050) - 0.5
    feats = domain.to_features_input(signal)
    assert feats.shape == (2, 1025, 1 + 22050 // 512)
    assert (feats >= 0).all()
    stereo = domain.to_features_input(torch.rand(1, 2, 22050) - 0.5)
    assert stereo.shape == (2, 1025, 44)  # channels folded into the batch


def test_exact_silence_has_finite_values_and_gradients(domain):
    silence = torch.zeros(1, 1, 8192, requires_grad=True)
    feats = domain.to_features_input(silence)
    assert torch.isfinite(feats).all()
    (feats.pow(2).sum() + feats.sum()).backward()
    assert silence.grad is not None
    assert torch.isfinite(silence.grad).all()


def test_silent_segment_inside_real_clip(domain, sample_audio):
    clip = domain.load(sample_audio("fire.wav"))[..., : RATE].clone()
    clip[..., 4000:12000] = 0.0
    clip.requires_grad_(True)
    feats = domain.to_features_input(clip)
    loss = (feats - feats.detach().mean()).pow(2).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert clip.grad is not None
    assert torch.isfinite(clip.grad).all()
    assert clip.grad.abs().sum() > 0


def test_noise(domain, sample_audio):
    gen = torch.Generator().manual_seed(0)
    noise = domain.noise((1, 1, 22050), generator=gen)
    assert noise.shape == (1, 1, 22050)
    assert float(noise.std()) == pytest.approx(0.05, rel=0.05)
    loud = torch.full((1, 1, 100), 0.9)
    assert float(domain.noise((1, 1, 22050), like=loud).std()) == pytest.approx(0.1, rel=0.05)
    quiet = torch.full((1, 1, 100), 1e-4)
    assert float(domain.noise((1, 1, 22050), like=quiet).std()) == pytest.approx(0.01, rel=0.05)
    again = domain.noise((1, 1, 22050), generator=torch.Generator().manual_seed(0))
    assert torch.equal(noise, again)
    assert float(AudioDomain(noise_std=0.02).noise((1, 1, 22050)).std()) == pytest.approx(
        0.02, rel=0.05)


# -- command line, previews and block writing -----------------------------------------------
def test_command_line_options():
    parser = argparse.ArgumentParser()
    AudioDomain.add_arguments(parser.add_argument_group("audio"))
    dom = AudioDomain.from_arguments(parser.parse_args([]))
    assert (dom.sample_rate, dom.n_fft, dom.hop_length, dom.keep_channels) == (
        22050, 2048, 512, False)
    dom = AudioDomain.from_arguments(parser.parse_args(
        ["--sample-rate", "16000", "--n-fft", "1024", "--hop-length", "256",
         "--keep-channels", "--peak", "0.5"]))
    assert (dom.sample_rate, dom.n_fft, dom.hop_length, dom.keep_channels, dom.peak) == (
        16000, 1024, 256, True, 0.5)
    assert dom.n_freqs == 513
    assert AudioDomain.from_arguments(argparse.Namespace()).sample_rate == 22050


def test_check_output(domain, tmp_path):
    for suffix in (".wav", ".flac", ".ogg"):
        domain.check_output(tmp_path / f"x{suffix}")
    with pytest.raises(UsageError, match="mp3"):
        domain.check_output(tmp_path / "x.mp3")


def test_write_preview(domain, tmp_path):
    wave = torch.rand(1, 1, 8192) - 0.5
    path = domain.write_preview([("a", wave), ("b", wave * 0.1)], tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_block_writer(domain, tmp_path, suffix, monkeypatch):
    monkeypatch.setattr(AudioWriter, "BLOCK", 1000)
    wave = (torch.rand(2, 5000) - 0.5) * 4  # peak 2: must be scaled, not clipped
    path = tmp_path / f"blocks{suffix}"
    with domain.open_writer(path, (5000,), 2, metadata={"k": 1}) as writer:
        writer.write(wave[:, 3000:], (3000,))  # any order
        writer.write(wave[:, :3000], (0,))
    data, rate = sf.read(path)
    assert rate == 22050
    assert data.shape == (5000, 2)
    expected = (wave * (0.98 / wave.abs().max())).numpy().T
    np.testing.assert_allclose(data, expected, atol=2e-4)
    assert json.loads((tmp_path / f"blocks{suffix}.json").read_text())["k"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"blocks{suffix}",
                                                          f"blocks{suffix}.json"]


def test_block_writer_incomplete_or_failing_leaves_nothing(domain, tmp_path):
    path = tmp_path / "part.wav"
    writer = domain.open_writer(path, (5000,), 1)
    writer.write(torch.zeros(1, 100), (0,))
    with pytest.raises(UsageError, match="100 of 5000"):
        writer.close()

    def fail_midway() -> None:
        with domain.open_writer(path, (5000,), 1) as writer:
            writer.write(torch.zeros(1, 100), (0,))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    writer = domain.open_writer(path, (50,), 1)
    with pytest.raises(UsageError, match="outside"):
        writer.write(torch.zeros(1, 100), (0,))
    writer.abort()
    writer.abort()  # safe twice
    assert list(tmp_path.iterdir()) == []


def test_config_round_trip_and_given_arguments():
    parser = argparse.ArgumentParser()
    AudioDomain.add_arguments(parser.add_argument_group("audio"))
    assert AudioDomain.arguments_config(parser.parse_args([])) == {}
    given = AudioDomain.arguments_config(parser.parse_args(["--n-fft", "1024", "--peak",
                                                            "0.5"]))
    assert given == {"n_fft": 1024, "peak": 0.5}
    stored = AudioDomain(sample_rate=16000, hop_length=256, keep_channels=True).config()
    rebuilt = AudioDomain.from_config(stored)
    assert rebuilt.config() == stored
    merged = AudioDomain.from_config({**stored, **given})  # what sampling does
    assert (merged.sample_rate, merged.n_fft, merged.hop_length, merged.peak) == (
        16000, 1024, 256, 0.5)


def test_absurd_rates_and_windows_are_refused():
    """Settings that would make a second of sound exhaust memory (e.g. from an edited
    checkpoint) are refused when the domain is built."""
    from texsynth_audio.domain import MAX_N_FFT, MAX_SAMPLE_RATE

    with pytest.raises(UsageError, match="sample rate must be between 1 and"):
        AudioDomain(sample_rate=10**9)
    with pytest.raises(UsageError, match="n_fft must be between 2 and"):
        AudioDomain(n_fft=MAX_N_FFT * 2)
    assert AudioDomain(sample_rate=MAX_SAMPLE_RATE, n_fft=MAX_N_FFT,
                       hop_length=MAX_N_FFT).sample_rate == MAX_SAMPLE_RATE


@pytest.mark.parametrize("target", [8000, 4000, 2999])
def test_resample_is_band_limited_and_exact_in_length(target: int) -> None:
    """A 440 Hz tone at 16 kHz (8000 samples) resampled to ``target`` samples keeps its
    pitch in cycles per clip, and a tone above the new Nyquist frequency is removed,
    not folded back."""
    from texsynth_audio import AudioDomain

    domain = AudioDomain()
    t = torch.arange(8000) / 16000.0
    low = torch.sin(2 * torch.pi * 440 * t)[None, None]
    high = torch.sin(2 * torch.pi * 7000 * t)[None, None]
    out_low = domain.resample(low, (target,))
    out_high = domain.resample(high, (target,))
    assert out_low.shape == (1, 1, target)
    spectrum = torch.fft.rfft(out_low[0, 0]).abs()
    assert int(spectrum.argmax()) == 220  # 440 Hz over half a second: 220 cycles
    nyquist = 16000 * target / 8000 / 2  # Hz, at the working rate
    if nyquist < 7000:
        assert float(out_high.abs().max()) < 0.1
