"""Reorganising the code changes no result: tiny runs of every method, through the public
API, give the outputs stored in ``tests/data/same_outputs.safetensors``.

The stored outputs were made by this same code before the library was split into
sub-packages. ``python tests/test_same_outputs.py`` remakes the file, for a change that
is *meant* to change results (say so in its commit).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import texsynth

HERE = Path(__file__).resolve().parent
STORED = HERE / "data" / "same_outputs.safetensors"
DATA = HERE.parent / "examples" / "data"


def _picture(name: str, size: int) -> torch.Tensor:
    image = texsynth.load(DATA / name)
    return F.interpolate(image, size=(size, size), mode="area")


def _synthesize() -> torch.Tensor:
    return texsynth.synthesize(_picture("grass.png", 32), domain="image", size=(24, 28),
                               steps=5, seed=0, progress=False, device="cpu").signal


def _coarse_to_fine_patches() -> torch.Tensor:
    return texsynth.synthesize(_picture("bricks.png", 64), domain="image", size=(64, 64),
                               extractor="patches", texture_loss="sw", levels=2, steps=4, seed=1,
                               optimizer="adam", progress=False, device="cpu").signal


def _stylize() -> torch.Tensor:
    return texsynth.stylize(_picture("wood.png", 24), [_picture("gravel.png", 32)],
                            domain="image", steps=3, seed=2, progress=False,
                            device="cpu").signal


def _sound() -> torch.Tensor:
    audio = texsynth.get_domain("audio")
    clip = audio.load(DATA / "rain.wav")[..., :8192]
    return texsynth.synthesize(clip, domain=audio, size=(4096,), steps=3, seed=3,
                               progress=False, device="cpu").signal


def _feedforward(tmp: Path) -> torch.Tensor:
    texsynth.train_generator(_picture("grass.png", 32), domain="image", size=(32, 32),
                             iterations=2, batch_size=1, seed=4, device="cpu",
                             generator_options={"num_scales": 2, "channels": 4},
                             checkpoint=tmp / "g.ckpt", progress=False)
    return texsynth.sample(tmp / "g.ckpt", (40, 36), seed=5, count=2).signals


RUNS: dict[str, Callable[[Path], torch.Tensor]] = {
    "synthesize": lambda tmp: _synthesize(),
    "coarse_to_fine_patches": lambda tmp: _coarse_to_fine_patches(),
    "stylize": lambda tmp: _stylize(),
    "sound": lambda tmp: _sound(),
    "feedforward": _feedforward,
}


@pytest.fixture(scope="module")
def stored() -> dict[str, torch.Tensor]:
    return load_file(STORED)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_output_is_the_stored_one(name: str, stored: dict[str, torch.Tensor],
                                      tmp_path: Path) -> None:
    torch.set_num_threads(1)
    output = RUNS[name](tmp_path).detach().float().cpu()
    assert output.shape == stored[name].shape
    # bit for bit on the machine that stored them; a hair's tolerance for other CPUs' kernels
    torch.testing.assert_close(output, stored[name], rtol=0.0, atol=1e-5)


def main() -> None:
    import tempfile

    torch.set_num_threads(1)
    outputs = {}
    for name, run in RUNS.items():
        with tempfile.TemporaryDirectory() as tmp:
            outputs[name] = run(Path(tmp)).detach().float().cpu().contiguous()
        print(name, tuple(outputs[name].shape), file=sys.stderr)
    STORED.parent.mkdir(exist_ok=True)
    save_file(outputs, STORED)
    print(f"wrote {STORED}", file=sys.stderr)


if __name__ == "__main__":
    main()
