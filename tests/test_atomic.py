from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from texsynth.atomic import atomic_path, atomic_write_text, remove_stale_temps


def test_atomic_write_replaces_whole_file_with_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")
    def write_half_then_die() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")

    with pytest.raises(RuntimeError):
        write_half_then_die()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_temp_keeps_the_suffix(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "a.png") as tmp:
        assert tmp.suffix == ".png"
        tmp.write_bytes(b"x")


def test_stale_temps_of_one_file_are_removed_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "run.ckpt"
    target.write_bytes(b"whole")
    stale = tmp_path / ".run.ab12_xyz.tmp.ckpt"
    stale.write_bytes(b"half")
    keep = [tmp_path / ".other.ab12_xyz.tmp.ckpt",  # another file's temp
            tmp_path / ".run.ab12_xyz.tmp.png",   # another suffix
            tmp_path / "run.ab12_xyz.tmp.ckpt",   # not hidden: not ours
            tmp_path / ".run.short.tmp.ckpt"]     # not mkstemp's 8 characters
    for path in keep:
        path.write_bytes(b"keep")
    assert remove_stale_temps(target) == [stale]
    assert not stale.exists()
    assert all(path.exists() for path in keep) and target.read_bytes() == b"whole"
    assert remove_stale_temps(tmp_path / "missing" / "run.ckpt") == []
