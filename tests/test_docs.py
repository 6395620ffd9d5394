"""docs/ARCHITECTURE.md is the map of the code: it must name every module of the core by
its path inside ``texsynth/`` (``stats/losses.py``), every module and dotted name it
mentions must exist, and its layer diagram must list every sub-package."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import texsynth

ROOT = Path(__file__).resolve().parents[1]
CORE_DIR = ROOT / "texsynth"
MAP = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
CORE = sorted(p.relative_to(CORE_DIR).as_posix() for p in CORE_DIR.rglob("*.py")
              if p.name not in ("__main__.py", "__init__.py") or p.parent == CORE_DIR)
PACKAGES = sorted(p.name for p in CORE_DIR.iterdir() if (p / "__init__.py").is_file())


def test_every_core_module_is_in_the_map() -> None:
    missing = [name for name in CORE if name != "__main__.py" and f"`{name}`" not in MAP]
    assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"


def test_every_module_in_the_map_exists() -> None:
    """Every row of the "who owns what" tables names a module that exists."""
    named = set(re.findall(r"^\| `((?:[a-z_]+/)?[a-z_]+\.py)` \|", MAP, flags=re.M))
    assert named, "the map names no modules"
    assert not named - set(CORE), sorted(named - set(CORE))


def test_every_sub_package_is_a_layer_of_the_diagram() -> None:
    diagram = MAP.split("## Layers", 1)[1].split("##", 1)[0]
    missing = [name for name in PACKAGES if f"{name}/" not in diagram]
    assert not missing, missing


def _resolve(dotted: str) -> object | None:
    """``stats.features.prepare`` or ``plugins.add_core_plugin`` -> the object, if any."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            target: object = importlib.import_module("texsynth." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            target = getattr(target, name, None)
            if target is None:
                return None
        return target
    return None


def test_dotted_names_in_the_map_exist() -> None:
    """``module.name`` mentions (``stats.features.prepare``, ``plugins.add_core_plugin``)
    resolve to real objects."""
    found = 0
    for dotted in re.findall(r"`(?:texsynth\.)?((?:[a-z_]+\.)+[A-Za-z_]+)`", MAP):
        if dotted.split(".")[0] in ("texsynth_image", "texsynth_audio", "texsynth_video") \
                or dotted.endswith(".py") or dotted.split(".")[0] not in {
                    p.stem for p in CORE_DIR.iterdir()}:
            continue
        found += 1
        assert _resolve(dotted) is not None, f"texsynth.{dotted} is named but does not exist"
    assert found >= 8
    for cls, attr in re.findall(r"`([A-Z][A-Za-z]+)\.([a-z_]+)`", MAP):
        if cls.isupper():  # a file such as CONTRIBUTING.md
            continue
        owner = getattr(texsynth, cls, None) or getattr(texsynth.plugins, cls, None)
        if owner is None:
            owner = getattr(importlib.import_module("texsynth.runtime.context"), cls, None)
        assert owner is not None, f"{cls} is named but not found"
        assert hasattr(owner, attr), f"{cls}.{attr} is named but does not exist"


def test_the_check_resolves_and_refuses() -> None:
    assert _resolve("stats.features.prepare") is texsynth.prepare
    assert _resolve("stats.features.no_such_name") is None
    assert _resolve("nowhere.thing") is None
