"""texsynth.sample / refine / apply / sample_to_file: what ``texsynth sample`` and
``texsynth apply`` do, as Python calls, and the CLI's mapping of parameter names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import texsynth
from texsynth import InputError, UsageError
from texsynth.cli.options import error_text
from texsynth.feedforward.sample_files import tile_extent
from texsynth.feedforward.tiled import AUTO_TILE_POSITIONS, default_tile


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny texture generator trained on a copy of an example exemplar."""
    folder = tmp_path_factory.mktemp("trained")
    exemplar = folder / "bricks.png"
    source = Path(__file__).resolve().parents[2] / "examples" / "data" / "bricks.png"
    Image.open(source).convert("RGB").resize((40, 40)).save(exemplar)
    ckpt = folder / "bricks.ckpt"
    texsynth.train_generator(exemplar, size=(32, 32), iterations=2, batch_size=1, seed=0,
                             device="cpu", checkpoint=ckpt, progress=False,
                             generator_options={"num_scales": 2},
                             extractor_options={"filters": 4})
    return exemplar, ckpt


def test_sample_returns_signals_and_their_settings(trained: tuple[Path, Path]) -> None:
    _, ckpt = trained
    result = texsynth.sample(ckpt, (24, 20), seed=5, count=2)
    assert result.signals.shape == (2, 3, 24, 20)
    assert torch.equal(result.signals, texsynth.sample_generator(ckpt, (24, 20), seed=5,
                                                                 count=2))
    assert [s["index"] for s in result.settings] == [0, 1]
    first = result.settings[0]
    assert first["seed"] == 5 and first["size"] == "20x24" and first["command"] == "sample"
    assert first["checkpoint"] == str(ckpt) and first["trained_steps"] == 2
    drawn = texsynth.sample(ckpt, (24, 20))  # a drawn seed is recorded and reproduces
    again = texsynth.sample(ckpt, (24, 20), seed=drawn.settings[0]["seed"])
    assert torch.equal(drawn.signals, again.signals)


def test_refine_lowers_the_loss_and_keeps_the_size(trained: tuple[Path, Path]) -> None:
    exemplar, ckpt = trained
    start = texsynth.sample(ckpt, (24, 24), seed=1).signals
    result = texsynth.refine(ckpt, start, steps=6, seed=1, device="cpu")
    assert result.signal.shape == start.shape
    assert result.losses[-1] < result.losses[0]
    assert result.settings["exemplars"] == [str(exemplar)]
    refined = texsynth.sample(ckpt, (24, 24), seed=1, refine_steps=3, device="cpu")
    assert refined.settings[0]["refine_steps"] == 3
    assert not torch.equal(refined.signals, start)


def test_refine_without_the_exemplar_names_checkpoint_file_and_remedy(
        trained: tuple[Path, Path], tmp_path: Path) -> None:
    exemplar, ckpt = trained
    moved = tmp_path / "moved.png"
    moved.write_bytes(exemplar.read_bytes())
    exemplar.unlink()
    try:
        start = texsynth.sample(ckpt, (16, 16), seed=0).signals
        with pytest.raises(InputError) as caught:
            texsynth.refine(ckpt, start, steps=1)
        message = str(caught.value)
        assert message.startswith(f"{ckpt}:") and "bricks.png" in message
        assert "pass exemplars" in message
        assert "pass --exemplar FILE" in error_text(caught.value)
        assert error_text(caught.value).count("--refine") == 1
        result = texsynth.refine(ckpt, start, steps=1, exemplars=[moved], device="cpu")
        assert result.signal.shape == start.shape
    finally:
        exemplar.write_bytes(moved.read_bytes())


def test_apply_refuses_a_texture_generator(trained: tuple[Path, Path]) -> None:
    exemplar, ckpt = trained
    with pytest.raises(UsageError, match="texture generator without content input"):
        texsynth.apply(ckpt, exemplar)


def test_tile_policy(trained: tuple[Path, Path]) -> None:
    _, ckpt = trained
    generator = texsynth.load_trained(ckpt).generator
    assert tile_extent(generator, (64, 64)) == 0
    side = int(AUTO_TILE_POSITIONS ** 0.5) + 1
    assert tile_extent(generator, (side, side)) == default_tile(2)
    assert tile_extent(generator, (side, side), tile=0) == 0
    assert tile_extent(generator, (64, 64), tile=16) == 16


def test_sample_to_file_writes_the_sample(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, ckpt = trained
    trained_gen = texsynth.load_trained(ckpt)
    whole = tmp_path / "whole.png"
    result = texsynth.sample(trained_gen, (40, 36), seed=3, count=2)
    trained_gen.domain.save(result.signals[1:2], whole)
    tiled = tmp_path / "tiled.png"
    settings = texsynth.sample_to_file(trained_gen, tiled, (40, 36), seed=3, index=1, tile=16)
    assert settings["tile"] == 16 and settings["index"] == 1 and settings["seed"] == 3
    a = np.asarray(Image.open(whole), dtype=np.int16)
    b = np.asarray(Image.open(tiled), dtype=np.int16)
    assert a.shape == b.shape == (40, 36, 3)
    assert np.abs(a - b).max() <= 1  # equal up to float rounding at 8 bits


def test_error_text_names_flags_for_parameters() -> None:
    assert error_text(UsageError("steps must be at least 1, got 0", parameter="steps")) \
        == "--steps must be at least 1, got 0"
    both = UsageError("use a smaller size, or pass memory_check=False to try anyway",
                      parameter=("size", "memory_check=False"))
    assert error_text(both) == "use a smaller --size, or pass --no-memory-check to try anyway"
    # only the parameter itself, not a longer word that contains it, and only if given
    assert error_text(UsageError("sizes of steps", parameter="steps")) == "sizes of --steps"
    assert error_text(UsageError("steps must be positive")) == "steps must be positive"
    assert error_text(UsageError("x", parameter="unmapped")) == "x"


def test_tiled_sampling_without_a_seed_records_the_drawn_one(trained: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    import texsynth_image
    from texsynth.cli.commands import main

    _, ckpt = trained
    outs = [tmp_path / "t_001.png", tmp_path / "t_002.png"]
    assert main(["sample", str(ckpt), "-o", str(tmp_path / "t.png"), "--size", "40x40",
                 "--tile", "16", "-n", "2", "--quiet"]) == 0
    seeds = {texsynth_image.read_metadata(p)["seed"] for p in outs}  # type: ignore[index]
    assert len(seeds) == 1  # both samples of one seed
    seed = seeds.pop()
    whole = texsynth.sample(ckpt, (40, 40), seed=seed, count=2).signals
    got = np.asarray(Image.open(outs[1]), dtype=np.int16)
    want = (whole[1].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.int16)
    assert np.abs(got - want).max() <= 1
