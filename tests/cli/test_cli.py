"""The command line end to end on real files, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import texsynth_image  # noqa: F401  (built in: a missing plugin must fail, not skip)
from texsynth.cli.commands import main

FAST = ["--steps", "4", "--seed", "3", "--quiet", "--option", "filters=8"]


def _small_copy(src: Path, dst: Path, size: int = 48) -> Path:
    Image.open(src).convert("RGB").resize((size, size), Image.Resampling.LANCZOS).save(dst)
    return dst


@pytest.fixture
def bricks(sample_image, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    return _small_copy(sample_image("bricks.png"), tmp_path / "bricks.png")


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def test_synthesize_end_to_end_in_a_subprocess(bricks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    proc = subprocess.run(
        [sys.executable, "-m", "texsynth", "synthesize", str(bricks), "-o", str(out),
         "--size", "64x40", *FAST],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.size == (64, 40)
        settings = json.loads(img.text["texsynth"])  # type: ignore[attr-defined]
    assert settings["seed"] == 3
    assert settings["size"] == "64x40"
    assert settings["extractor"]["name"] == "random-multiscale"


def test_save_every_and_preview(bricks: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.png"
    code, err = _run(["synthesize", str(bricks), "-o", str(out), "--save-every", "2",
                      "--preview", str(tmp_path / "cmp.png"), *FAST], capsys)
    assert code == 0, err
    assert (tmp_path / "o_step00002.png").is_file()
    assert (tmp_path / "o_step00004.png").is_file()
    with Image.open(tmp_path / "cmp.png") as img:
        assert img.width > 2 * 48


def test_stylize_end_to_end(bricks: Path, sample_image, tmp_path: Path,  # type: ignore[no-untyped-def]
                            capsys: pytest.CaptureFixture[str]) -> None:
    content = _small_copy(sample_image("wood.png"), tmp_path / "content.png", 40)
    out = tmp_path / "styled.png"
    code, err = _run(["stylize", str(content), str(bricks), "-o", str(out),
                      "--content-weight", "1", "--style-weight", "100", *FAST], capsys)
    assert code == 0, err
    with Image.open(out) as img:
        assert img.size == (40, 40)
        settings = json.loads(img.text["texsynth"])  # type: ignore[attr-defined]
    assert settings["command"] == "stylize"
    assert settings["style_weight"] == 100.0


def test_plugins_lists_image_plugin_from_its_entry_point(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "entry point texsynth:image = texsynth_image.hooks" in out
    for name in ("random-multiscale", "vgg19", "vgg19-random", "domain image"):
        assert name in out
    assert main(["plugins", "--json"]) == 0
    data = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert "image" in data["image"]["domains"]


def _one_line_error(code: int, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _truncated_png(path: Path) -> Path:
    buf = path.with_suffix(".full.png")
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf)
    data = buf.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "extra", "expected"),
    [
        (lambda d: d / "missing.png", [], "missing.png: no such file"),
        (lambda d: (d / "notimage.png").write_text("hello") and d / "notimage.png", [],
         "notimage.png"),
        (_truncated_png, [], "trunc"),
        (lambda d: Image.new("RGB", (1, 1)).save(d / "tiny.png") or d / "tiny.png", [],
         "tiny.png"),
        (lambda d: d, [], "is a directory"),
        (None, ["--size", "0x0"], "positive"),
        (None, ["--size", "big"], "WxH"),
        (None, ["--size", "100000x100000"], "--no-memory-check"),
        (None, ["--extractor", "nope"], "available:"),
        (None, ["--device", "toaster"], "unknown device"),
        (None, ["--layers", "relu9_9"], "unknown layer"),
    ],
    ids=["missing", "not-an-image", "truncated", "1x1", "directory", "size-0x0", "size-text",
         "size-huge", "unknown-extractor", "unknown-device", "unknown-layer"],
)
def test_bad_inputs_give_one_line_and_exit_2(make, extra, expected, bricks: Path,  # type: ignore[no-untyped-def]
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    target = bricks if make is None else make(tmp_path / "trunc.png" if make is _truncated_png
                                              else tmp_path)
    code, err = _run(["synthesize", str(target), "-o", str(tmp_path / "o.png"), *extra,
                      *FAST], capsys)
    assert expected in _one_line_error(code, err)
    assert not (tmp_path / "o.png").exists()


def test_negative_steps_and_existing_output(bricks: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["synthesize", str(bricks), "-o", str(tmp_path / "o.png"),
                      "--steps", "-3"], capsys)
    assert "positive" in _one_line_error(code, err)
    existing = tmp_path / "exists.png"
    existing.write_bytes(b"keep me")
    code, err = _run(["synthesize", str(bricks), "-o", str(existing), *FAST], capsys)
    assert "--overwrite" in _one_line_error(code, err)
    assert existing.read_bytes() == b"keep me"
    code, err = _run(["synthesize", str(bricks), "-o", str(tmp_path / "o.xyz"), *FAST], capsys)
    assert "o.xyz" in _one_line_error(code, err)


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.png").write_text("not a png")
    code = main(["--debug", "synthesize", str(tmp_path / "bad.png"), "-o",
                 str(tmp_path / "o.png"), *FAST])
    assert code == 2
    assert "Traceback" in capsys.readouterr().err


def test_output_is_not_written_on_interrupt(bricks: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import texsynth.optim.runner as optimize

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(optimize, "run_optimization", interrupted)
    code = main(["synthesize", str(bricks), "-o", str(tmp_path / "o.png"), *FAST])
    assert code == 130
    assert list(tmp_path.iterdir()) == [bricks]


def test_levels_and_blocks_from_the_command_line(bricks: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c2f.png"
    code, err = _run(["synthesize", str(bricks), "-o", str(out), "--size", "64x64",
                      "--seed", "1", "--quiet", "--levels", "2", "--level-steps", "3,2",
                      "--block", "32", "--option", "filters=8"], capsys)
    assert code == 0, err
    with Image.open(out) as img:
        settings = json.loads(img.text["texsynth"])  # type: ignore[attr-defined]
    assert settings["levels"] == 2 and settings["level_steps"] == [3, 2]
    assert settings["block"] == 32
    code, err = _run(["synthesize", str(bricks), "-o", str(tmp_path / "x.png"),
                      "--levels", "2", "--level-steps", "3", *FAST], capsys)
    assert "--level-steps" in _one_line_error(code, err)
