"""The project's own domains pass the contract offered to plugin authors
(:class:`texsynth.testing.DomainContract`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import texsynth_audio
import texsynth_image
from texsynth import Domain
from texsynth.testing import DomainContract


class TestImageContract(DomainContract):
    round_trip_atol = 1 / 255

    @pytest.fixture
    def domain(self) -> Domain:
        return texsynth_image.ImageDomain()

    @pytest.fixture
    def sample_path(self, shared_image, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
        path = tmp_path / "gravel.png"
        Image.open(shared_image("gravel.png")).convert("RGB").resize((40, 40)).save(path)
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
    def sample_path(self, shared_audio, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
        dom = texsynth_audio.AudioDomain(peak=None)
        path = tmp_path / "rain.wav"
        dom.save(dom.load(shared_audio("rain.wav"))[..., :6000], path)
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
