"""docs/ARCHITECTURE.md is the map of the code: it must name every core module, and
every module and public name it mentions must exist."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import texsynth

ROOT = Path(__file__).resolve().parents[1]
MAP = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
CORE = sorted(p.name for p in (ROOT / "texsynth").glob("*.py") if p.name != "__main__.py")


def test_every_core_module_is_in_the_map() -> None:
    missing = [name for name in CORE if f"`{name}`" not in MAP]
    assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"


def test_every_module_in_the_map_exists() -> None:
    named = set(re.findall(r"`([a-z_]+\.py)`", MAP))
    assert named, "the map names no modules"
    assert not named - set(CORE) - {"__init__.py"}, sorted(named - set(CORE))


def test_dotted_names_in_the_map_exist() -> None:
    """``module.name`` mentions (``spec.prepare``, ``Features.objective``) resolve."""
    found = 0
    for module, name in re.findall(r"`(?:texsynth\.)?([a-z_]+)\.([A-Za-z_]+)`", MAP):
        if module in ("texsynth_image", "texsynth_audio", "texsynth_video", "pyproject") \
                or name == "py":
            continue
        found += 1
        target = texsynth if module == "texsynth" else importlib.import_module(
            f"texsynth.{module}")
        assert hasattr(target, name), f"texsynth.{module}.{name} is named but does not exist"
    assert found >= 5
    for cls, attr in re.findall(r"`([A-Z][A-Za-z]+)\.([a-z_]+)`", MAP):
        if cls.isupper():  # a file such as CONTRIBUTING.md
            continue
        owner = getattr(texsynth, cls, None) or getattr(texsynth.plugins, cls, None)
        if owner is None:
            owner = getattr(importlib.import_module("texsynth.generator"), cls, None)
        assert owner is not None, f"{cls} is named but not found"
        assert hasattr(owner, attr), f"{cls}.{attr} is named but does not exist"
