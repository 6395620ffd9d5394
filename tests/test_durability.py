"""Nothing is lost: SIGKILL at random points never leaves a broken checkpoint, and
``--resume`` continues; the same seed and settings give the same output."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import texsynth
import texsynth_image  # noqa: F401  (built in: a missing plugin must fail, not skip)
from texsynth.feedforward.checkpoint import load_checkpoint

TRAIN = ["--batch-size", "1", "--size", "32x32", "--scales", "2", "--option", "filters=4",
         "--seed", "0", "--checkpoint-every", "1", "--quiet"]


@pytest.fixture
def exemplar(sample_image, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "grass.png"
    Image.open(sample_image("grass.png")).convert("RGB").resize((48, 48)).save(path)
    return path


def _train_cmd(exemplar: Path, ckpt: Path, iterations: int, resume: bool) -> list[str]:
    return [sys.executable, "-m", "texsynth", "train", str(exemplar), "-o", str(ckpt),
            "--iterations", str(iterations), *TRAIN, *(["--resume"] if resume else [])]


def test_sigkill_never_leaves_a_broken_checkpoint(exemplar: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "run.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(1234)
    steps_seen = []
    for attempt in range(3):
        proc = subprocess.Popen(_train_cmd(exemplar, ckpt, 400, resume=attempt > 0),
                                env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 240
        start_mtime = ckpt.stat().st_mtime_ns if ckpt.exists() else 0
        while time.monotonic() < deadline:  # wait until this attempt has written once
            if ckpt.exists() and ckpt.stat().st_mtime_ns != start_mtime:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        checkpoint = load_checkpoint(ckpt)  # must always load
        steps_seen.append(checkpoint.step)
        assert len(checkpoint.losses) == checkpoint.step
        # SIGKILL mid-write may leave a hidden ``.run.*.tmp.ckpt`` beside it (nothing can
        # clean up after SIGKILL); the checkpoint itself is always whole.
        assert all(p.name.startswith(".") for p in tmp_path.iterdir() if ".tmp" in p.name)
    assert steps_seen == sorted(steps_seen) and steps_seen[-1] > steps_seen[0]
    final = steps_seen[-1] + 3
    done = subprocess.run(_train_cmd(exemplar, ckpt, final, resume=True), env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    checkpoint = load_checkpoint(ckpt)
    assert checkpoint.step == final
    assert len(checkpoint.losses) == final
    # the finishing run owns the checkpoint and removed any partial file a kill left
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_save_before_exit(exemplar: Path, tmp_path: Path, signum: int) -> None:
    ckpt = tmp_path / "sig.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = _train_cmd(exemplar, ckpt, 100000, resume=False)
    cmd[cmd.index("--checkpoint-every") + 1] = "5"
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not ckpt.exists() and time.monotonic() < deadline:  # training has begun
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    assert ckpt.exists(), "training wrote no checkpoint in time"
    signalled_at = time.time_ns()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert ckpt.stat().st_mtime_ns >= signalled_at, "no checkpoint was saved on the signal"
    checkpoint = load_checkpoint(ckpt)
    assert checkpoint.step >= 5


def test_same_seed_same_output(exemplar: Path) -> None:
    kwargs = {"size": (24, 40), "steps": 5, "seed": 11, "progress": False,
              "extractor_options": {"filters": 4}, "device": "cpu"}
    a = texsynth.synthesize(exemplar, **kwargs)  # type: ignore[arg-type]
    b = texsynth.synthesize(exemplar, **kwargs)  # type: ignore[arg-type]
    assert torch.equal(a.signal, b.signal)
    assert a.losses == b.losses
    c = texsynth.synthesize(exemplar, **{**kwargs, "seed": 12})  # type: ignore[arg-type]
    assert not torch.equal(a.signal, c.signal)


def test_same_seed_same_training_and_samples(exemplar: Path, tmp_path: Path) -> None:
    kwargs = {"size": (32, 32), "batch_size": 1, "iterations": 2, "seed": 5,
              "progress": False, "extractor_options": {"filters": 4},
              "generator_options": {"num_scales": 2}, "device": "cpu"}
    one = texsynth.train_generator(exemplar, **kwargs)  # type: ignore[arg-type]
    two = texsynth.train_generator(exemplar, **kwargs)  # type: ignore[arg-type]
    assert one.losses == two.losses
    s1 = texsynth.sample_generator(one.generator, (40, 24), seed=3)
    s2 = texsynth.sample_generator(two.generator, (40, 24), seed=3)
    assert torch.equal(s1, s2)


# -- nothing replaced, nothing written over an input, nothing left after a signal ---------
def _synth(exemplar: Path, out: Path, *extra: str) -> list[str]:
    return ["synthesize", str(exemplar), "-o", str(out), "--size", "16x16", "--steps", "2",
            "--option", "filters=2", "--seed", "0", "--quiet", *extra]


def _one_error(code: int, err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("texsynth: error:"), err
    assert fragment in lines[0], lines[0]


def test_existing_preview_and_step_files_are_not_replaced(
        exemplar: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from texsynth.cli.commands import main

    preview = tmp_path / "keep.png"
    preview.write_bytes(b"precious")
    out = tmp_path / "out.png"
    _one_error(main(_synth(exemplar, out, "--preview", str(preview))),
               capsys.readouterr().err, "keep.png: already exists; pass --overwrite")
    step = tmp_path / "out_step00002.png"
    step.write_bytes(b"precious")
    _one_error(main(_synth(exemplar, out, "--save-every", "1")),
               capsys.readouterr().err, "out_step00002.png: already exists")
    assert preview.read_bytes() == step.read_bytes() == b"precious"
    assert not out.exists() and not (tmp_path / "out_step00001.png").exists()
    # with --overwrite both may be replaced, and exactly one step file per step is written
    assert main(_synth(exemplar, out, "--save-every", "1", "--preview", str(preview),
                       "--overwrite")) == 0
    assert sorted(p.name for p in tmp_path.glob("out_step*")) == [
        "out_step00001.png", "out_step00002.png"]
    assert preview.read_bytes() != b"precious"


def test_an_existing_sidecar_is_not_replaced(exemplar: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from texsynth.cli.commands import main

    sidecar = tmp_path / "out.jpg.json"
    sidecar.write_text("precious")
    _one_error(main(_synth(exemplar, tmp_path / "out.jpg")), capsys.readouterr().err,
               "out.jpg.json: already exists; pass --overwrite")
    assert sidecar.read_text() == "precious" and not (tmp_path / "out.jpg").exists()
    assert main(_synth(exemplar, tmp_path / "out.jpg", "--overwrite")) == 0
    assert sidecar.read_text() != "precious"


def test_preview_or_output_that_is_an_input_is_refused(
        exemplar: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from texsynth.cli.commands import main

    before = exemplar.read_bytes()
    _one_error(main(_synth(exemplar, exemplar, "--overwrite")), capsys.readouterr().err,
               "is an input of this run")
    _one_error(main(_synth(exemplar, tmp_path / "o.png", "--preview", str(exemplar),
                           "--overwrite")), capsys.readouterr().err, "is an input of this run")
    ckpt_args = ["train", str(exemplar), "-o", str(exemplar), "--iterations", "1", *TRAIN]
    _one_error(main([*ckpt_args, "--overwrite"]), capsys.readouterr().err,
               "is an input of this run")
    _one_error(main([*ckpt_args, "--resume"]), capsys.readouterr().err,
               "is an input of this run")
    assert exemplar.read_bytes() == before


def test_the_exists_check_and_the_rename_are_one_step(tmp_path: Path) -> None:
    """A file that appears while a run writes the same name is not replaced."""
    from texsynth.atomic import atomic_path, write_policy

    target = tmp_path / "race.txt"
    def race() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("second run")
            target.write_text("first run")  # the other run finished in the meantime

    with write_policy(overwrite=False), pytest.raises(texsynth.InputError,
                                                      match="already exists"):
        race()
    assert target.read_text() == "first run"
    assert [p.name for p in tmp_path.iterdir()] == ["race.txt"]  # no temporary file left
    with write_policy(overwrite=False):  # a file the run wrote itself may be rewritten
        for text in ("one", "two"):
            with atomic_path(tmp_path / "own.txt") as tmp:
                tmp.write_text(text)
    assert (tmp_path / "own.txt").read_text() == "two"


def test_full_disk_is_one_line_and_leaves_nothing(exemplar: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    from texsynth import atomic
    from texsynth.cli.commands import main

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _one_error(main(_synth(exemplar, out_dir / "o.png")), capsys.readouterr().err,
               "o.png: cannot write: no space left on device")
    assert list(out_dir.iterdir()) == []


def test_a_newline_in_a_file_name_stays_on_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from texsynth.cli.commands import main

    odd = tmp_path / "two\nlines.png"
    odd.write_bytes(b"not an image")
    code = main(_synth(odd, tmp_path / "o.png"))
    _one_error(code, capsys.readouterr().err, "two\\nlines.png")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_tiled_sampling_leaves_no_file(exemplar: Path, tmp_path: Path,
                                                       signum: int) -> None:
    ckpt = tmp_path / "g.ckpt"
    texsynth.train_generator(exemplar, size=(32, 32), iterations=1, batch_size=1, seed=0,
                             device="cpu", checkpoint=ckpt, progress=False,
                             generator_options={"num_scales": 2},
                             extractor_options={"filters": 2})
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cmd = [sys.executable, "-m", "texsynth", "sample", str(ckpt), "-o",
           str(out_dir / "big.png"), "--size", "6000x6000", "--tile", "256", "--quiet"]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(out_dir.iterdir()) and time.monotonic() < deadline:  # writing began
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    assert any(out_dir.iterdir()), "sampling wrote nothing in time"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if signum == signal.SIGINT else 143), err
    assert "Traceback" not in err
    assert list(out_dir.iterdir()) == []


def test_very_long_samples_are_announced_and_full_disks_refused(
        exemplar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    from collections import namedtuple

    from texsynth import memory as resources
    from texsynth.cli.commands import main
    from texsynth.feedforward.sample_files import plan_notice

    ckpt = tmp_path / "g.ckpt"
    texsynth.train_generator(exemplar, size=(32, 32), iterations=1, batch_size=1, seed=0,
                             device="cpu", checkpoint=ckpt, progress=False,
                             generator_options={"num_scales": 2},
                             extractor_options={"filters": 2})
    trained = texsynth.load_trained(ckpt)
    notice = plan_notice(trained, [tmp_path / "huge.png"], (60000, 60000), tile=512)
    assert notice is not None and "GiB" in notice and "60000x60000" in notice
    assert plan_notice(trained, [tmp_path / "small.png"], (64, 64), tile=0) is None
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(resources.shutil, "disk_usage",
                        lambda path: usage(10**6, 10**6 - 1000, 1000))
    assert shutil.disk_usage is resources.shutil.disk_usage
    out = tmp_path / "out" / "big.png"
    code = main(["sample", str(ckpt), "-o", str(out), "--size", "100x100", "--quiet"])
    _one_error(code, capsys.readouterr().err, "big.png needs at least")
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
