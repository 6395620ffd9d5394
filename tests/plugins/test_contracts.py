"""The project's own domains pass the contract offered to plugin authors
(:class:`texsynth.testing.DomainContract`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import texsynth_audio
import texsynth_image
import texsynth_video
from texsynth import Domain
from texsynth.testing import DomainContract


class TestImageContract(DomainContract):
    round_trip_atol = 1 / 255

    @pytest.fixture
    def domain(self) -> Domain:
        return texsynth_image.ImageDomain()

    @pytest.fixture
    def sample_path(self, sample_image, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
        path = tmp_path / "gravel.png"
        Image.open(sample_image("gravel.png")).convert("RGB").resize((40, 40)).save(path)
        return path

    @pytest.fixture
    def extractor_name(self) -> str:
        return "random-multiscale"


class TestAudioContract(DomainContract):
    round_trip_atol = 2 / 32768  # 16-bit WAV

    @pytest.fixture
    def domain(self) -> Domain:
        return texsynth_audio.AudioDomain(peak=None)

    @pytest.fixture
    def sample_path(self, sample_audio, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
        dom = texsynth_audio.AudioDomain(peak=None)
        path = tmp_path / "rain.wav"
        dom.save(dom.load(sample_audio("rain.wav"))[..., :6000], path)
        return path

    @pytest.fixture
    def extractor_name(self) -> str:
        return "ulyanov"


class TestAudioGriffinLimContract(TestAudioContract):
    """The same domain optimising magnitude spectrograms (``--phase griffin-lim``)."""

    @pytest.fixture
    def domain(self) -> Domain:
        return texsynth_audio.AudioDomain(peak=None, phase="griffin-lim", griffin_lim_iters=4)


class TestAudioMultiresContract(TestAudioContract):
    """The same domain with an extractor that reads the waveform itself."""

    @pytest.fixture
    def extractor_name(self) -> str:
        return "multires"



def _clip_sample(picture_path: Path, target: Path) -> Path:
    """A small real clip at ``target``: 8 frames of a sample picture drifting right by one
    pixel per frame (32×32 pixels, 8 fps)."""
    from texsynth_video import write_clip

    picture = Image.open(picture_path).convert("RGB").resize((48, 48))
    array = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255).permute(2, 0, 1)
    clip = torch.stack([torch.roll(array, t, dims=2) for t in range(8)], dim=1)
    return write_clip(target, clip[:, :, 8:40, 8:40].contiguous(), 8.0)


class TestVideoContract(DomainContract):
    round_trip_atol = 1 / 255  # animated PNG: lossless

    @pytest.fixture
    def domain(self) -> Domain:
        return texsynth_video.VideoDomain()

    @pytest.fixture
    def sample_path(self, sample_image, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
        return _clip_sample(sample_image("gravel.png"), tmp_path / "gravel.apng")

    @pytest.fixture
    def extractor_name(self) -> str:
        return "random-spacetime"


class TestVideoMp4Contract(TestVideoContract):
    """The same domain on H.264 MP4, the lossy format clips usually come in."""

    round_trip_atol = 0.1  # one pixel after a re-encode: H.264 at crf 17, YUV 4:2:0 (0.06 measured)

    @pytest.fixture
    def sample_path(self, sample_image, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
        return _clip_sample(sample_image("gravel.png"), tmp_path / "gravel.mp4")
