"""Generator checkpoints: exact round trips, and bad files are one-line ``InputError``s."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch

from texsynth import GeneratorConfig, InputError, PluginManager
from texsynth.feedforward.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    load_checkpoint,
    load_generator,
    save_checkpoint,
)
from texsynth.feedforward.pyramid import PyramidGenerator
from texsynth.feedforward.sampling import generate as sample
from texsynth.runtime.rng import capture_rng_state, restore_rng_state

#: Only the core's registrations: these tests need no plugin.
CORE = PluginManager(load_entry_points=False)



def trained_state(content: int = 0) -> tuple[PyramidGenerator, torch.optim.Optimizer,
                                             torch.optim.lr_scheduler.StepLR]:
    """A small generator after two Adam steps (so batch-norm statistics and moments move)."""
    torch.manual_seed(0)
    gen = PyramidGenerator(GeneratorConfig("pyramid", 2, 3, content, {"num_scales": 3}))
    opt = torch.optim.Adam(gen.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        noise = gen.make_noise(2, (16, 16))
        content_signal = torch.rand(2, content, 16, 16) if content else None
        loss = gen(noise, content_signal).var()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return gen, opt, sched


def write(path: Path, content: int = 0) -> tuple[PyramidGenerator, Checkpoint]:
    gen, opt, sched = trained_state(content)
    ckpt = Checkpoint(
        settings={"domain": "image", "seed": 3, "generator": gen.config.to_dict(),
                  "extractor": {"name": "random-multiscale", "layers": ["k3"], "seed": 3,
                                "weights": None, "options": {}},
                  "texture_layers": ["k3"], "content_layers": [],
                  "loss": {"texture_loss": "gram", "normalize": "chw"},
                  "training": {"size": [16, 16], "batch_size": 2}},
        step=2, generator_state=gen.state_dict(), losses=[0.5, 0.25],
        optimizer_state=opt.state_dict(), scheduler_state=sched.state_dict(),
        rng_state=capture_rng_state())
    save_checkpoint(path, ckpt)
    return gen, ckpt


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, PyramidGenerator, Checkpoint]:
    path = tmp_path / "gen.safetensors"
    gen, ckpt = write(path)
    return path, gen, ckpt


def test_round_trip_gives_identical_samples(saved: tuple[Path, PyramidGenerator, Checkpoint]
                                            ) -> None:
    path, gen, _ = saved
    loaded, meta = load_generator(path, domain="image", manager=CORE)
    assert not loaded.training
    assert meta["step"] == 2
    assert meta["losses"] == [0.5, 0.25]
    assert meta["generator"] == gen.config.to_dict()
    for size in [(16, 16), (21, 30)]:
        expected = sample(gen, size, seed=11, count=2)
        assert torch.equal(sample(loaded, size, seed=11, count=2), expected)
        assert torch.equal(sample(path, size, seed=11, count=2, manager=CORE), expected)
    assert not torch.equal(sample(path, (16, 16), seed=12, manager=CORE),
                           sample(path, (16, 16), seed=11, manager=CORE))
    assert gen.training  # sample() put the generator back in its own mode


def test_training_state_round_trips(saved: tuple[Path, PyramidGenerator, Checkpoint]) -> None:
    path, gen, ckpt = saved
    loaded = load_checkpoint(path)
    assert loaded.step == 2
    assert loaded.settings == ckpt.settings
    assert loaded.scheduler_state == ckpt.scheduler_state
    opt = torch.optim.Adam(gen.parameters(), lr=0.01)
    assert loaded.optimizer_state is not None
    opt.load_state_dict(loaded.optimizer_state)  # loads into a real optimiser
    original, restored = ckpt.optimizer_state, opt.state_dict()
    assert original is not None
    assert restored["param_groups"] == original["param_groups"]
    for index, state in original["state"].items():
        for key, value in state.items():
            assert torch.equal(restored["state"][index][key], value)


def test_rng_states_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "rng.ckpt"
    _, ckpt = write(path)
    assert ckpt.rng_state is not None
    restore_rng_state(ckpt.rng_state)
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    loaded = load_checkpoint(path).rng_state
    assert loaded is not None
    restore_rng_state(loaded)
    assert random.random() == expected[0]
    assert np.random.rand() == expected[1]
    assert torch.equal(torch.rand(3), expected[2])


def test_stylisation_generator_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "style.ckpt"
    gen, _ = write(path, content=3)
    content = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    expected = sample(gen, seed=4, content=content)
    assert expected.shape == (1, 3, 20, 24)
    assert torch.equal(sample(path, seed=4, content=content, manager=CORE), expected)


def _assert_input_error(path: Path, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))


def test_missing_file(tmp_path: Path) -> None:
    _assert_input_error(tmp_path / "nope.ckpt", "no such checkpoint")


def test_truncated_file(saved: tuple[Path, PyramidGenerator, Checkpoint]) -> None:
    path = saved[0]
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 1, 200, 4, 0):
        path.write_bytes(data[:cut])
        _assert_input_error(path, "truncated|not a texsynth checkpoint|corrupt")


def test_corrupt_tensor_data_is_caught_by_the_checksum(
        saved: tuple[Path, PyramidGenerator, Checkpoint]) -> None:
    path = saved[0]
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # inside the tensor data, after the header
    path.write_bytes(bytes(data))
    _assert_input_error(path, "checksum")


def test_corrupt_header(saved: tuple[Path, PyramidGenerator, Checkpoint]) -> None:
    path = saved[0]
    data = bytearray(path.read_bytes())
    data[20:40] = b"\x00" * 20
    path.write_bytes(bytes(data))
    _assert_input_error(path, "corrupt|not a texsynth checkpoint")


def test_foreign_files(tmp_path: Path) -> None:
    other = tmp_path / "model.safetensors"
    safetensors.torch.save_file({"weight": torch.zeros(3)}, str(other),
                                metadata={"format": "pt"})
    _assert_input_error(other, "not a texsynth checkpoint")
    text = tmp_path / "notes.ckpt"
    text.write_text("hello, this is not a checkpoint at all")
    _assert_input_error(text, "not a texsynth checkpoint")
    saved_by_torch = tmp_path / "torch.pt"
    torch.save({"weight": torch.zeros(3)}, saved_by_torch)
    _assert_input_error(saved_by_torch, "pickle")


class _Payload:
    """Unpickling this creates a marker file: proof that code from the file ran."""

    marker: Path

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    raw = tmp_path / "evil.ckpt"
    raw.write_bytes(pickle.dumps({"state": _Payload(marker)}, protocol=2))
    _assert_input_error(raw, "pickle")
    zipped = tmp_path / "evil.pt"
    torch.save({"state": _Payload(marker)}, zipped)
    _assert_input_error(zipped, "pickle")
    with pytest.raises(InputError):
        load_generator(zipped, manager=CORE)
    with pytest.raises(InputError):
        sample(zipped, (16, 16), manager=CORE)
    assert not marker.exists()


def _rewrite_metadata(path: Path, **changes: str) -> None:
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    metadata.update(changes)
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)


def test_newer_format_version(saved: tuple[Path, PyramidGenerator, Checkpoint]) -> None:
    path = saved[0]
    _rewrite_metadata(path, format_version=str(FORMAT_VERSION + 1))
    _assert_input_error(path, "newer")
    _rewrite_metadata(path, format_version="one")
    _assert_input_error(path, "format version")


def test_wrong_domain(saved: tuple[Path, PyramidGenerator, Checkpoint]) -> None:
    path = saved[0]
    with pytest.raises(InputError, match="for domain 'image', not 'audio'"):
        load_checkpoint(path, domain="audio")
    with pytest.raises(InputError, match="not 'audio'"):
        load_generator(path, domain="audio", manager=CORE)


def test_weights_that_do_not_fit_the_config(saved: tuple[Path, PyramidGenerator, Checkpoint]
                                            ) -> None:
    path, gen, ckpt = saved
    settings = dict(ckpt.settings)
    settings["generator"] = {**gen.config.to_dict(),
                             "options": {**gen.config.options, "num_scales": 4}}
    _rewrite_metadata(path, settings=json.dumps(settings))
    with pytest.raises(InputError, match="do not fit"):
        load_generator(path, manager=CORE)


def test_bad_metadata_json(saved: tuple[Path, PyramidGenerator, Checkpoint]) -> None:
    path = saved[0]
    _rewrite_metadata(path, settings="{not json")
    _assert_input_error(path, "corrupt checkpoint metadata")


def test_header_length_starting_like_a_pickle_still_loads(tmp_path: Path) -> None:
    """A safetensors header whose length's low byte is 0x80 is not mistaken for a pickle."""
    from texsynth.feedforward import checkpoint as ck

    meta = {"format": ck.FORMAT, "format_version": str(ck.FORMAT_VERSION), "pad": ""}
    for pad in range(400):
        meta["pad"] = "x" * pad
        data = safetensors.torch.save({"w": torch.zeros(1)}, metadata=meta)
        if data[0] == 0x80:
            break
    assert data[0] == 0x80
    assert ck._read_header(tmp_path / "x.ckpt", data)["format"] == ck.FORMAT
