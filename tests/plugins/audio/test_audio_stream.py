"""``texsynth sample --stream``: sound written as it is made, to a file or to a player
through standard output, with or without an end."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from texsynth.cli.commands import main
from texsynth_audio.domain import AudioDomain

SMALL = ["--option", "filters=16", "--option", "widths=[2,8,32]"]
STRIDED = ["--generator-option", "num_scales=3", "--generator-option", "stride=16",
           "--generator-option", "channels=8"]


@pytest.fixture
def strided_ckpt(sample_audio, tmp_path: Path,  # type: ignore[no-untyped-def]
                 capsys: pytest.CaptureFixture[str]) -> Path:
    """A strided generator trained for 3 steps on half a second of the rain recording."""
    domain = AudioDomain()
    clip = tmp_path / "rain.wav"
    domain.save(domain.load(sample_audio("rain.wav"))[..., :11025], clip)
    ckpt = tmp_path / "rain.ckpt"
    code = main(["train", str(clip), "-o", str(ckpt), "--iterations", "3", "--batch-size",
                 "2", "--seed", "0", "--quiet", "--duration", "0.3", *SMALL, *STRIDED])
    assert code == 0, capsys.readouterr().err
    return ckpt


def _cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "texsynth", *args], capture_output=True,
                          timeout=120, check=False, **kwargs)  # type: ignore[call-overload]


def test_a_stream_is_the_one_piece_sample(strided_ckpt: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    streamed, whole = tmp_path / "streamed.wav", tmp_path / "whole.wav"
    for out, extra in ((streamed, ["--stream"]), (whole, ["--tile", "0"])):
        code = main(["sample", str(strided_ckpt), "-o", str(out), "--duration", "1.5",
                     "--seed", "4", "--quiet", *extra])
        assert code == 0, capsys.readouterr().err
    a, rate = sf.read(streamed, dtype="float64")
    b, _ = sf.read(whole, dtype="float64")
    assert rate == 22050 and a.shape == b.shape == (33075,)
    # The one-piece file is peak-normalised, the stream keeps the generator's level.
    gain = float(np.abs(b).max() / np.abs(a).max())
    assert np.abs(a * gain - b).max() < 3 * gain / 32768  # 16-bit rounding
    settings = json.loads(Path(f"{streamed}.json").read_text())
    assert settings["stream"] is True and settings["audio"]["gain"] == 1.0
    assert settings["audio"]["samples"] == 33075 and settings["seed"] == 4


def test_standard_output_gets_an_au_stream(strided_ckpt: Path, tmp_path: Path) -> None:
    done = _cli("sample", str(strided_ckpt), "--stream", "--duration", "0.5", "--seed", "4",
                "-o", "-")
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().strip() == \
        "wrote 11025 samples (0.50 s) to standard output"
    data, rate = sf.read(io.BytesIO(done.stdout), dtype="float64")
    assert rate == 22050 and data.shape == (11025,)
    file = tmp_path / "same.wav"
    assert main(["sample", str(strided_ckpt), "--stream", "--duration", "0.5", "--seed",
                 "4", "-o", str(file), "--quiet"]) == 0
    np.testing.assert_allclose(data, sf.read(file, dtype="float64")[0], atol=1 / 32768)


def test_an_endless_stream_stops_quietly_when_the_player_goes(strided_ckpt: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "texsynth", "sample", str(strided_ckpt),
                             "--stream", "-o", "-", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(400_000)  # more than one block: the stream goes on
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert head[:4] == b".snd"
    assert proc.stderr.read().decode().strip().endswith("to standard output (stopped)")


def test_ctrl_c_ends_an_endless_stream_to_a_file_and_keeps_it(strided_ckpt: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "endless.flac"
    proc = subprocess.Popen([sys.executable, "-m", "texsynth", "sample", str(strided_ckpt),
                             "--stream", "-o", str(out), "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the temporary file holds some sound
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".endless")]
        if temps and temps[0].stat().st_size > 100_000:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "(stopped)" in err.decode()
    data, rate = sf.read(out)
    assert rate == 22050 and data.shape[0] > 22050
    assert json.loads(Path(f"{out}.json").read_text())["audio"]["samples"] == data.shape[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".endless")]


@pytest.mark.parametrize(("extra", "message"), [
    (["-o", "-"], "standard output takes a stream; add --stream"),
    (["--stream", "-n", "2", "-o", "x.wav"], "--count cannot be used with it"),
    (["--stream", "--tile", "100", "-o", "x.wav"], "--tile cannot be used with it"),
    (["--stream", "-o", "x.png"], "x.png"),
])
def test_bad_stream_requests_are_one_line_errors(strided_ckpt: Path, tmp_path: Path,
                                                 extra: list[str], message: str) -> None:
    done = _cli("sample", str(strided_ckpt), "--duration", "0.5", *extra, cwd=tmp_path)
    assert done.returncode != 0
    err = done.stderr.decode().strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.glob("x.*"))
