"""A corpus of bad inputs, each with its expected one-line error and exit status.

Every case is generated here (nothing downloaded). A case is a builder that writes its
files into a temporary folder and returns the command line; the expectation is the exit
status, a fragment of the single error line that says what is wrong (not just which file),
and (for rejected files) the file's name in that line. Unusual but valid inputs (CMYK,
16-bit, palette, grey+alpha, animated GIF, 8-channel, 8 kHz and 192 kHz audio) are in the
corpus too: they are converted, and the run must succeed.
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import texsynth_image  # noqa: F401  (built in: a missing plugin must fail, not skip)
from texsynth.cli.commands import main
from texsynth.plugins import get_plugin_manager

FAST_IMAGE = ["--steps", "1", "--seed", "0", "--quiet", "--option", "filters=4"]
FAST_AUDIO = ["--steps", "1", "--seed", "0", "--quiet", "--duration", "0.2"]


@dataclass
class Case:
    build: Callable[[Path], list[str]]
    code: int
    fragment: str
    names_file: str | None = None


def _img(path: Path, mode: str = "RGB", size: tuple[int, int] = (40, 40), **save: object) -> Path:
    rng = np.random.default_rng(0)
    if mode in ("I;16", "I"):
        arr = rng.integers(0, 65535, size[::-1], dtype=np.uint16)
        Image.fromarray(arr).save(path, **save)  # uint16 -> 16-bit greyscale PNG
        return path
    base = Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8))
    base.convert(mode).save(path, **save)
    return path


def _synth(target: Path, out: str = "out.png", extra: list[str] | None = None) -> list[str]:
    fast = FAST_AUDIO if target.suffix in (".wav", ".flac", ".ogg") else FAST_IMAGE
    return ["synthesize", str(target), "-o", str(target.parent / out), *fast, *(extra or [])]


def _wav(path: Path, data: np.ndarray, rate: int = 22050, subtype: str = "FLOAT") -> Path:
    sf.write(path, data, rate, subtype=subtype)
    return path


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).normal(size=t.size)
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32)


def _truncated(path: Path, fmt: str) -> Path:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
                    ).save(buf, fmt)
    data = buf.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupt_png(path: Path) -> Path:
    _img(path, size=(64, 64))
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 8
    for i in range(start, start + 40):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _bomb_png(path: Path) -> Path:
    """A valid PNG header claiming 100000 x 100000 pixels, with almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b""))
    return path


def _animated_gif(path: Path) -> Path:
    frames = [Image.new("RGB", (40, 40), (i * 60, 100, 200 - i * 50)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


class _Evil:
    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return (os.system, ("touch PWNED",))


def _evil_pickle(path: Path) -> Path:
    torch.save({"generator": _Evil()}, path)
    return path


def _output_exists(d: Path) -> list[str]:
    (d / "taken.png").write_bytes(b"keep")
    return ["synthesize", str(_img(d / "ok.png")), "-o", str(d / "taken.png"), *FAST_IMAGE]


def _output_under_file(d: Path) -> list[str]:
    (d / "afile").write_text("x")
    return ["synthesize", str(_img(d / "ok.png")), "-o", str(d / "afile" / "o.png"),
            *FAST_IMAGE]


@pytest.fixture(scope="module")
def image_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ckpt")
    _img(d / "ex.png", size=(48, 48))
    code = main(["train", str(d / "ex.png"), "-o", str(d / "g.ckpt"), "--iterations", "1",
                 "--batch-size", "1", "--size", "32x32", "--scales", "2", "--option",
                 "filters=4", "--seed", "0", "--quiet"])
    assert code == 0
    return d / "g.ckpt"


def _copy_truncated(d: Path, ckpt: Path) -> Path:
    data = ckpt.read_bytes()
    (d / "t.ckpt").write_bytes(data[: len(data) // 2])
    return d / "t.ckpt"


def _retagged(d: Path, ckpt: Path, domain: str) -> Path:
    from texsynth.feedforward.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(ckpt)
    checkpoint.settings["domain"] = domain
    return save_checkpoint(d / f"{domain}.ckpt", checkpoint)


def _settings_claim(d: Path, ckpt: Path, domain: str) -> Path:
    """A copy of ``ckpt`` whose stored settings alone were edited to say ``domain`` (the
    header's JSON rewritten by hand, the tensor data kept)."""
    data = ckpt.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    settings = json.loads(header["__metadata__"]["settings"])
    settings["domain"] = domain
    header["__metadata__"]["settings"] = json.dumps(settings)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    target = d / "it.safetensors"
    target.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + length:])
    return target


FILE_CASES: dict[str, Case] = {
    # images
    "missing-file": Case(lambda d: _synth(d / "nope.png"), 2, "no such file", "nope.png"),
    "directory": Case(lambda d: _synth((d / "dir.png").mkdir() or d / "dir.png"), 2,
                      "is a directory", "dir.png"),
    "zero-bytes-png": Case(lambda d: _synth(((d / "z.png").write_bytes(b"") and d / "z.png")
                                            or d / "z.png"), 2, "is empty (0 bytes)", "z.png"),
    "text-as-png": Case(lambda d: _synth((d / "t.png").write_text("hello") and d / "t.png"),
                        2, "is not an image file", "t.png"),
    "unknown-suffix": Case(lambda d: _synth((d / "x.xyz").write_text("1") and d / "x.xyz"),
                           2, "no domain reads", "x.xyz"),
    "truncated-png": Case(lambda d: _synth(_truncated(d / "tr.png", "PNG")), 2,
                          "image data is truncated or corrupt", "tr.png"),
    "corrupt-png": Case(lambda d: _synth(_corrupt_png(d / "co.png")), 2,
                        "image data is truncated or corrupt", "co.png"),
    "truncated-jpeg": Case(lambda d: _synth(_truncated(d / "tr.jpg", "JPEG")), 2,
                           "image data is truncated or corrupt", "tr.jpg"),
    "corrupt-jpeg": Case(lambda d: _synth((d / "c.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 64)
                                          and d / "c.jpg"), 2, "is not an image file", "c.jpg"),
    "one-by-one": Case(lambda d: _synth(_img(d / "one.png", size=(1, 1))), 2,
                       "is only 1x1 pixels; it must be at least", "one.png"),
    "thin-image": Case(lambda d: _synth(_img(d / "thin.png", size=(400, 2))), 2,
                       "is only 400x2 pixels; it must be at least", "thin.png"),
    "decompression-bomb": Case(lambda d: _synth(_bomb_png(d / "bomb.png")), 2,
                               "possible decompression bomb", "bomb.png"),
    "cmyk-jpeg": Case(lambda d: _synth(_img(d / "cmyk.jpg", "CMYK")), 0, ""),
    "16-bit-png": Case(lambda d: _synth(_img(d / "deep.png", "I;16")), 0, ""),
    "palette-png": Case(lambda d: _synth(_img(d / "pal.png", "P")), 0, ""),
    "grey-alpha-png": Case(lambda d: _synth(_img(d / "la.png", "LA")), 0, ""),
    # an animated GIF is a clip (the video domain recognises it); as a picture, its first
    # frame; this one has too few frames for a clip
    # ... so a picture output makes a picture of its first frame, and a clip output says
    # how to get one
    "animated-gif-to-picture": Case(lambda d: _synth(_animated_gif(d / "anim.gif")), 0, ""),
    "animated-gif-to-clip": Case(lambda d: _synth(_animated_gif(d / "anim.gif"), "out.mp4"), 2,
                                 "clip is 3 frames of 40x40 pixels; it needs at least 4 of "
                                 "each; for a picture from its first frame, read it with the "
                                 "image domain (--domain image)", "anim.gif"),
    "animated-gif-as-picture": Case(lambda d: _synth(_animated_gif(d / "anim2.gif"),
                                                     extra=["--domain", "image"]), 0, ""),
    # audio
    "empty-wav": Case(lambda d: _synth(_wav(d / "e.wav", np.zeros((0, 1), np.float32)),
                                       "o.wav"), 2, "contains no audio samples", "e.wav"),
    "one-sample-wav": Case(lambda d: _synth(_wav(d / "one.wav", np.full((1, 1), 0.5,
                                                                        np.float32)), "o.wav"),
                           2, "is too short", "one.wav"),
    "silent-wav": Case(lambda d: _synth(_wav(d / "s.wav", np.zeros((22050, 1), np.float32)),
                                        "o.wav"), 2, "is digital silence", "s.wav"),
    "nan-wav": Case(lambda d: _synth(_wav(d / "n.wav", np.where(
        np.arange(22050)[:, None] == 7, np.nan, _tone(1.0, 22050)).astype(np.float32)),
        "o.wav"), 2, "NaN or infinite sample", "n.wav"),
    "inf-wav": Case(lambda d: _synth(_wav(d / "i.wav", np.where(
        np.arange(22050)[:, None] == 9, np.inf, _tone(1.0, 22050)).astype(np.float32)),
        "o.wav"), 2, "NaN or infinite sample", "i.wav"),
    "zero-bytes-wav": Case(lambda d: _synth(((d / "z.wav").write_bytes(b"") and d / "z.wav")
                                            or d / "z.wav", "o.wav"), 2, "is empty (0 bytes)",
                           "z.wav"),
    "text-as-wav": Case(lambda d: _synth((d / "t.wav").write_text("RIFF nonsense") and
                                         d / "t.wav", "o.wav"), 2, "is not a sound file",
                        "t.wav"),
    "truncated-wav": Case(lambda d: _synth(
        (d / "tw.wav").write_bytes(_wav(d / "full.wav", _tone(1.0, 22050), subtype="PCM_16")
                                   .read_bytes()[:30]) and d / "tw.wav", "o.wav"),
        2, "is not a sound file", "tw.wav"),
    "mp3-suffix": Case(lambda d: _synth((d / "a.mp3").write_bytes(b"ID3") and d / "a.mp3",
                                        "o.wav"), 2, "no domain reads", "a.mp3"),
    "eight-channel-wav": Case(lambda d: _synth(_wav(d / "8ch.wav", _tone(1.0, 22050, 8)),
                                               "o.wav"), 0, ""),
    "8khz-wav": Case(lambda d: _synth(_wav(d / "lo.wav", _tone(1.0, 8000)), "o.wav"), 0, ""),
    "192khz-wav": Case(lambda d: _synth(_wav(d / "hi.wav", _tone(0.5, 192000)), "o.wav"),
                       0, ""),
    # outputs
    "output-exists": Case(_output_exists, 2, "already exists; pass --overwrite", "taken.png"),
    "output-under-a-file": Case(_output_under_file, 2, "cannot create the output folder",
                                "afile"),
    "output-wrong-suffix": Case(lambda d: _synth(_img(d / "ok.png"), "o.xyz"), 2,
                                "cannot write '.xyz' image files", "o.xyz"),
}

VALUE_CASES: dict[str, tuple[list[str], str]] = {
    "size-0x0": (["--size", "0x0"], "every extent must be positive"),
    "size-huge": (["--size", "100000x100000"], "of memory but only"),
    "size-text": (["--size", "abc"], "is not of the form WxH"),
    "size-3d": (["--size", "4x4x4"], "needs 2 extents separated by"),
    "steps-negative": (["--steps", "-1"], "must be a positive integer"),
    "steps-zero": (["--steps", "0"], "must be a positive integer"),
    "steps-text": (["--steps", "many"], "'many' is not an integer"),
    "unknown-extractor": (["--extractor", "resnet"], "unknown extractor"),
    "extractor-of-other-domain": (["--extractor", "ulyanov"], "does not accept"),
    "unknown-device": (["--device", "toaster"], "unknown device"),
    "cuda-without-cuda": (["--device", "cuda"], "CUDA is not available"),
    "seed-negative": (["--seed", "-5"], "zero or positive"),
    "lr-nan": (["--lr", "nan"], "is not a finite number"),
    "unknown-layer": (["--layers", "relu9_9"], "unknown layer"),
    "layer-weight-text": (["--layer-weights", "k3=heavy"], "must be a number"),
    "layer-weight-unused": (["--layer-weights", "relu1_1=2"], "not in use"),
    "unknown-domain": (["--domain", "hologram"], "unknown domain"),
    "duration-for-image": (["--duration", "3"], "no duration"),
    "bad-option": (["--option", "nonsense"], "is not of the form NAME=VALUE"),
    "normalize-choice": (["--normalize", "l2"], "invalid choice"),
}


def _assert_one_line(code: int, err: str, expected_code: int, fragment: str,
                     names_file: str | None) -> None:
    lines = [line for line in err.strip().splitlines()
             if line.strip() and not line.startswith("texsynth: warning:")]
    assert code == expected_code, err
    assert "Traceback" not in err, err
    if expected_code == 0:
        return
    assert len(lines) == 1, err
    assert fragment in lines[0], lines[0]
    if names_file:
        assert names_file in lines[0], lines[0]


@pytest.mark.parametrize("name", sorted(FILE_CASES))
def test_bad_file(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    case = FILE_CASES[name]
    argv = case.build(tmp_path)
    code = main(argv)
    _assert_one_line(code, capsys.readouterr().err, case.code, case.fragment, case.names_file)


@pytest.mark.parametrize(("out", "frames"), [("out.png", 1), ("out.gif", 3)])
def test_an_animated_gif_makes_what_the_output_names(out: str, frames: int, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    """A picture output reads an animated GIF as a picture (its first frame, with a
    warning); an output of the input's own format keeps it a clip (then too short)."""
    source = _animated_gif(tmp_path / "anim.gif")
    domain = get_plugin_manager().domain_for_path(source,
                                                                   output=tmp_path / out)
    assert domain.name == ("image" if frames == 1 else "video")
    assert get_plugin_manager().domain_for_path(
        source, output=tmp_path / "o.mp4").name == "video"
    if frames == 1:
        assert main(_synth(source, out)) == 0
        assert "using the first frame only" in capsys.readouterr().err
        with Image.open(tmp_path / out) as image:
            assert image.size == (40, 40)
            assert getattr(image, "n_frames", 1) == 1


@pytest.mark.parametrize("name", sorted(VALUE_CASES))
def test_bad_value(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if name == "cuda-without-cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    extra, fragment = VALUE_CASES[name]
    argv = _synth(_img(tmp_path / "ok.png"), extra=extra)
    code = main(argv)
    _assert_one_line(code, capsys.readouterr().err, 2, fragment, None)
    assert not (tmp_path / "out.png").exists()


#: name -> (builder of the command line, fragment of the error, file the error names)
CKPT_CASES: dict[str, tuple[Callable[[Path, Path], list[str]], str, str | None]] = {
    "ckpt-missing": (lambda d, c: ["sample", str(d / "none.ckpt"), "-o", str(d / "o.png")],
                     "no such file", "none.ckpt"),
    "ckpt-truncated": (lambda d, c: ["sample", str(_copy_truncated(d, c)), "-o",
                                     str(d / "o.png")],
                       "truncated or corrupt checkpoint data", "t.ckpt"),
    "ckpt-random-bytes": (lambda d, c: ["sample", str((d / "r.ckpt").write_bytes(
        os.urandom(4096)) and d / "r.ckpt"), "-o", str(d / "o.png")],
        "not a texsynth checkpoint", "r.ckpt"),
    "ckpt-is-an-image": (lambda d, c: ["sample", str(_img(d / "i.png")), "-o",
                                       str(d / "o.png")], "not a texsynth checkpoint", "i.png"),
    "ckpt-pickle-with-code": (lambda d, c: ["sample", str(_evil_pickle(d / "evil.ckpt")),
                                            "-o", str(d / "o.png")],
                              "not a texsynth checkpoint: it looks like a PyTorch pickle",
                              "evil.ckpt"),
    "ckpt-other-domain": (lambda d, c: ["sample", str(_retagged(d, c, "audio")), "-o",
                                        str(d / "o.png")],
                          "corrupt or tampered checkpoint: domain 'audio' makes signals with 1 "
                          "spatial axes, but the stored generator makes 2", "audio.ckpt"),
    "ckpt-claims-video": (lambda d, c: ["sample", str(_retagged(d, c, "video")), "-o",
                                        str(d / "v.png"), "--size", "64x64"],
                          "corrupt or tampered checkpoint: domain 'video' makes signals with 3 "
                          "spatial axes, but the stored generator makes 2", "video.ckpt"),
    "ckpt-settings-disagree-with-header": (
        lambda d, c: ["sample", str(_settings_claim(d, c, "video")), "-o", str(d / "v.png"),
                      "--size", "64x64"],
        "corrupt or tampered checkpoint: domain is 'video' in the settings but 'image' in the "
        "header", "it.safetensors"),
    "ckpt-unknown-domain": (lambda d, c: ["sample", str(_retagged(d, c, "hologram")), "-o",
                                          str(d / "o.png")], "unknown domain 'hologram'", None),
    "ckpt-texture-for-apply": (lambda d, c: ["apply", str(c), str(_img(d / "c.png")), "-o",
                                             str(d / "o.png")],
                               "is a texture generator without content input", "g.ckpt"),
    "ckpt-count-zero": (lambda d, c: ["sample", str(c), "-o", str(d / "o.png"), "-n", "0"],
                        "must be a positive integer", None),
    "ckpt-preview-of-tiles": (lambda d, c: ["sample", str(c), "-o", str(d / "o.png"),
                                            "--size", "64x64", "--tile", "32", "--preview",
                                            str(d / "p.png")],
                              "--preview needs the samples in memory", None),
    "ckpt-preview-not-png": (lambda d, c: ["sample", str(c), "-o", str(d / "o.png"),
                                           "--preview", str(d / "p.gif")],
                             "--preview writes PNG pictures", "p.gif"),
    "ckpt-resume-other-config": (lambda d, c: [
        "train", str(_img(d / "ex.png", size=(48, 48))), "-o", str(_copy(c, d)), "--resume",
        "--iterations", "2", "--scales", "3", "--option", "filters=4", "--quiet"],
        "cannot resume with generator option", "copy.ckpt"),
}


def _copy(ckpt: Path, d: Path) -> Path:
    (d / "copy.ckpt").write_bytes(ckpt.read_bytes())
    return d / "copy.ckpt"


@pytest.mark.parametrize("name", sorted(CKPT_CASES))
def test_bad_checkpoint(name: str, image_checkpoint: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    build, fragment, names_file = CKPT_CASES[name]
    code = main(build(tmp_path, image_checkpoint))
    _assert_one_line(code, capsys.readouterr().err, 2, fragment, names_file)
    assert not (tmp_path / "PWNED").exists(), "a pickled payload ran"


def test_corpus_is_large_enough() -> None:
    assert len(FILE_CASES) + len(VALUE_CASES) + len(CKPT_CASES) >= 40


def test_debug_shows_traceback_for_a_bad_file(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.png").write_text("hello")
    assert main(["--debug", *_synth(tmp_path / "t.png")]) == 2
    assert "Traceback" in capsys.readouterr().err


def _pickle_calls(path: Path) -> list[tuple[str, str]]:
    """The ``(callable, argument)`` pairs a ``torch.save`` file's pickle would call when
    unpickled, read with :mod:`pickletools` (nothing is unpickled)."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    calls = []
    for index, (name, arg) in enumerate(ops):
        if name in ("GLOBAL", "STACK_GLOBAL"):
            strings = [a for n, a in ops[index + 1:] if isinstance(a, str) and "UNICODE" in n]
            calls.append((str(arg), strings[0] if strings else ""))
    return calls


def test_evil_pickle_payload_is_not_unpickled_by_loader(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from texsynth import InputError
    from texsynth.feedforward.checkpoint import load_checkpoint

    monkeypatch.chdir(tmp_path)
    path = _evil_pickle(tmp_path / "evil.ckpt")
    # The payload is live: plain unpickling would run ``system("touch PWNED")`` here.
    assert (f"{os.system.__module__} system", "touch PWNED") in _pickle_calls(path)
    assert not (tmp_path / "PWNED").exists(), "writing the payload must not run it"
    with pytest.raises(InputError, match="never unpickles"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists(), "the loader ran the pickled payload"
