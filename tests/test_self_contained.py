"""A clone is self-contained: no test, example, benchmark, script or README command reads
a path outside the repository (a user's clone has nothing beside it)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Folders whose files run as tests, examples, benchmarks or set-up steps.
CHECKED = ("tests", "examples", "benchmarks", "scripts", ".ci", "texsynth", "plugins")
#: A relative path that climbs out of a folder into a named sibling (``../shared``) or
#: two levels at once (``../..``).
CLIMB = re.compile(r"\.\./(?:\.\.|[\w-])")


def _join_level(level: int, text: str) -> int:
    """The level of ``base / text`` for a base ``level`` folders above the file."""
    for part in PurePosixPath(text).parts:
        if part == "..":
            level += 1
        elif part not in (".", "/"):
            level -= 1
    return level


class _Levels(ast.NodeVisitor):
    """Finds expressions that name a path relative to ``__file__`` and how many folders
    above the file each one points (``Path(__file__)``: 0, ``.parent``: 1, ``.parents[k]``:
    k + 1, ``/ ".."``: one more); names bound to such paths are followed."""

    def __init__(self) -> None:
        self.bound: dict[str, int] = {}
        self.found: list[tuple[int, int]] = []  # (line, level)

    def level(self, node: ast.AST) -> int | None:
        if isinstance(node, ast.Name):
            return 0 if node.id == "__file__" else self.bound.get(node.id)
        if isinstance(node, ast.Attribute):
            if node.attr == "parent":
                base = self.level(node.value)
                return None if base is None else base + 1
            return None
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "parents" and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, int):
            base = self.level(node.value.value)
            return None if base is None else base + node.slice.value + 1
        if isinstance(node, ast.Call):
            return self._call_level(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) \
                and isinstance(node.right, ast.Constant) and isinstance(node.right.value, str):
            base = self.level(node.left)
            return None if base is None else _join_level(base, node.right.value)
        return None

    def _call_level(self, node: ast.Call) -> int | None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("Path", "PurePath", "abspath", "realpath") and node.args:
            return self.level(node.args[0])
        if name in ("resolve", "absolute") and isinstance(func, ast.Attribute):
            return self.level(func.value)
        if name == "dirname" and node.args:
            base = self.level(node.args[0])
            return None if base is None else base + 1
        if name == "join" and node.args:
            base = self.level(node.args[0])
            for arg in node.args[1:]:
                if base is None or not (isinstance(arg, ast.Constant)
                                        and isinstance(arg.value, str)):
                    return None
                base = _join_level(base, arg.value)
            return base
        return None

    def visit_Assign(self, node: ast.Assign) -> None:
        level = self.level(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name) and level is not None:
                self.bound[target.id] = level
        self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.expr):
            level = self.level(node)
            if level is not None:
                self.found.append((getattr(node, "lineno", 0), level))
        super().generic_visit(node)


def outside_references(source: str, relative: PurePosixPath) -> list[str]:
    """Places in the Python ``source`` of the repository file ``relative`` that point
    outside the repository, as ``"line N: ..."``."""
    visitor = _Levels()
    tree = ast.parse(source)
    visitor.visit(tree)
    top = len(relative.parts)  # the repository root, in folders above the file
    problems = [f"line {line}: a path {level - top} folder(s) above the repository"
                for line, level in visitor.found if level > top]
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and CLIMB.search(node.value):
            problems.append(f"line {node.lineno}: {node.value.strip()[:60]!r} climbs out")
    return sorted(set(problems))


def _files() -> Iterator[Path]:
    for folder in CHECKED:
        for path in sorted((REPO / folder).rglob("*")):
            wanted = path.suffix in (".py", ".sh") or path.name == "run"
            if wanted and ".venv" not in path.parts and "build" not in path.parts:
                yield path


def test_no_file_reads_a_path_outside_the_repository() -> None:
    problems = []
    for path in _files():
        relative = PurePosixPath(path.relative_to(REPO).as_posix())
        text = path.read_text()
        if path.suffix == ".py":
            problems += [f"{relative}: {p}" for p in outside_references(text, relative)]
        else:
            problems += [f"{relative}:{n}: {line.strip()}"
                         for n, line in enumerate(text.splitlines(), 1)
                         if CLIMB.search(line.split("#", 1)[0])]
    assert not problems, "paths outside the repository:\n" + "\n".join(problems)


def test_readme_commands_stay_inside_the_repository() -> None:
    for doc in ("README.md", "CONTRIBUTING.md"):
        blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", (REPO / doc).read_text(),
                            flags=re.S)
        climbing = [line for block in blocks for line in block.splitlines()
                    if CLIMB.search(line)]
        assert not climbing, f"{doc} commands read outside the repository: {climbing}"


@pytest.mark.parametrize(("source", "where", "outside"), [
    ('from pathlib import Path\nX = Path(__file__).resolve().parents[2] / "shared"\n',
     "tests/conftest.py", True),
    ('from pathlib import Path\nX = Path(__file__).resolve().parents[1] / "examples"\n',
     "tests/conftest.py", False),
    ('from pathlib import Path\nHERE = Path(__file__).parent\nD = HERE.parent.parent / "d"\n',
     "benchmarks/common.py", True),
    ('from pathlib import Path\nHERE = Path(__file__).parent\nD = HERE.parent / "examples"\n',
     "benchmarks/common.py", False),
    ('import os\nD = os.path.join(os.path.dirname(__file__), "..", "..")\n',
     "tests/test_x.py", True),
    ('D = "..' + '/shared/data/images"\n', "examples/x.py", True),  # split: not itself a hit
    ('D = "examples/data/bricks.png"\n', "examples/x.py", False),
])
def test_the_check_sees_paths_outside(source: str, where: str, outside: bool) -> None:
    assert bool(outside_references(source, PurePosixPath(where))) is outside


def test_every_sample_file_has_a_sources_row() -> None:
    data = REPO / "examples" / "data"
    sources = (data / "SOURCES.md").read_text()
    files = [p.name for p in data.iterdir() if p.is_file() and p.name != "SOURCES.md"]
    assert files
    missing = [name for name in files if f"`{name}`" not in sources]
    assert not missing, f"examples/data files without a SOURCES.md row: {missing}"
