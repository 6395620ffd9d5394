"""Feed-forward clips: a 3-D pyramid generator trained and sampled from the command line,
whose samples loop in time, tile in space and stream past the training length."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from texsynth.cli.commands import main
from texsynth.feedforward.checkpoint import load_generator
from texsynth_video import read_clip, write_clip

SMALL = ["--option", "appearance=3:3@2", "--option", "dynamics=3x3:3x3@2",
         "--option", "filters=6", "--option", "pooled_filters=6"]


@pytest.fixture
def clip_file(tmp_path: Path) -> Path:
    """16 frames of 24×24 pixels, stripes drifting one pixel per frame, at 8 fps."""
    t = torch.arange(16).view(16, 1, 1).float()
    y = torch.arange(24).view(1, 24, 1).float()
    x = torch.arange(24).view(1, 1, 24).float()
    phase = 2 * torch.pi * (x - t) / 6 + torch.sin(y / 4)
    clip = torch.stack([0.5 + 0.4 * torch.sin(phase), 0.5 + 0.3 * torch.cos(phase),
                        0.4 + 0.1 * torch.sin(2 * phase)])
    return write_clip(tmp_path / "stripes.apng", clip, 8.0)


def _train(clip: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(clip), "-o", str(ckpt), "--iterations", "3", "--batch-size",
                 "1", "--seed", "0", "--quiet", "--size", "8x16x16", "--generator-option",
                 "num_scales=2", *SMALL])
    assert code == 0, capsys.readouterr().err


def test_generator_is_three_dimensional_and_samples_loop_and_tile(
        clip_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "clip.ckpt"
    _train(clip_file, ckpt, capsys)
    _, meta = load_generator(ckpt)
    assert meta["generator"]["spatial_dims"] == 3
    assert meta["training"]["size"] == [8, 16, 16]
    assert meta["domain_config"]["fps"] == pytest.approx(8.0)

    out = tmp_path / "sample.apng"
    code = main(["sample", str(ckpt), "-o", str(out), "--size", "12x20x16", "--seed", "1",
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    clip, fps, _ = read_clip(out)
    assert clip.shape == (3, 12, 16, 20) and fps == pytest.approx(8.0)

    # the generator is a torus in every axis: the sample of a doubled size is the same
    # texture twice along time (noise of a doubled torus differs, so compare wraps instead)
    steps = (clip[:, 1:] - clip[:, :-1]).abs().mean()
    wrap = (clip[:, 0] - clip[:, -1]).abs().mean()
    assert wrap < 2.0 * steps + 1e-3
    rows = (clip[:, :, 1:] - clip[:, :, :-1]).abs().mean()
    assert (clip[:, :, 0] - clip[:, :, -1]).abs().mean() < 2.0 * rows + 1e-3


def test_stream_makes_a_clip_longer_than_the_training_crop(
        clip_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "clip.ckpt"
    _train(clip_file, ckpt, capsys)
    out = tmp_path / "long.apng"
    code = main(["sample", str(ckpt), "-o", str(out), "--stream", "--size", "40x16x16",
                 "--seed", "2", "--quiet"])
    assert code == 0, capsys.readouterr().err
    clip, fps, metadata = read_clip(out)
    assert clip.shape == (3, 40, 16, 16) and fps == pytest.approx(8.0)
    assert metadata is not None and metadata.get("stream") is True
    whole = tmp_path / "whole.apng"
    assert main(["sample", str(ckpt), "-o", str(whole), "--size", "40x16x16", "--seed", "2",
                 "--quiet"]) == 0
    same, _, _ = read_clip(whole)
    assert (same - clip).abs().max() <= 1.5 / 255  # streamed = the whole sample
    encoded = tmp_path / "long.mp4"  # and encoded as it comes
    assert main(["sample", str(ckpt), "-o", str(encoded), "--stream", "--size", "40x16x16",
                 "--seed", "2", "--quiet"]) == 0
    assert read_clip(encoded)[0].shape == (3, 40, 16, 16)
