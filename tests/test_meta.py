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


def test_the_core_knows_no_domain() -> None:
    """No module of the core imports a domain plugin or names a domain in its code
    (docstrings and comments may use them as examples)."""
    import ast

    core = Path(__file__).resolve().parents[1] / "texsynth"
    modules = sorted(core.glob("*.py"))
    assert len(modules) > 10, f"core modules not found under {core}"
    offenders = []
    for path in modules:
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                           ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                offenders += [f"{path.name}: imports {n}" for n in names
                              if n.startswith(("texsynth_", "torchaudio", "librosa",
                                               "soundfile", "PIL", "torchvision"))]
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and id(node) not in docstrings):
                words = set(node.value.lower().replace("-", " ").split())
                if words & {"audio", "sound", "image", "images", "spectrogram"}:
                    offenders.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert not offenders, "\n".join(offenders)
