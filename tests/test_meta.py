"""Keep hooks, tests and documentation in step (every hook tested and documented), keep
the core free of domain knowledge and keep private names private."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from texsynth import hookspecs

REPO = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name, obj in inspect.getmembers(hookspecs, inspect.isfunction)
               if name.startswith("texsynth_"))
#: Words that name a domain; the core's code must not use them (docstrings and comments may).
DOMAIN_WORDS = frozenset({"audio", "sound", "sounds", "image", "images", "spectrogram",
                          "spectrograms"})


def test_there_are_hooks() -> None:
    assert "texsynth_register_domains" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_in_the_hook_reference(hook: str) -> None:
    reference = (REPO / "CONTRIBUTING.md").read_text()
    assert f"`{hook}(" in reference, f"{hook} has no entry in CONTRIBUTING.md's hook reference"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    tests = [p for p in (REPO / "tests").rglob("*.py")
             if p.name != "test_meta.py" and (p.name.startswith("test_")
                                               or p.name == "conftest.py")]
    users = [p.name for p in tests if f"def {hook}(" in p.read_text()]
    assert users, f"no test implements {hook}"


# -- the core knows no domain ---------------------------------------------------------------
def words(text: str) -> list[str]:
    """Lower-case words of ``text``: runs of letters, so punctuation, digits, hyphens and
    underscores all separate words (``"image,"`` -> ``image``, ``"texsynth_audio"`` ->
    ``texsynth``, ``audio``)."""
    return re.findall(r"[^\W\d_]+", text.lower())


def test_words_split_on_punctuation() -> None:
    assert words("an image, a sound. (audio) spectrogram's texsynth_image x-images") == [
        "an", "image", "a", "sound", "audio", "spectrogram", "s", "texsynth", "image", "x",
        "images"]
    assert not set(words("imagenet soundness")) & DOMAIN_WORDS


def _docstring_ids(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}


def domain_mentions(source: str, name: str) -> list[str]:
    """Imports of domain libraries and string constants (outside docstrings) that name a
    domain, as ``"name:line: ..."``."""
    tree = ast.parse(source)
    docstrings = _docstring_ids(tree)
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
            found += [(node.lineno, node.col_offset, f"imports {n}") for n in names
                      if n.startswith(("texsynth_", "torchaudio", "librosa", "soundfile",
                                       "PIL", "torchvision"))]
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings):
            hits = sorted(set(words(node.value)) & DOMAIN_WORDS)
            if hits:
                found.append((node.lineno, node.col_offset,
                              f"{node.value!r} names {', '.join(hits)}"))
    return [f"{name}:{line}: {text}" for line, _, text in sorted(found)]


def test_domain_mentions_are_found_next_to_punctuation() -> None:
    source = ('"""Docstrings may say image, audio."""\n'
              'A = "an image, twice"\n'
              'B = f"{A} of audio."\n'
              'C = "texsynth_sound"\n'
              '# comments may say image.\n'
              'D = "imagenet weights"\n')
    assert [m.split(":")[1] for m in domain_mentions(source, "m.py")] == ["2", "3", "4"]


def test_the_core_knows_no_domain() -> None:
    """No module of the core imports a domain plugin or names a domain in its code
    (docstrings and comments may use them as examples)."""
    core = REPO / "texsynth"
    modules = sorted(core.rglob("*.py"))
    assert len(modules) > 10, f"core modules not found under {core}"
    offenders = [m for path in modules
                 for m in domain_mentions(path.read_text(), str(path.relative_to(REPO)))]
    assert not offenders, "\n".join(offenders)


# -- private names stay in their module ---------------------------------------------------------
def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def plugin_packages() -> list[Path]:
    """The packages of the plugins and of the examples (``plugins/*/texsynth_*``)."""
    return sorted(p for pattern in ("plugins/*/texsynth_*", "examples/*/texsynth_*")
                  for p in REPO.glob(pattern) if (p / "__init__.py").is_file())


def project_modules() -> list[Path]:
    """The core, the plugins' and examples' packages and the benchmarks."""
    roots = [REPO / "texsynth", *plugin_packages(), REPO / "benchmarks"]
    return sorted(p for root in roots if root.is_dir() for p in root.rglob("*.py"))


def first_party_roots() -> set[str]:
    """Top-level import names that belong to this repository."""
    roots = {"texsynth", "benchmarks", *(p.name for p in plugin_packages())}
    roots |= {p.stem for p in (REPO / "benchmarks").glob("*.py")}  # run as scripts
    return roots


def _dotted(node: ast.expr) -> list[str] | None:
    """``["a", "b", "c"]`` for the expression ``a.b.c``, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def private_uses(source: str, name: str, first_party: set[str]) -> list[str]:
    """Uses of another first-party module's private names in ``source``:

    * ``from x import _y`` and ``from ._y import z`` (also relative imports),
    * ``import x._y``,
    * ``x._y`` where ``x`` was bound by an import of a first-party module or name.

    Returned as ``"name:line: ..."`` in source order.
    """
    return [f"{name}:{line}: {text}" for line, _, text in sorted(_private_uses(source,
                                                                                first_party))]


def _private_uses(source: str, first_party: set[str]) -> Iterator[tuple[int, int, str]]:
    tree = ast.parse(source)
    bound: dict[str, str] = {}  # local name -> what it was imported as
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in first_party:
                    continue
                if any(_is_private(part) for part in alias.name.split(".")):
                    yield node.lineno, node.col_offset, f"import {alias.name}"
                local = alias.asname or alias.name.split(".")[0]
                bound[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and module.split(".")[0] not in first_party:
                continue
            shown = "." * node.level + module
            if any(_is_private(part) for part in module.split(".") if part):
                imported = ", ".join(alias.name for alias in node.names)
                yield node.lineno, node.col_offset, f"from {shown} import {imported}"
                continue
            for alias in node.names:
                if _is_private(alias.name):
                    yield node.lineno, node.col_offset, f"from {shown} import {alias.name}"
                bound[alias.asname or alias.name] = f"{shown}.{alias.name}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain = _dotted(node)
        if chain is None or chain[0] not in bound or not _is_private(chain[-1]):
            continue
        if any(_is_private(part) for part in chain[1:-1]):
            continue  # reported for the shorter chain inside this one
        yield node.lineno, node.col_offset, ".".join(chain)


def test_private_use_finder_sees_every_form() -> None:
    source = ("import texsynth.optim.synthesis as opt\n"
              "import texsynth._hidden\n"
              "import numpy as np\n"
              "from texsynth.optim.synthesis import _prepare, synthesize\n"
              "from . import _builtin\n"
              "from ._builtin import plugin\n"
              "from texsynth import __version__, optimize\n"
              "class A:\n"
              "    _mine = 1\n"
              "    def f(self):\n"
              "        return self._mine, A._mine, np._private, opt.__doc__\n"
              "opt._run(); optimize._steps(); synthesize._cache; opt.x._y._z\n")
    found = private_uses(source, "m.py", {"texsynth"})
    assert [f.split(": ", 1)[1] for f in found] == [
        "import texsynth._hidden",
        "from texsynth.optim.synthesis import _prepare",
        "from . import _builtin",
        "from ._builtin import plugin",
        "opt._run", "optimize._steps", "synthesize._cache", "opt.x._y",
    ], found


def test_no_module_uses_another_modules_private_names() -> None:
    """Private (underscore-prefixed) names are used only inside their own module: no
    module of the project imports one from, or reads one off, another of its modules."""
    modules = project_modules()
    assert len(modules) > 20, "project modules not found"
    roots = first_party_roots()
    offenders = [use for path in modules
                 for use in private_uses(path.read_text(), str(path.relative_to(REPO)), roots)]
    assert not offenders, "private names used outside their module:\n" + "\n".join(offenders)
