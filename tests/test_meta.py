"""Keep hooks, tests and documentation in step (every hook tested and documented)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from texsynth import hookspecs

REPO = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name, obj in inspect.getmembers(hookspecs, inspect.isfunction)
               if name.startswith("texsynth_"))


def test_there_are_hooks() -> None:
    assert "texsynth_register_domains" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_in_the_hook_reference(hook: str) -> None:
    reference = (REPO / "CONTRIBUTING.md").read_text()
    assert f"`{hook}(" in reference, f"{hook} has no entry in CONTRIBUTING.md's hook reference"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    tests = [p for p in (REPO / "tests").rglob("test_*.py") if p.name != "test_meta.py"]
    users = [p.name for p in tests if f"def {hook}(" in p.read_text()]
    assert users, f"no test implements {hook}"
