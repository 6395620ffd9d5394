"""A checkpoint is untrusted input: tampered settings, odd files and runs that cannot fit
are refused up front, in one line, before anything large is allocated.

The checkpoints here are real (trained for one step through the command line) and then
edited the way a hostile user would: the safetensors header (an 8-byte little-endian
length, then JSON) is rewritten with other ``settings``, keeping the tensor data, which
the checksum covers.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import texsynth
import texsynth.memory as resources
from texsynth import GeneratorConfig, InputError, ResourceError, UsageError
from texsynth.cli.commands import main
from texsynth.feedforward import checkpoint as checkpoint_module
from texsynth.feedforward.checkpoint import MAX_JSON_DEPTH, load_checkpoint, load_generator
from texsynth.feedforward.estimates import SampleEstimate, estimate_sample
from texsynth.feedforward.pyramid import PyramidGenerator
from texsynth.feedforward.pyramid_options import MAX_PARAMETERS, OPTION_BOUNDS, parameter_count
from texsynth.feedforward.sampling import generate

REPO = Path(__file__).resolve().parents[2]
#: Training options that make a checkpoint in about a second.
TINY = ["--iterations", "1", "--batch-size", "1", "--size", "32x32", "--scales", "2",
        "--option", "filters=4", "--seed", "0", "--quiet"]


def _exemplar(path: Path, size: tuple[int, int] = (48, 48)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid image checkpoint (two scales, one step)."""
    folder = tmp_path_factory.mktemp("untrusted")
    exemplar = _exemplar(folder / "ex.png")
    assert main(["train", str(exemplar), "-o", str(folder / "g.ckpt"), *TINY]) == 0
    return folder / "g.ckpt"


def edit_header(source: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """Copy ``source`` to ``target`` with its safetensors header JSON changed in place by
    ``change`` (the tensor data is kept byte for byte)."""
    data = source.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    change(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    target.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + length:])
    return target


def edit_settings(source: Path, target: Path,
                  change: Callable[[dict[str, Any]], Any]) -> Path:
    """Copy ``source`` with its ``settings`` changed: ``change(settings)`` edits them in
    place, or returns what to store instead (JSON text when it returns a ``str``)."""
    def rewrite(header: dict[str, Any]) -> None:
        meta = header["__metadata__"]
        settings = json.loads(meta["settings"])
        result = change(settings)
        value = settings if result is None else result
        meta["settings"] = value if isinstance(value, str) else json.dumps(value)

    return edit_header(source, target, rewrite)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit that sets the dotted ``path`` of the settings to ``value``."""
    *parents, last = path.split(".")

    def change(settings: dict[str, Any]) -> None:
        node = settings
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


#: name -> (edit of the settings, fragment of the one-line error)
TAMPERED: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "out-channels-1e9": (_set("generator.out_channels", 10**9), "generator.out_channels"),
    "spatial-dims-1e9": (_set("generator.spatial_dims", 10**9), "generator.spatial_dims"),
    "content-channels-negative": (_set("generator.content_channels", -1),
                                  "generator.content_channels"),
    "num-scales-1e6": (_set("generator.options.num_scales", 10**6), "num_scales"),
    "channels-4096": (_set("generator.options.channels", 4096), "channels"),
    "channels-16-weights-of-8": (_set("generator.options.channels", 16), "do not fit"),
    "noise-channels-5-weights-of-3": (_set("generator.options.noise_channels", 5),
                                      "do not fit"),
    "value-range-text": (_set("generator.options.value_range", ["a", "b"]), "value_range"),
    "options-a-list": (_set("generator.options", [1, 2]), "generator.options"),
    "generator-a-list": (_set("generator", [1, 2]), "generator must be a JSON object"),
    "generator-name-a-number": (_set("generator.name", 7), "generator.name"),
    "training-a-string": (_set("training", "abc"), "training must be a JSON object"),
    "training-size-1e9": (_set("training.size", [10**9, 10**9]), "training.size"),
    "training-size-one-axis": (_set("training.size", [32]), "training.size"),
    "training-size-text": (_set("training.size", ["32", "32"]), "training.size"),
    "training-size-missing": (lambda s: s["training"].pop("size") and None,
                              "training.size is missing"),
    "seed-text": (_set("seed", "zero"), "seed"),
    "domain-config-a-list": (_set("domain_config", [1]), "domain_config"),
    "domain-config-unknown-key": (_set("domain_config", {"sample_rate": 10**9}),
                                  "domain_config"),
    "also-an-object": (_set("also", {"weight": 1}), "also must be a list"),
    "also-negative-weight": (_set("also", [{"extractor": {"name": "patches"},
                                            "weight": -1}]), "also[0].weight"),
    "also-nested": (_set("also", [{"extractor": {"name": "patches"}, "weight": 1,
                                   "also": []}]), "also[0].also"),
    "also-without-extractor": (_set("also", [{"weight": 1}]), "also[0].extractor"),
    "settings-a-list": (lambda s: [s], "settings must be a JSON object"),
    "settings-nested-1e5": (lambda s: _nested(10**5), "nests JSON"),
    "settings-nested-past-the-bound": (lambda s: {**s, "x": json.loads(
        _nested(MAX_JSON_DEPTH + 1))}, "nests JSON"),
}


def assert_one_error_line(code: int, err: str, fragment: str) -> str:
    """Exit 2 and exactly one ``texsynth: error:`` line holding ``fragment``."""
    lines = [line for line in err.strip().splitlines()
             if line.strip() and not line.startswith("texsynth: warning:")]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("texsynth: error: "), lines[0]
    assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_tampered_settings_are_one_line_errors(name: str, trained: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    change, fragment = TAMPERED[name]
    path = edit_settings(trained, tmp_path / "t.ckpt", change)
    started = time.perf_counter()
    code = main(["sample", str(path), "-o", str(tmp_path / "o.png")])
    line = assert_one_error_line(code, capsys.readouterr().err, fragment)
    assert time.perf_counter() - started < 30
    assert "corrupt or tampered checkpoint" in line
    assert str(path) in line
    assert not (tmp_path / "o.png").exists()


#: Cases found only once the checkpoint is used to sample (not by loading it).
WHEN_USED = {"domain-config-unknown-key", "training-size-missing"}


@pytest.mark.parametrize("name", sorted(set(TAMPERED) - WHEN_USED))
def test_tampered_settings_are_input_errors_of_the_library(name: str, trained: Path,
                                                           tmp_path: Path) -> None:
    """Without the command line: loading raises :class:`InputError` naming the file."""
    change, fragment = TAMPERED[name]
    path = edit_settings(trained, tmp_path / "t.ckpt", change)
    with pytest.raises(InputError, match="corrupt or tampered checkpoint") as info:
        load_generator(path)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_the_untampered_checkpoint_still_samples_the_same(trained: Path, tmp_path: Path
                                                         ) -> None:
    """Rewriting the header without changes keeps the checkpoint valid, and validation
    does not change what a seed gives."""
    copy = edit_settings(trained, tmp_path / "same.ckpt", lambda s: None)
    first = texsynth.sample(copy, (40, 36), seed=5, count=2).signals
    again = texsynth.sample(trained, (40, 36), seed=5, count=2).signals
    gen, _ = load_generator(trained)
    unchecked = generate(gen, (40, 36), seed=5, count=2, memory_check=False)
    assert torch.equal(first, again)
    assert torch.equal(first, unchecked)


def test_deeply_nested_header_is_refused_without_recursion(trained: Path, tmp_path: Path
                                                           ) -> None:
    """JSON nested 100 000 deep outside the metadata (in the safetensors header itself)."""
    raw = trained.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = raw[8:8 + length].rstrip()
    assert header.endswith(b"}")
    text = header[:-1] + b', "x": ' + _nested(10**5).encode() + b"}"
    text += b" " * (-len(text) % 8)
    path = tmp_path / "deep.ckpt"
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + length:])
    with pytest.raises(InputError, match="header nests JSON"):
        load_checkpoint(path)


def test_tampered_step_is_refused(trained: Path, tmp_path: Path) -> None:
    path = edit_header(trained, tmp_path / "step.ckpt",
                       lambda h: h["__metadata__"].__setitem__("step", "9" * 5000))
    with pytest.raises(InputError, match="tampered checkpoint: step"):
        load_checkpoint(path)


def test_files_over_the_size_bound_are_refused_before_reading(
        trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint_module, "MAX_CHECKPOINT_BYTES", 1000)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read the whole file"))
    with pytest.raises(InputError, match=r"is too large for a checkpoint file: .* KiB .*; "
                                         r"the limit is 1,000 bytes"):
        load_checkpoint(trained)


def test_a_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        load_checkpoint(tmp_path)


def _cli_in_subprocess(args: list[str], timeout: float = 120) -> tuple[int, str]:
    """``texsynth ARGS`` in a fresh interpreter (address space capped at 8 GiB, so a
    regression that reads an endless file fails instead of exhausting the machine);
    returns ``(exit code, stderr)``, or fails the test when it outlives ``timeout``."""
    import resource

    def limit() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))

    code = ("import sys; from texsynth.cli.commands import main; "
            "raise SystemExit(main(sys.argv[1:]))")
    try:
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, timeout=timeout, cwd=REPO, preexec_fn=limit,
                              check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"texsynth {' '.join(args)} still ran after {timeout} s")
    return done.returncode, done.stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_link_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.ckpt"
    link.symlink_to("/dev/zero")
    code, err = _cli_in_subprocess(["sample", str(link), "-o", str(tmp_path / "o.png")])
    assert_one_error_line(code, err, "is a device, not a checkpoint file")
    with pytest.raises(InputError, match="is a device"):  # in this process only now
        load_checkpoint(link)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.ckpt"
    os.mkfifo(fifo)
    code, err = _cli_in_subprocess(["sample", str(fifo), "-o", str(tmp_path / "o.png")],
                                   timeout=60)
    assert_one_error_line(code, err, "is a FIFO (named pipe), not a checkpoint file")
    with pytest.raises(InputError, match="FIFO"):
        load_checkpoint(fifo)


# -- memory guards ----------------------------------------------------------------------------
def _available(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Pretend ``count`` bytes are free on every device."""
    monkeypatch.setattr(resources, "available_memory", lambda device: count)
    monkeypatch.delenv("TEXSYNTH_MEMORY_CHECK", raising=False)


def test_a_batch_that_cannot_fit_is_refused_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _available(monkeypatch, 4 * 2**30)
    exemplar = _exemplar(tmp_path / "ex.png")
    argv = ["train", str(exemplar), "-o", str(tmp_path / "g.ckpt"), *TINY,
            "--batch-size", "100000"]
    started = time.perf_counter()
    code = main(argv)
    line = assert_one_error_line(code, capsys.readouterr().err, "needs about")
    assert time.perf_counter() - started < 60
    assert "batch 100000" in line and "GiB" in line and "--batch-size" in line
    assert not (tmp_path / "g.ckpt").exists()


def test_a_generator_too_wide_for_memory_is_refused_before_it_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _available(monkeypatch, 2**30)
    built: list[GeneratorConfig] = []
    original = PyramidGenerator.__init__

    def spy(self: PyramidGenerator, config: GeneratorConfig) -> None:
        if torch.empty(0).device.type != "meta":  # not the check's build on "meta"
            built.append(config)
        original(self, config)

    monkeypatch.setattr(PyramidGenerator, "__init__", spy)
    # 300 channels per branch: 1.6e8 weights, 2.4 GiB with gradients and Adam's moments
    with pytest.raises(ResourceError, match=r"training generator 'pyramid' \(1.59e\+08 "
                                            r"weights\) needs about 2.4 GiB"):
        texsynth.train_generator(_exemplar(tmp_path / "ex.png"), size=(32, 32),
                                 batch_size=1, iterations=1, progress=False, seed=0,
                                 device="cpu", generator_options={"channels": 300},
                                 extractor_options={"filters": 4})
    assert not built, "the generator was built for real before the check"


def test_train_memory_check_can_be_turned_off(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _available(monkeypatch, 2**18)  # 256 KiB: every run is refused
    exemplar = _exemplar(tmp_path / "ex.png")
    kwargs: dict[str, Any] = {"size": (32, 32), "batch_size": 2, "iterations": 1,
                              "progress": False, "seed": 0, "device": "cpu",
                              "generator_options": {"num_scales": 2},
                              "extractor_options": {"filters": 4}}
    with pytest.raises(ResourceError, match="needs about"):
        texsynth.train_generator(exemplar, **kwargs)
    result = texsynth.train_generator(exemplar, memory_check=False, **kwargs)
    monkeypatch.setenv("TEXSYNTH_MEMORY_CHECK", "0")
    again = texsynth.train_generator(exemplar, **kwargs)
    assert result.losses == again.losses  # the checks change nothing of the run


def test_training_is_the_same_with_and_without_the_check(tmp_path: Path) -> None:
    exemplar = _exemplar(tmp_path / "ex.png")
    kwargs: dict[str, Any] = {"size": (40, 40), "batch_size": 3, "iterations": 2,
                              "progress": False, "seed": 1, "device": "cpu",
                              "generator_options": {"num_scales": 3},
                              "extractor_options": {"filters": 4}}
    checked = texsynth.train_generator(exemplar, **kwargs)
    unchecked = texsynth.train_generator(exemplar, memory_check=False, **kwargs)
    assert checked.losses == unchecked.losses
    for a, b in zip(checked.generator.state_dict().values(),
                    unchecked.generator.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_sampling_that_cannot_fit_is_refused_before_allocating(
        trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = texsynth.load_trained(trained)
    sizes: list[tuple[int, ...]] = []
    original = loaded.generator.make_noise

    def spy(batch: int, size: tuple[int, ...], **kwargs: Any) -> list[torch.Tensor]:
        sizes.append((batch, *size))
        return original(batch, size, **kwargs)

    monkeypatch.setattr(loaded.generator, "make_noise", spy)
    estimate = estimate_sample(loaded, (512, 512), count=2).memory_bytes
    _available(monkeypatch, estimate // 2)
    with pytest.raises(ResourceError, match=r"sampling 2 of 512x512 in one piece needs "
                                            r"about .* but only .* is available"):
        texsynth.sample(loaded, (512, 512), count=2, seed=0)
    assert (2, 512, 512) not in sizes  # refused before the noise of the run was made
    _available(monkeypatch, 2**20)  # 1 MiB: even the cheap lower bound refuses
    with pytest.raises(ResourceError, match="needs about"):
        generate(loaded.generator, (200, 200))
    monkeypatch.setenv("TEXSYNTH_MEMORY_CHECK", "0")
    assert generate(loaded.generator, (40, 40)).shape == (1, 3, 40, 40)
    assert generate(loaded.generator, (40, 40), memory_check=False).shape == (1, 3, 40, 40)


def test_sampling_refusals_through_the_command_line(trained: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _available(monkeypatch, 4 * 2**20)  # 4 MiB
    out = tmp_path / "o.png"
    code = main(["sample", str(trained), "-o", str(out), "--size", "512x512", "--tile", "0"])
    line = assert_one_error_line(code, capsys.readouterr().err, "in one piece needs about")
    assert "use a smaller --size or --count, sample in tiles (--tile)" in line
    code = main(["sample", str(trained), "-o", str(out), "--size", "512x512", "--tile", "256"])
    assert_one_error_line(code, capsys.readouterr().err, "sampling in tiles of 256 needs about")
    assert not out.exists()


def test_sampling_refuses_extents_past_the_bound(trained: Path) -> None:
    loaded = texsynth.load_trained(trained)
    with pytest.raises(UsageError, match="every extent must be from 1 to"):
        generate(loaded.generator, (10**9,) * 2)
    with pytest.raises(UsageError, match="every extent must be from 1 to"):
        estimate_sample(loaded, (10**9,) * 2)


def test_estimate_sample(trained: Path) -> None:
    loaded = texsynth.load_trained(trained)
    small = estimate_sample(loaded, (256, 256))
    large = estimate_sample(loaded, (512, 512), count=2)
    tiled = estimate_sample(loaded, (512, 512), count=2, tile=128)
    assert isinstance(small, SampleEstimate)
    assert large.output_bytes == 2 * 3 * 512 * 512
    assert tiled.output_bytes == large.output_bytes
    assert small.seconds > 0 and tiled.seconds > 0
    assert large.memory_bytes / small.memory_bytes == pytest.approx(8, rel=0.1)
    assert tiled.memory_bytes < large.memory_bytes / 4  # one tile, not the whole batch
    assert estimate_sample(loaded.generator, (256, 256)).memory_bytes == small.memory_bytes


def test_memory_estimate_covers_a_real_pass() -> None:
    """The measured peak (before the workspace factor) is at least the live tensors of
    the pass: the output, the noise and one feature map of the widest layer."""
    gen = PyramidGenerator(GeneratorConfig("pyramid", 2, 3, 0, {"num_scales": 4})).eval()
    estimate = estimate_sample(gen, (256, 256)).memory_bytes
    positions = 256 * 256
    assert estimate >= 4 * positions * (3 + 3 + 32)


# -- bounds of the pyramid, for direct use too -------------------------------------------------
@pytest.mark.parametrize(("key", "value"), [
    ("num_scales", 10**6), ("channels", 4096), ("noise_channels", 10**9)])
def test_pyramid_options_are_bounded(key: str, value: int) -> None:
    assert value > OPTION_BOUNDS[key]
    started = time.perf_counter()
    with pytest.raises(UsageError, match=f"{key} must be at most {OPTION_BOUNDS[key]}"):
        PyramidGenerator(GeneratorConfig("pyramid", 2, 3, 0, {key: value}))
    assert time.perf_counter() - started < 5


def test_pyramid_weights_are_bounded_before_building() -> None:
    config = GeneratorConfig("pyramid", 2, 3, 0, {"channels": 1024, "num_scales": 20})
    with pytest.raises(UsageError, match="weights, more than"):
        PyramidGenerator(config)
    with pytest.raises(UsageError, match="bad generator channels"):
        PyramidGenerator(GeneratorConfig("pyramid", 2, 10**9, 0, {}))
    with pytest.raises(UsageError, match="1 to 3 spatial dims"):
        PyramidGenerator(GeneratorConfig("pyramid", 10**9, 3, 0, {}))
    assert MAX_PARAMETERS * 4 * 3 < checkpoint_module.MAX_CHECKPOINT_BYTES


@pytest.mark.parametrize("options", [
    {"num_scales": 3}, {"num_scales": 5, "channels": 6, "noise_channels": 2},
    {"norm": "instance", "num_scales": 2}])
@pytest.mark.parametrize(("dims", "content"), [(1, 0), (2, 0), (2, 3)])
def test_parameter_count_matches_the_network(options: dict[str, Any], dims: int,
                                             content: int) -> None:
    gen = PyramidGenerator(GeneratorConfig("pyramid", dims, 3, content, options))
    assert parameter_count(gen.config) == sum(p.numel() for p in gen.parameters())
    assert math.isfinite(parameter_count(gen.config))


# -- resuming a tampered run ------------------------------------------------------------------
def _resume(path: Path, tmp_path: Path) -> list[str]:
    return ["train", str(_exemplar(tmp_path / "ex.png")), "-o", str(path), "--resume", *TINY]


def test_resuming_without_a_stored_setting_is_one_line(trained: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    path = edit_settings(trained, tmp_path / "r.ckpt", lambda s: s.pop("loss") and None)
    code = main(_resume(path, tmp_path))
    assert_one_error_line(code, capsys.readouterr().err,
                          "corrupt or tampered checkpoint: loss is missing")


def test_resuming_with_a_tampered_optimiser_state_is_one_line(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def drop_groups(header: dict[str, Any]) -> None:
        state = json.loads(header["__metadata__"]["optimizer"])
        state["param_groups"] = []
        header["__metadata__"]["optimizer"] = json.dumps(state)

    path = edit_header(trained, tmp_path / "o.ckpt", drop_groups)
    code = main(_resume(path, tmp_path))
    assert_one_error_line(code, capsys.readouterr().err,
                          "corrupt or tampered checkpoint: the optimiser or random states")
