"""Feed-forward sound: a generator over the time axis, trained and sampled from the command
line, whose outputs loop without a click; and the audio domain's preferred settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from texsynth.cli.commands import main
from texsynth.feedforward.checkpoint import load_generator
from texsynth_audio.domain import AudioDomain

SMALL = ["--option", "filters=16", "--option", "widths=[2,8,32]"]


@pytest.fixture
def rain_clip(sample_audio, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Half a second of the real rain recording at 22 050 Hz."""
    domain = AudioDomain()
    path = tmp_path / "rain.wav"
    domain.save(domain.load(sample_audio("rain.wav"))[..., :11025], path)
    return path


def _train(exemplar: Path, ckpt: Path, capsys: pytest.CaptureFixture[str],
           *extra: str) -> None:
    code = main(["train", str(exemplar), "-o", str(ckpt), "--iterations", "3",
                 "--batch-size", "2", "--seed", "0", "--quiet", *SMALL, *extra])
    assert code == 0, capsys.readouterr().err


def _wrap_steps(x: np.ndarray) -> tuple[float, np.ndarray]:
    """|first − last| sample and every interior |x[j+1] − x[j]|."""
    return float(abs(x[0] - x[-1])), np.abs(np.diff(x))


def test_trained_generator_loops_without_a_click(rain_clip: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "rain.ckpt"
    _train(rain_clip, ckpt, capsys, "--duration", "0.3")
    generator, meta = load_generator(ckpt)
    # The audio domain's defaults: 11 noise scales (each sample sees about ±0.56 s).
    assert meta["generator"]["options"]["num_scales"] == 11
    assert meta["generator"]["spatial_dims"] == 1
    assert meta["training"]["size"] == [6615]
    assert meta["domain_config"]["sample_rate"] == 22050

    out = tmp_path / "loop.wav"
    code = main(["sample", str(ckpt), "-o", str(out), "--duration", "1.5", "--seed", "3",
                 "--quiet", "--spectrogram", str(tmp_path / "loop.png")])
    assert code == 0, capsys.readouterr().err
    with Image.open(tmp_path / "loop.png") as picture:  # exemplar and sample side by side
        frames = (1 + 11025 // 512) + (1 + 33075 // 512)
        assert picture.format == "PNG" and picture.width >= frames
    data, rate = sf.read(out, dtype="float64")
    assert rate == 22050
    assert data.shape == (33075,)
    assert np.abs(data).max() == pytest.approx(0.98, abs=1e-3)
    assert json.loads(Path(f"{out}.json").read_text())["seed"] == 3

    # Played in a loop, the file goes on across its end exactly as the generator does on
    # its torus: the window around the wrap, computed as one stretch, equals last + first.
    size = (data.shape[0],)
    key = generator.noise_key(torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = generator(generator.make_noise(1, size,
                                               generator=torch.Generator().manual_seed(3)))
        across = generator.forward_region(key, [0], size, ((size[0] - 300, size[0] + 300),))
    scale = 0.98 / float(whole.abs().max())
    expected = across.flatten().double().numpy() * scale
    looped = np.concatenate([data[-300:], data[:300]])
    assert np.abs(looped - expected).max() < 3 / 32768  # 16-bit rounding
    # ... so the step across the wrap is an ordinary step, not a click.
    wrap, interior = _wrap_steps(data)
    assert wrap <= np.quantile(interior, 0.999)


def test_wrap_measure_sees_a_click(rain_clip: Path) -> None:
    """The measure above does fail on a loop made by cutting a recording: a rain clip
    starting mid-drop and a silent tail make a jump no interior step reaches."""
    data, _ = sf.read(rain_clip, dtype="float64")
    cut = data.copy()
    cut[-2000:] = 0.0  # the loop ends in silence and restarts at full level
    start = int(np.argmax(np.abs(cut[:5000])))
    wrap, interior = _wrap_steps(cut[start:])
    assert wrap > np.quantile(interior, 0.999)


def test_sampling_uses_the_training_sample_rate(rain_clip: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "rain16k.ckpt"
    _train(rain_clip, ckpt, capsys, "--sample-rate", "16000", "--duration", "0.2",
           "--scales", "6", "--batch-gram")
    assert load_generator(ckpt)[1]["loss"]["batch_gram"] is True
    out = tmp_path / "loop16k.wav"
    code = main(["sample", str(ckpt), "-o", str(out), "--duration", "0.5", "--quiet"])
    assert code == 0, capsys.readouterr().err
    info = sf.info(str(out))
    assert (info.samplerate, info.frames) == (16000, 8000)


def test_stereo_generator(sample_audio, tmp_path: Path,  # type: ignore[no-untyped-def]
                          capsys: pytest.CaptureFixture[str]) -> None:
    mono = AudioDomain().load(sample_audio("wind.wav"))[..., :8192]
    stereo = tmp_path / "wind_stereo.wav"
    AudioDomain(keep_channels=True).save(torch.cat([mono, mono.roll(3000, -1)], dim=1), stereo)
    ckpt = tmp_path / "wind.ckpt"
    _train(stereo, ckpt, capsys, "--keep-channels", "--scales", "6", "--preview",
           str(tmp_path / "train.png"))
    with Image.open(tmp_path / "train.png") as picture:
        assert picture.format == "PNG"
    out = tmp_path / "wind_out.wav"
    code = main(["sample", str(ckpt), "-o", str(out), "--duration", "0.25", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert sf.info(str(out)).channels == 2


def test_phase_option_on_the_command_line(rain_clip: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gl.wav"
    code = main(["synthesize", str(rain_clip), "-o", str(out), "--duration", "0.4",
                 "--phase", "griffin-lim", "--griffin-lim-iters", "4", "--steps", "6",
                 "--seed", "1", "--quiet", *SMALL])
    assert code == 0, capsys.readouterr().err
    data, rate = sf.read(out)
    assert (rate, data.shape) == (22050, (8820,))
    assert np.abs(data).max() > 0.5
    settings = json.loads(Path(f"{out}.json").read_text())
    assert settings["representation"] == {"name": "griffin-lim", "griffin_lim_iters": 4}
    assert settings["steps"] == 6
    code = main(["synthesize", str(rain_clip), "-o", str(tmp_path / "x.wav"),
                 "--phase", "magnitude"])
    assert code == 2
    assert "invalid choice" in capsys.readouterr().err
    code = main(["synthesize", str(rain_clip), "-o", str(tmp_path / "x.wav"),
                 "--spectrogram", str(tmp_path / "x.jpg")])
    assert code == 2
    assert "x.jpg: --preview writes PNG pictures" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_audio_defaults_reach_stylisation(sample_audio) -> None:  # type: ignore[no-untyped-def]
    import texsynth

    domain = AudioDomain()
    clip = domain.load(sample_audio("rain.wav"))[..., :8192]
    result = texsynth.stylize(clip, clip.flip(-1), domain=domain, steps=2, seed=0,
                              extractor_options={"filters": 8, "widths": [2, 4]},
                              progress=False)
    assert result.settings["style_weight"] == domain.defaults()["style_weight"] == 30.0
    assert result.settings["content_weight"] == 1.0
    assert (domain.defaults()["steps"], domain.defaults()["init"]) == (300, "spot")
