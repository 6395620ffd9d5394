"""A doodle-conditioned generator: trained on random doodles, it paints a new doodle in
one pass, each region with its exemplar's texture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import texsynth
from texsynth import UsageError
from texsynth.cli.commands import main
from texsynth.controls.doodles import random_doodles

SIZE = 48
TRAIN = {"domain": "image", "doodles": True, "size": (SIZE, SIZE), "iterations": 60,
         "seed": 0, "progress": False, "extractor_options": {"filters": 16}}


def _small(path: Path, size: int = 64) -> torch.Tensor:
    return F.interpolate(texsynth.load(path), size=(size, size), mode="area")


def _greenness(x: torch.Tensor) -> float:
    return float(x[:, 1].mean() - x[:, 0].mean())


@pytest.fixture(scope="module")
def pair(sample_image) -> tuple[torch.Tensor, torch.Tensor]:
    return _small(sample_image("bricks.png")), _small(sample_image("grass.png"))


def _trained(pair, folder: Path, **settings) -> Path:
    """A checkpoint trained with :data:`TRAIN` and ``settings``, on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = folder / "trained.ckpt"
        texsynth.train_generator(list(pair), checkpoint=path, **{**TRAIN, **settings})
    finally:
        torch.set_num_threads(before)
    return path


@pytest.fixture(scope="module")
def doodle_checkpoint(pair, tmp_path_factory) -> Path:
    return _trained(pair, tmp_path_factory.mktemp("doodle"))


def _saved(pair: tuple[torch.Tensor, torch.Tensor], folder: Path) -> list[str]:
    """The pair written as ``bricks.png`` and ``grass.png`` in ``folder``: their paths."""
    files = []
    for name, signal in zip(("bricks.png", "grass.png"), pair, strict=True):
        texsynth.save(signal, folder / name)
        files.append(str(folder / name))
    return files


def _train_from_the_command_line(files: list[str], kind: str, ckpt: Path, steps: int,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", *files, kind, "-o", str(ckpt), "--size", "48x48", "--iterations",
                 str(steps), "--seed", "0", "--quiet", "--option", "filters=8"])
    assert code == 0, capsys.readouterr().err


def _split(height: int, width: int, at: int) -> torch.Tensor:
    """A two-colour guide map ``(3, H, W)``: black left of ``at``, white right."""
    guide = torch.zeros(3, height, width)
    guide[:, :, at:] = 1.0
    return guide


def test_a_doodle_generator_follows_a_new_doodle(doodle_checkpoint, pair) -> None:
    bricks, grass = pair
    assert _greenness(grass) > _greenness(bricks) + 0.05
    guide = _split(SIZE, 2 * SIZE, SIZE)  # wider than training, and no random blob
    out = texsynth.apply(doodle_checkpoint, guide, seed=0).signals
    assert out.shape == (1, 3, SIZE, 2 * SIZE)
    gap = _greenness(grass) - _greenness(bricks)
    left, right = out[..., 4:SIZE - 4], out[..., SIZE + 4:-4]
    assert _greenness(right) - _greenness(left) > 0.5 * gap
    # the doodle decides: paint it the other way round and the regions swap
    swapped = texsynth.apply(doodle_checkpoint, 1.0 - guide, seed=0).signals
    left, right = swapped[..., 4:SIZE - 4], swapped[..., SIZE + 4:-4]
    assert _greenness(left) - _greenness(right) > 0.5 * gap


def test_a_doodle_with_other_regions_is_refused(doodle_checkpoint) -> None:
    three = torch.zeros(3, SIZE, SIZE)
    three[0, :, 16:32] = 1.0
    three[:, :, 32:] = 1.0
    with pytest.raises(UsageError, match=r"the guide has 3 regions \(#000000, #ff0000, "
                                         r"#ffffff\) for 2 exemplar"):
        texsynth.apply(doodle_checkpoint, three, seed=0)


def test_doodles_are_recorded_and_resuming_needs_them(doodle_checkpoint, pair) -> None:
    trained = texsynth.load_trained(doodle_checkpoint)
    assert trained.doodles == {"regions": 2, "names": ["exemplar 1", "exemplar 2"],
                               "palette": None}
    assert trained.generator.config.content_channels == 2
    settings = {**TRAIN, "doodles": False, "iterations": 61}
    with pytest.raises(UsageError, match="is a doodle-conditioned run; pass --doodles to "
                                         "resume it"):
        texsynth.train_generator(list(pair), checkpoint=doodle_checkpoint, resume=True,
                                 **settings)


def test_random_doodles_are_one_hot_blobs_of_every_region() -> None:
    rng = torch.Generator().manual_seed(0)
    doodles = random_doodles(8, 3, (40, 56), generator=rng)
    assert doodles.shape == (8, 3, 40, 56)
    torch.testing.assert_close(doodles.sum(dim=1), torch.ones(8, 40, 56))
    shares = doodles.mean(dim=(2, 3))
    assert float(shares.min()) > 0.05  # every region in every doodle
    again = random_doodles(8, 3, (40, 56), generator=torch.Generator().manual_seed(0))
    assert torch.equal(doodles, again)
    # blobs, not salt and pepper: neighbours mostly agree
    same = (doodles[..., 1:, :] == doodles[..., :-1, :]).all(dim=1).float().mean()
    assert float(same) > 0.8


def test_doodles_from_the_command_line(pair, tmp_path, capsys) -> None:
    files = _saved(pair, tmp_path)
    ckpt = tmp_path / "doodle.ckpt"
    _train_from_the_command_line(files, "--doodles", ckpt, 3, capsys)
    drawing = tmp_path / "drawing.png"
    Image.new("RGB", (72, 48), (0, 0, 0)).save(drawing)
    image = Image.open(drawing)
    image.paste((255, 255, 255), (36, 0, 72, 48))
    image.save(drawing)
    out = tmp_path / "painted.png"
    code = main(["apply", str(ckpt), str(drawing), "-o", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert Image.open(out).size == (72, 48)
    code = main(["apply", str(ckpt), str(drawing), "-o", str(tmp_path / "big.png"),
                 "--size", "96x64", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "big.png").size == (96, 64)


# -- blend generators: a slider between textures ---------------------------------------------
@pytest.fixture(scope="module")
def blend_checkpoint(pair, tmp_path_factory) -> Path:
    return _trained(pair, tmp_path_factory.mktemp("blend"), doodles=False, blends=True)


def test_a_blend_generator_slides_from_one_texture_to_the_other(blend_checkpoint,
                                                                pair) -> None:
    bricks, grass = pair
    weights = (1.0, 0.75, 0.5, 0.25, 0.0)
    results = [texsynth.sample(blend_checkpoint, (SIZE, SIZE), seed=0, blend=[w, 1 - w])
               for w in weights]
    green = [_greenness(r.signals) for r in results]
    span = _greenness(grass) - _greenness(bricks)
    # greener as the grass weight grows; near pure bricks the slider is flat (weights 1 and
    # 0.75 are both about as green as bricks, their order is noise)
    assert green[2:] == sorted(green[2:]), green
    assert min(green[2:]) > max(green[:2]), green
    assert green[-1] - green[0] > 0.5 * span
    assert results[1].settings[0]["blend"] == [0.75, 0.25]
    assert texsynth.load_trained(blend_checkpoint).is_stylizer is False


@pytest.mark.parametrize(("blend", "message"), [
    ([1.0], "1 blend weights for a generator of 2 exemplars"),
    ([1.0, -1.0], "blend weights must be non-negative numbers"),
])
def test_bad_blend_weights_are_refused(blend_checkpoint, blend, message) -> None:
    with pytest.raises(UsageError, match=message):
        texsynth.sample(blend_checkpoint, (SIZE, SIZE), seed=0, blend=blend)


def test_blend_sets_draw_weights_on_the_simplex() -> None:
    from texsynth.controls.doodles import BlendSet

    codes = BlendSet(3).batch(64, (8, 8), torch.Generator().manual_seed(0))
    assert codes.shape == (64, 3, 8, 8)
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(64, 8, 8))
    assert torch.equal(codes, codes[..., :1, :1].expand_as(codes))  # constant maps
    alone = (codes[:, :, 0, 0] == 1).any(dim=1).float().mean()
    assert 0.1 < float(alone) < 0.5  # some samples are one exemplar alone


def test_blends_from_the_command_line(pair, tmp_path, capsys) -> None:
    files = _saved(pair, tmp_path)
    ckpt = tmp_path / "blend.ckpt"
    _train_from_the_command_line(files, "--blends", ckpt, 2, capsys)
    out = tmp_path / "mix.png"
    code = main(["sample", str(ckpt), "--blend", "1,3", "-o", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    from texsynth_image import read_metadata

    meta = read_metadata(out)
    assert meta is not None and meta["blend"] == [0.25, 0.75]


def _with_training(source: Path, target: Path, key: str, value: object) -> Path:
    """A copy of a checkpoint whose ``settings.training[key]`` is ``value`` (the tensor
    data byte for byte: a tampered file, as an attacker would make it)."""
    import json

    data = source.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    settings = json.loads(header["__metadata__"]["settings"])
    settings["training"][key] = value
    header["__metadata__"]["settings"] = json.dumps(settings)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    target.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + length:])
    return target


@pytest.mark.parametrize("value", [
    {"regions": 5, "names": [], "palette": None},
    {"regions": 2, "names": [], "palette": [["x"], ["y"]]},
    {"regions": 2, "names": [], "palette": [[0.0, 0.0, 0.0]]},
    {"regions": "two", "names": [], "palette": None},
])
def test_tampered_doodle_settings_are_refused(doodle_checkpoint, tmp_path, value) -> None:
    bad = _with_training(doodle_checkpoint, tmp_path / "bad.ckpt", "doodles", value)
    with pytest.raises(texsynth.InputError, match="corrupt or tampered checkpoint: "
                                                  r"training\.doodles"):
        texsynth.apply(bad, _split(SIZE, SIZE, SIZE // 2), seed=0)


def test_sampling_a_doodle_generator_points_to_apply(doodle_checkpoint, capsys) -> None:
    with pytest.raises(UsageError, match="is a doodle generator; apply it to a doodle"):
        texsynth.sample(doodle_checkpoint, (SIZE, SIZE), seed=0)
    code = main(["sample", str(doodle_checkpoint), "-o", "x.png"])
    assert code == 2
    assert f"use 'texsynth apply {doodle_checkpoint} DOODLE -o OUT'" in capsys.readouterr().err


def test_doodle_training_needs_the_gram_loss(pair) -> None:
    with pytest.raises(UsageError, match="per-batch guides \\(doodle training\\) need the "
                                         "gram texture loss, not 'sw'"):
        texsynth.train_generator(list(pair), **{**TRAIN, "iterations": 1},
                                 texture_loss="sw")
