"""The core :class:`texsynth.Domain` behaviour every domain inherits, on the toy domain.

Sizes (``parse_size``, ``check_size``, ``describe_size``), output suffixes
(``check_output``), the value range (``clamp``), the default block writer of
``open_writer`` and JSON sidecars (``write_sidecar``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

import texsynth
from texsynth import Domain, UsageError


def _variant(domain: Domain, **attributes: Any) -> Domain:
    """An instance of a subclass of ``domain``'s class with some class attributes changed."""
    return type("ToyVariant", (type(domain),), attributes)()


# -- parse_size --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "dims", "expected"), [
    ("320x200", 2, (200, 320)),  # W x H in, tensor order (H, W) out
    ("64", 2, (64, 64)),
    (" 12 X 7 ", 2, (7, 12)),
    ("320×200", 2, (200, 320)),
    ("100", 1, (100,)),
])
def test_parse_size_gives_tensor_order(text: str, dims: int, expected: tuple[int, ...]
                                       ) -> None:
    assert texsynth.parse_size(text, dims) == expected


def test_parse_size_reads_three_extents() -> None:
    assert texsynth.parse_size("4x5x6", 3) == (6, 5, 4)
    with pytest.raises(UsageError, match="needs 3 extents"):
        texsynth.parse_size("4x5", 3)


@pytest.mark.parametrize(("text", "dims", "fragment"), [
    ("abc", 2, "is not of the form WxH"),
    ("", 2, "is not of the form WxH"),
    ("-3", 1, "is not of the form WxH"),
    ("3x4", 1, "one axis; give a single number"),
    ("0x5", 2, "every extent must be positive"),
    ("0", 1, "every extent must be positive"),
    (str((1 << 20) + 1), 1, f"extent {(1 << 20) + 1} is larger than {1 << 20}"),
])
def test_parse_size_refuses_bad_text(text: str, dims: int, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as info:
        texsynth.parse_size(text, dims)
    assert repr(text) in str(info.value)


def test_domain_parse_size_uses_its_spatial_dims(toy_domain: Domain) -> None:
    assert toy_domain.spatial_dims == 1
    assert toy_domain.parse_size("50") == (50,)
    with pytest.raises(UsageError, match="one axis"):
        toy_domain.parse_size("5x5")
    assert _variant(toy_domain, spatial_dims=2).parse_size("30x20") == (20, 30)


# -- check_size, describe_size ---------------------------------------------------------------
def test_check_size_accepts_the_minimum_and_more(toy_domain: Domain) -> None:
    low = toy_domain.min_extent()
    toy_domain.check_size((low,))
    toy_domain.check_size((1000,))


def test_check_size_refuses_the_wrong_number_of_extents(toy_domain: Domain) -> None:
    with pytest.raises(UsageError, match="expected 1 extents, got 2"):
        toy_domain.check_size((16, 16))
    with pytest.raises(UsageError, match="expected 1 extents, got 0"):
        toy_domain.check_size(())


def test_check_size_refuses_too_small_extents_naming_the_limit(toy_domain: Domain) -> None:
    low = toy_domain.min_extent()
    with pytest.raises(UsageError, match=f"size {low - 1} is too small; each extent must be "
                                         f"at least {low}"):
        toy_domain.check_size((low - 1,))
    with pytest.raises(UsageError, match=r"^content size 3 is too small"):
        toy_domain.check_size((3,), what="content size")
    flat = _variant(toy_domain, spatial_dims=2)
    with pytest.raises(UsageError, match="size 4x40 is too small"):
        flat.check_size((40, 4))  # (H, W) = (40, 4) is described as WxH


def test_describe_size_is_the_inverse_of_parse_size(toy_domain: Domain) -> None:
    assert toy_domain.describe_size((64,)) == "64"
    flat = _variant(toy_domain, spatial_dims=2)
    assert flat.describe_size((200, 320)) == "320x200"
    assert flat.describe_size(flat.parse_size("320x200")) == "320x200"


# -- check_output ------------------------------------------------------------------------
def test_check_output_accepts_the_domain_suffixes(toy_domain: Domain, tmp_path: Path) -> None:
    toy_domain.check_output(tmp_path / "out.toy")
    toy_domain.check_output(tmp_path / "OUT.TOY")  # suffixes compare case-insensitively


def test_check_output_refuses_other_suffixes_naming_the_allowed(toy_domain: Domain,
                                                                tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"out\.wav: cannot write '\.wav' toy files; "
                                         r"use one of \.toy"):
        toy_domain.check_output(tmp_path / "out.wav")
    with pytest.raises(UsageError, match="cannot write 'files without a suffix'"):
        toy_domain.check_output(tmp_path / "out")


def test_check_output_prefers_output_suffixes(toy_domain: Domain, tmp_path: Path) -> None:
    writer = _variant(toy_domain, output_suffixes=(".txt", ".dat"))
    writer.check_output(tmp_path / "out.txt")
    writer.check_output(tmp_path / "out.dat")
    with pytest.raises(UsageError, match=r"use one of \.txt, \.dat"):
        writer.check_output(tmp_path / "out.toy")  # readable, but not writable


# -- clamp -------------------------------------------------------------------------------
def test_clamp_projects_onto_the_value_range(toy_domain: Domain) -> None:
    signal = torch.tensor([[[-3.0, -1.0, -0.25, 0.0, 0.5, 1.0, 2.0]]])
    before = signal.clone()
    clamped = toy_domain.clamp(signal)
    assert toy_domain.value_range == (-1.0, 1.0)
    assert torch.equal(clamped, torch.tensor([[[-1.0, -1.0, -0.25, 0.0, 0.5, 1.0, 1.0]]]))
    assert torch.equal(signal, before), "clamp must return a new tensor"
    unit = _variant(toy_domain, value_range=(0.0, 1.0))
    assert torch.equal(unit.clamp(signal), torch.tensor([[[0.0, 0, 0, 0, 0.5, 1, 1]]]))


# -- open_writer (the default, assembling writer) --------------------------------------------
def test_default_writer_assembles_blocks_at_their_offsets(toy_domain: Domain,
                                                          tmp_path: Path) -> None:
    signal = torch.rand(1, 2, 50, generator=torch.Generator().manual_seed(0)) * 2 - 1
    target = tmp_path / "a.toy"
    with toy_domain.open_writer(target, (50,), 2, metadata={"seed": 7}) as writer:
        assert writer.path == target and writer.size == (50,) and writer.channels == 2
        assert not target.exists(), "nothing is written before close"
        for start in reversed(range(0, 50, 16)):  # out of order: offsets place the blocks
            writer.write(signal[0, :, start:start + 16], (start,))
    assert torch.equal(toy_domain.load(target), signal)
    assert json.loads((tmp_path / "a.toy.json").read_text()) == {"seed": 7}


def test_default_writer_saves_nothing_when_incomplete(toy_domain: Domain,
                                                      tmp_path: Path) -> None:
    target = tmp_path / "b.toy"
    writer = toy_domain.open_writer(target, (50,), 1)
    writer.write(torch.zeros(1, 16), (0,))
    with pytest.raises(UsageError, match="16 of 50 positions were written; nothing saved"):
        writer.close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UsageError, match="closed"):
        writer.write(torch.zeros(1, 16), (16,))


def test_default_writer_refuses_blocks_that_do_not_fit(toy_domain: Domain,
                                                       tmp_path: Path) -> None:
    writer = toy_domain.open_writer(tmp_path / "c.toy", (50,), 2)
    with pytest.raises(UsageError, match=r"lies outside the signal of size \(50,\)"):
        writer.write(torch.zeros(2, 16), (40,))
    with pytest.raises(UsageError, match=r"must be \(2, \*extent\)"):
        writer.write(torch.zeros(1, 16), (0,))
    with pytest.raises(UsageError, match="outside"):
        writer.write(torch.zeros(2, 4), (-1,))
    writer.abort()
    writer.abort()  # safe twice
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UsageError, match="cannot write a signal of 1 channels"):
        toy_domain.open_writer(tmp_path / "d.toy", (0,), 1)


def test_default_writer_aborts_when_the_block_raises(toy_domain: Domain,
                                                     tmp_path: Path) -> None:
    target = tmp_path / "e.toy"
    with pytest.raises(RuntimeError, match="stop"), \
            toy_domain.open_writer(target, (20,), 1) as writer:  # noqa: PT012
        writer.write(torch.zeros(1, 20), (0,))  # complete, but the block fails
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


# -- write_sidecar -----------------------------------------------------------------------
def test_write_sidecar_writes_sorted_json_beside_the_file(
        tmp_path: Path, core_write_sidecar: Callable[[Path, Mapping[str, Any]], Path]
) -> None:
    target = tmp_path / "out.toy"
    written = core_write_sidecar(target, {"steps": 3, "domain": "toy", "size": [64]})
    assert written == tmp_path / "out.toy.json"
    text = written.read_text()
    assert json.loads(text) == {"steps": 3, "domain": "toy", "size": [64]}
    assert text.index('"domain"') < text.index('"size"') < text.index('"steps"')
    assert text.endswith("\n")
    core_write_sidecar(target, {"steps": 4})  # replaces the old sidecar
    assert json.loads(written.read_text()) == {"steps": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.toy.json"]
