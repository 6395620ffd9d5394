"""``texsynth sample --refine``: feed-forward samples finished by optimisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import texsynth
import texsynth_image
from texsynth import ExtractorConfig, TextureLoss
from texsynth.cli.commands import main
from texsynth.feedforward.checkpoint import load_checkpoint

TRAIN = ["--iterations", "3", "--batch-size", "1", "--size", "32x32", "--scales", "2",
         "--option", "filters=8", "--seed", "0", "--quiet"]


@pytest.fixture
def trained(sample_image, tmp_path: Path, texsynth_plugins) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    exemplar = tmp_path / "grass.png"
    Image.open(sample_image("grass.png")).convert("RGB").resize((48, 48)).save(exemplar)
    ckpt = tmp_path / "grass.ckpt"
    assert main(["train", str(exemplar), "-o", str(ckpt), *TRAIN]) == 0
    return exemplar, ckpt


def _loss(ckpt: Path, exemplar: Path, image: Path) -> float:
    """Texture loss of ``image`` under the loss the checkpoint was trained with."""
    settings = load_checkpoint(ckpt).settings
    domain = texsynth.get_domain("image")
    config = ExtractorConfig.from_dict(settings["extractor"])
    net = texsynth.get_plugin_manager().create_extractor(config, domain)
    with torch.no_grad():
        target = TextureLoss({k: v for k, v in net(domain.load(exemplar)).items()
                              if k in settings["texture_layers"]})
        feats = net(domain.load(image))
        return float(target({k: feats[k] for k in settings["texture_layers"]}))


def test_refine_lowers_the_training_loss_and_is_recorded(trained: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    exemplar, ckpt = trained
    common = ["sample", str(ckpt), "--size", "40x36", "--seed", "4", "-q"]
    assert main([*common, "-o", str(tmp_path / "plain.png")]) == 0
    assert main([*common, "--refine", "15", "-o", str(tmp_path / "refined.png")]) == 0
    plain = np.asarray(Image.open(tmp_path / "plain.png"))
    refined = np.asarray(Image.open(tmp_path / "refined.png"))
    assert plain.shape == refined.shape == (36, 40, 3)
    assert not np.array_equal(plain, refined)
    before = _loss(ckpt, exemplar, tmp_path / "plain.png")
    after = _loss(ckpt, exemplar, tmp_path / "refined.png")
    assert after < 0.5 * before, (before, after)
    meta = texsynth_image.read_metadata(tmp_path / "refined.png")
    assert meta is not None and meta["refine_steps"] == 15
    assert "refine_steps" not in (texsynth_image.read_metadata(tmp_path / "plain.png") or {})


def test_refine_needs_the_exemplar_and_whole_samples(trained: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    exemplar, ckpt = trained
    moved = exemplar.rename(tmp_path / "elsewhere.png")
    out = ["-o", str(tmp_path / "o.png"), "-q"]
    assert main(["sample", str(ckpt), "--refine", "2", *out]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert str(ckpt) in lines[0] and "grass.png" in lines[0] and "--exemplar" in lines[0]
    assert not (tmp_path / "o.png").exists()
    assert main(["sample", str(ckpt), "--refine", "2", "--exemplar", str(moved), *out]) == 0
    assert (tmp_path / "o.png").exists()
    assert main(["sample", str(ckpt), "--refine", "2", "--exemplar", str(moved),
                 "--tile", "16", "--overwrite", *out]) == 2
    assert "--tile" in capsys.readouterr().err
