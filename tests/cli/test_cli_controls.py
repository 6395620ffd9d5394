"""The controls from the command line: blends ``FILE:W``, ``--guide``,
``--exemplar-guide``, ``--exemplar-scale`` and ``--preserve-color``, and their one-line
errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import texsynth_image  # noqa: F401  (built in: a missing plugin must fail, not skip)
from texsynth.cli.commands import main
from texsynth_image import read_metadata

FAST = ["--steps", "3", "--seed", "3", "--quiet", "--option", "filters=8", "--levels", "1"]


def _small(src: Path, dst: Path, size: int = 40) -> Path:
    Image.open(src).convert("RGB").resize((size, size), Image.Resampling.LANCZOS).save(dst)
    return dst


@pytest.fixture
def pair(sample_image, tmp_path: Path) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    return (_small(sample_image("bricks.png"), tmp_path / "bricks.png"),
            _small(sample_image("grass.png"), tmp_path / "grass.png"))


def _doodle(path: Path, width: int = 48, height: int = 32) -> Path:
    image = Image.new("RGB", (width, height), (0, 0, 0))
    image.paste((255, 255, 255), (width // 2, 0, width, height))
    image.save(path)
    return path


def _error(code: int, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_blend_weights_from_the_command_line(pair, tmp_path, capsys) -> None:
    out = tmp_path / "blend.png"
    code = main(["synthesize", f"{pair[0]}:3", f"{pair[1]}:1", "-o", str(out),
                 "--size", "32x32", *FAST])
    assert code == 0, capsys.readouterr().err
    meta = read_metadata(out)
    assert meta is not None and meta["exemplar_weights"] == [0.75, 0.25]
    assert [Path(p).name for p in meta["exemplars"]] == ["bricks.png", "grass.png"]


def test_a_doodle_guide_from_the_command_line(pair, tmp_path, capsys) -> None:
    out = tmp_path / "doodle.png"
    doodle = _doodle(tmp_path / "guide.png")
    code = main(["synthesize", str(pair[0]), str(pair[1]), "-o", str(out), "--guide",
                 str(doodle), "--size", "48x32", *FAST])
    assert code == 0, capsys.readouterr().err
    meta = read_metadata(out)
    assert meta is not None and meta["regions"] == ["#000000", "#ffffff"]
    assert Image.open(out).size == (48, 32)


def test_preserve_color_and_exemplar_scale_from_the_command_line(pair, tmp_path,
                                                                 capsys) -> None:
    out = tmp_path / "kept.png"
    code = main(["stylize", str(pair[1]), str(pair[0]), "-o", str(out), "--preserve-color",
                 "luminance", "--exemplar-scale", "1.5", *FAST])
    assert code == 0, capsys.readouterr().err
    meta = read_metadata(out)
    assert meta is not None
    assert meta["preserve_color"] == "luminance" and meta["exemplar_scale"] == 1.5


@pytest.mark.parametrize(("extra", "message"), [
    (["--preserve-color", "sepia"], "no colour preservation 'sepia' (modes: histogram, "
                                    "luminance)"),
    (["--guide", "nowhere.png"], "nowhere.png"),
    (["--exemplar-scale", "-2"], "the exemplar scale must be a positive number, got -2"),
    (["--exemplar-guide", "{tmp}/x.png"], "exemplar guides need the output's guide too"),
])
def test_bad_controls_are_one_line_errors(pair, tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "out.png"
    (tmp_path / "x.png").write_bytes(pair[0].read_bytes())
    extra = [item.replace("{tmp}", str(tmp_path)) for item in extra]
    code = main(["stylize", str(pair[1]), str(pair[0]), "-o", str(out), *extra, *FAST])
    line = _error(code, capsys.readouterr().err)
    assert message in line
    assert not out.exists()


def test_weights_on_some_exemplars_only_are_refused(pair, tmp_path, capsys) -> None:
    code = main(["synthesize", f"{pair[0]}:0.5", str(pair[1]), "-o",
                 str(tmp_path / "o.png"), *FAST])
    assert "give every exemplar a blend weight" in _error(code, capsys.readouterr().err)


def test_a_guide_with_more_regions_than_exemplars_is_refused(pair, tmp_path, capsys) -> None:
    doodle = tmp_path / "three.png"
    image = Image.new("RGB", (48, 48), (0, 0, 0))
    image.paste((255, 0, 0), (16, 0, 32, 48))
    image.paste((255, 255, 255), (32, 0, 48, 48))
    image.save(doodle)
    code = main(["synthesize", str(pair[0]), str(pair[1]), "-o", str(tmp_path / "o.png"),
                 "--guide", str(doodle), *FAST])
    line = _error(code, capsys.readouterr().err)
    assert "the guide has 3 regions (#000000, #ff0000, #ffffff) for 2 exemplar(s)" in line
