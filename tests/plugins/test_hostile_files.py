"""Hostile but realistic files and file systems, through the command line.

Special files as inputs (a FIFO, a symbolic link to ``/dev/zero``) are refused without
being opened; oversized files are refused before they are read; float images with NaN or
infinite values are refused; a full disk or a name too long for the file system ends in
one line naming the file, with no output and no temporary file left behind.

Every command-line case checks the same outcome (:func:`assert_one_error`): exit status 2,
exactly one line on stderr, starting ``texsynth: error:``, naming the file and the reason,
no traceback; and (:func:`assert_left`) nothing but the expected files in the folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import texsynth_audio.io as audio_io
import texsynth_image.io as image_io
import texsynth_image.png_stream as png_stream
from texsynth.cli.commands import main
from texsynth.errors import InputError
from texsynth_audio import AudioDomain
from texsynth_image import ImageDomain, read_metadata
from texsynth_image.png_stream import PngStreamWriter

FAST_IMAGE = ["--size", "16x16", "--steps", "1", "--seed", "0", "--quiet", "--option",
              "filters=2"]
FAST_AUDIO = ["--duration", "0.2", "--steps", "1", "--seed", "0", "--quiet"]
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
NO_SPACE = "cannot write: no space left on device"
TOO_LONG = "file name too long"
#: Seconds a command may take before a blocked ``open`` is assumed.
HANG_TIMEOUT = 120.0

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
needs_dev_zero = pytest.mark.skipif(not os.path.exists("/dev/zero") or sys.platform == "win32",
                                    reason="needs /dev/zero and symbolic links")


# -- helpers -------------------------------------------------------------------------------------
def assert_one_error(code: int, err: str, *fragments: str) -> str:
    """Exit status 2 and exactly one ``texsynth: error:`` line holding every fragment."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("texsynth: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def assert_left(folder: Path, *names: str) -> None:
    """Only ``names`` are in ``folder``: no partial output, no hidden temporary file."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the command line; its exit status and stderr."""
    code = main(argv)
    return code, capsys.readouterr().err


def cli_bounded(argv: list[str], capsys: pytest.CaptureFixture[str],
                fifo: Path) -> tuple[int, str]:
    """:func:`cli` in a thread: if it blocks (opening ``fifo`` waits for a writer), the
    FIFO's write end is opened to release it and the test fails instead of hanging."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["code"] = main(argv)
        except BaseException as exc:  # reported below
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_TIMEOUT)
    if thread.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # EOF for the reader
        thread.join(30)
        pytest.fail(f"the command opened the FIFO {fifo} and blocked")
    if "error" in result:
        raise result["error"]
    return result["code"], capsys.readouterr().err


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / "ex.png")
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    sf.write(folder / "ex.wav", (tone + 0.05 * rng.normal(size=tone.size)).astype(np.float32),
             22050, subtype="FLOAT")
    return folder


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny image and a tiny audio generator (one training step each)."""
    folder = tmp_path_factory.mktemp("ckpt")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(folder / "ex.png")
    sf.write(folder / "ex.wav", (0.1 * rng.normal(size=11025)).astype(np.float32), 22050)
    common = ["--iterations", "1", "--batch-size", "1", "--scales", "2", "--seed", "0",
              "--quiet"]
    assert main(["train", str(folder / "ex.png"), "-o", str(folder / "image.ckpt"),
                 "--size", "32x32", "--option", "filters=4", *common]) == 0
    assert main(["train", str(folder / "ex.wav"), "-o", str(folder / "audio.ckpt"),
                 "--duration", "0.2", *common]) == 0
    return {"image": folder / "image.ckpt", "audio": folder / "audio.ckpt"}


def _long_name(suffix: str, length: int = 300) -> str:
    return "n" * (length - len(suffix)) + suffix


# -- special files as inputs ---------------------------------------------------------------------
@needs_fifo
@pytest.mark.parametrize(("name", "fast"), [("fifo.png", FAST_IMAGE), ("fifo.wav", FAST_AUDIO)])
def test_a_fifo_input_is_refused_without_being_opened(inputs: Path, out: Path, name: str,
                                                      fast: list[str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    fifo = inputs / name
    os.mkfifo(fifo)
    suffix = Path(name).suffix
    code, err = cli_bounded(["synthesize", str(fifo), "-o", str(out / f"o{suffix}"), *fast],
                            capsys, fifo)
    assert_one_error(code, err, name, "is a FIFO (named pipe), not a")
    assert_left(out)


@needs_dev_zero
@pytest.mark.parametrize(("name", "fast"), [("zero.png", FAST_IMAGE), ("zero.wav", FAST_AUDIO)])
def test_a_link_to_dev_zero_is_refused(inputs: Path, out: Path, name: str, fast: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    link = inputs / name
    link.symlink_to("/dev/zero")
    code, err = cli(["synthesize", str(link), "-o", str(out / f"o{link.suffix}"), *fast],
                    capsys)
    assert_one_error(code, err, name, "is a device, not a")
    assert_left(out)


@needs_dev_zero
def test_a_link_to_dev_zero_as_vgg_weights_is_refused(inputs: Path, out: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    link = inputs / "zero.pth"
    link.symlink_to("/dev/zero")
    code, err = cli(["synthesize", str(inputs / "ex.png"), "-o", str(out / "o.png"),
                     *FAST_IMAGE[:-2], "--extractor", "vgg19", "--weights", str(link)], capsys)
    assert_one_error(code, err, "zero.pth", "is a device, not a", "weights file")
    assert_left(out)


@needs_fifo
def test_read_metadata_never_opens_a_fifo_sidecar(tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    ImageDomain().save(torch.rand(1, 3, 9, 9), image)
    os.mkfifo(tmp_path / "a.jpg.json")
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(read_metadata(image)), daemon=True)
    thread.start()
    thread.join(HANG_TIMEOUT)
    if thread.is_alive():
        os.close(os.open(tmp_path / "a.jpg.json", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("read_metadata opened the FIFO sidecar")
    assert found == [None]


# -- size caps -----------------------------------------------------------------------------------
def test_an_image_over_the_size_cap_is_refused_before_it_is_read(
        inputs: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    huge = inputs / "huge.png"
    try:
        with open(huge, "wb") as handle:  # sparse: no disk space used
            handle.truncate(image_io.MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        pytest.skip(f"no sparse file of 2 GiB here ({exc})")
    code, err = cli(["synthesize", str(huge), "-o", str(out / "o.png"), *FAST_IMAGE], capsys)
    assert_one_error(code, err, "huge.png", "is too large for an image file",
                     "2,147,483,649 bytes", "the limit is 2.00 GiB")
    assert_left(out)


def test_a_sound_over_the_size_cap_is_refused(inputs: Path, out: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(audio_io, "MAX_SOUND_BYTES", 1024)
    code, err = cli(["synthesize", str(inputs / "ex.wav"), "-o", str(out / "o.wav"),
                     *FAST_AUDIO], capsys)
    assert_one_error(code, err, "ex.wav", "is too large for a sound file",
                     "the limit is 1.00 KiB")
    assert_left(out)


def test_weights_over_the_size_cap_are_refused(inputs: Path, out: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    weights = inputs / "w.pth"
    weights.write_bytes(b"\0" * 100)
    monkeypatch.setattr(image_io, "MAX_WEIGHTS_BYTES", 64)
    code, err = cli(["synthesize", str(inputs / "ex.png"), "-o", str(out / "o.png"),
                     *FAST_IMAGE[:-2], "--extractor", "vgg19", "--weights", str(weights)],
                    capsys)
    assert_one_error(code, err, "w.pth", "is too large for a weights file", "100 bytes")
    assert_left(out)


# -- non-finite images ---------------------------------------------------------------------------
@pytest.mark.parametrize(("bad", "count"), [("all-nan", 32 * 32), ("one-inf", 1)])
def test_a_float_tiff_with_nan_or_inf_is_refused(inputs: Path, out: Path, bad: str, count: int,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    values = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    if bad == "all-nan":
        values[:] = np.nan
    else:
        values[3, 4] = np.inf
    tiff = inputs / f"{bad}.tif"
    Image.fromarray(values).save(tiff)
    with Image.open(tiff) as check:
        assert check.mode == "F"
    code, err = cli(["synthesize", str(tiff), "-o", str(out / "o.png"), *FAST_IMAGE], capsys)
    assert_one_error(code, err, f"{bad}.tif", f"contains {count} NaN or infinite pixel value")
    assert_left(out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning on the way
        with pytest.raises(InputError, match="NaN or infinite"):
            ImageDomain().load(tiff)


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_finite_float_tiffs_load_as_before(tmp_path: Path, scale: float) -> None:
    values = (np.random.default_rng(2).random((20, 24)) * scale).astype(np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        signal = ImageDomain().load(tmp_path / "f.tif")
    expected = np.clip(values / (255.0 if values.max() > 1.0 else 1.0), 0.0, 1.0)
    assert signal.shape == (1, 3, 20, 24)
    for channel in range(3):
        np.testing.assert_array_equal(signal[0, channel].numpy(), expected)


# -- a full disk ---------------------------------------------------------------------------------
def _save_then_fail(fails: Callable[[str], bool]) -> Callable[..., None]:
    """A stand-in for ``PIL.Image.Image.save`` that writes a few bytes (a partial file) and
    then runs out of space, for the file names ``fails`` picks; other saves work."""
    real = Image.Image.save

    def save(self: Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
        if not fails(Path(fp).name):
            real(self, fp, *args, **kwargs)
            return
        Path(fp).write_bytes(b"\x89PNG partial")
        raise ENOSPC

    return save


@pytest.mark.parametrize("name", ["o.png", "o.jpg", "o.tif"])
def test_image_save_on_a_full_disk(inputs: Path, out: Path, name: str,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Image.Image, "save", _save_then_fail(lambda name: True))
    code, err = cli(["synthesize", str(inputs / "ex.png"), "-o", str(out / name), *FAST_IMAGE],
                    capsys)
    assert_one_error(code, err, f"{out / name}: {NO_SPACE}")
    assert_left(out)


@pytest.mark.parametrize(("name", "source", "fast"), [("o.jpg", "ex.png", FAST_IMAGE),
                                                      ("o.wav", "ex.wav", FAST_AUDIO)])
def test_a_sidecar_that_does_not_fit_takes_its_file_with_it(
        inputs: Path, out: Path, name: str, source: str, fast: list[str],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = Path.write_bytes

    def write_bytes(self: Path, data: Any) -> int:
        if ".json" in self.name:  # the sidecar's temporary file
            real(self, bytes(data)[:10])
            raise ENOSPC
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    code, err = cli(["synthesize", str(inputs / source), "-o", str(out / name), *fast], capsys)
    assert_one_error(code, err, f"{name}.json: {NO_SPACE}")
    assert_left(out)


def test_image_preview_on_a_full_disk(inputs: Path, out: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Image.Image, "save", _save_then_fail(lambda name: name.startswith(".p.")))
    code, err = cli(["synthesize", str(inputs / "ex.png"), "-o", str(out / "o.png"),
                     *FAST_IMAGE, "--preview", str(out / "p.png")], capsys)
    assert_one_error(code, err, f"p.png: {NO_SPACE}")
    assert_left(out, "o.png")  # the result was written before the preview


def test_spectrogram_preview_on_a_full_disk(inputs: Path, out: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Image.Image, "save", _save_then_fail(lambda name: name.startswith(".p.")))
    code, err = cli(["synthesize", str(inputs / "ex.wav"), "-o", str(out / "o.wav"),
                     *FAST_AUDIO, "--spectrogram", str(out / "p.png")], capsys)
    assert_one_error(code, err, f"p.png: {NO_SPACE}")
    assert_left(out, "o.wav", "o.wav.json")


class _FillingFile:
    """A file whose disk fills up when a PNG chunk of type ``kind`` is written."""

    def __init__(self, handle: Any, kind: bytes) -> None:
        self.handle, self.kind = handle, kind

    def write(self, data: bytes) -> int:
        if self.kind in bytes(data[:16]):
            self.handle.write(bytes(data[: len(data) // 2]))
            raise ENOSPC
        return int(self.handle.write(data))

    def close(self) -> None:
        self.handle.close()


@pytest.mark.parametrize("kind", [b"IHDR", b"tEXt", b"IDAT", b"IEND"])
def test_png_streaming_on_a_full_disk(checkpoints: dict[str, Path], out: Path, kind: bytes,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    def filling_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> _FillingFile:
        return _FillingFile(open(path, mode, *args, **kwargs), kind)

    monkeypatch.setattr(png_stream, "open", filling_open, raising=False)
    monkeypatch.setattr(png_stream, "IDAT_BYTES", 256)  # IDAT chunks while tiles arrive
    code, err = cli(["sample", str(checkpoints["image"]), "-o", str(out / "s.png"), "--size",
                     "64x64", "--tile", "32", "--quiet"], capsys)
    assert_one_error(code, err, f"s.png: {NO_SPACE}")
    assert_left(out)


def test_png_streaming_still_writes_the_same_file(checkpoints: dict[str, Path], out: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    base = ["sample", str(checkpoints["image"]), "--size", "64x64", "--seed", "3", "--quiet"]
    assert main([*base, "-o", str(out / "tiled.png"), "--tile", "32"]) == 0
    assert main([*base, "-o", str(out / "whole.png"), "--tile", "0"]) == 0
    with Image.open(out / "tiled.png") as tiled, Image.open(out / "whole.png") as whole:
        np.testing.assert_array_equal(np.asarray(tiled), np.asarray(whole))
    assert_left(out, "tiled.png", "whole.png")


def test_audio_save_on_a_full_disk(inputs: Path, out: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    def full_write(file: Any, *args: Any, **kwargs: Any) -> None:
        Path(file).write_bytes(b"RIFF partial")
        raise ENOSPC

    monkeypatch.setattr(sf, "write", full_write)
    code, err = cli(["synthesize", str(inputs / "ex.wav"), "-o", str(out / "o.wav"),
                     *FAST_AUDIO], capsys)
    assert_one_error(code, err, f"o.wav: {NO_SPACE}")
    assert_left(out)


@pytest.mark.parametrize(("number", "reason"), [(errno.ENOSPC, NO_SPACE),
                                                (0, "cannot write the sound file (System error)")])
def test_audio_save_reports_libsndfile_errors(inputs: Path, out: Path, number: int, reason: str,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def failing_write(file: Any, *args: Any, **kwargs: Any) -> None:
        Path(file).write_bytes(b"RIFF partial")
        raise sf.LibsndfileError(audio_io.SFE_SYSTEM, prefix=f"Error opening {file!r}: ")

    monkeypatch.setattr(sf, "write", failing_write)
    monkeypatch.setattr(audio_io, "libsndfile_errno", lambda: number)
    code, err = cli(["synthesize", str(inputs / "ex.wav"), "-o", str(out / "o.wav"),
                     *FAST_AUDIO], capsys)
    line = assert_one_error(code, err, f"o.wav: {reason}")
    assert ".tmp" not in line  # libsndfile's message names the temporary file; ours does not
    assert_left(out)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_libsndfile_system_errors_carry_their_errno() -> None:
    with pytest.raises(sf.LibsndfileError) as failure:
        sf.write("/dev/full", np.zeros((50000, 1), np.float32), 8000, format="WAV",
                 subtype="PCM_16")
    assert str(audio_io.write_error("o.wav", failure.value)) == f"o.wav: {NO_SPACE}"


def test_audio_streaming_on_a_full_disk(checkpoints: dict[str, Path], out: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    def full_write(self: sf.SoundFile, data: Any) -> None:
        raise ENOSPC

    monkeypatch.setattr(sf.SoundFile, "write", full_write)
    code, err = cli(["sample", str(checkpoints["audio"]), "-o", str(out / "s.wav"),
                     "--duration", "1", "--tile", "4096", "--quiet"], capsys)
    assert_one_error(code, err, f"s.wav: {NO_SPACE}")
    assert_left(out)


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="needs posix_fallocate")
def test_audio_streaming_reserves_its_scratch_space(checkpoints: dict[str, Path], out: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A full disk is an error when the scratch file is made, not a SIGBUS later."""
    def full(fd: int, offset: int, length: int) -> None:
        raise ENOSPC

    monkeypatch.setattr(os, "posix_fallocate", full)
    code, err = cli(["sample", str(checkpoints["audio"]), "-o", str(out / "s.wav"),
                     "--duration", "1", "--tile", "4096", "--quiet"], capsys)
    assert_one_error(code, err, f"s.wav: {NO_SPACE}")
    assert_left(out)


# -- names too long for the file system ----------------------------------------------------------
@pytest.mark.parametrize(("suffix", "source", "fast", "length"), [
    (".png", "ex.png", FAST_IMAGE, 300),
    (".jpg", "ex.png", FAST_IMAGE, 253),  # fits, but its .json sidecar does not
    (".wav", "ex.wav", FAST_AUDIO, 300),
    (".flac", "ex.wav", FAST_AUDIO, 253),
])
def test_an_output_name_too_long_is_refused_before_work(
        inputs: Path, out: Path, suffix: str, source: str, fast: list[str], length: int,
        capsys: pytest.CaptureFixture[str]) -> None:
    name = _long_name(suffix, length)
    code, err = cli(["synthesize", str(inputs / source), "-o", str(out / name), *fast], capsys)
    assert_one_error(code, err, name, f"cannot write: {TOO_LONG}")
    assert_left(out)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_image_save_with_a_name_too_long(out: Path, suffix: str) -> None:
    target = out / _long_name(suffix)
    with pytest.raises(InputError, match=TOO_LONG):
        ImageDomain().save(torch.rand(1, 3, 8, 8), target, metadata={"run": 1})
    assert_left(out)


@pytest.mark.parametrize("suffix", [".wav", ".ogg"])
def test_audio_save_with_a_name_too_long(out: Path, suffix: str) -> None:
    target = out / _long_name(suffix)
    with pytest.raises(InputError, match=TOO_LONG):
        AudioDomain().save(torch.rand(1, 1, 4096) - 0.5, target, metadata={"run": 1})
    assert_left(out)


def test_png_streaming_with_a_name_too_long(out: Path) -> None:
    target = out / _long_name(".png")
    with pytest.raises(InputError, match=TOO_LONG), \
            PngStreamWriter(target, (8, 8), 3, text={"texsynth": "{}"}) as writer:
        writer.write(torch.rand(3, 8, 8), (0, 0))
    assert_left(out)
