"""The house shows its architecture: packages by responsibility in one direction of flow,
no import cycles (not even one dodged inside a function), modules of one idea.

The layers, lowest first (a module imports only its own package and lower layers):

``contract`` (top-level modules) -> ``runtime`` -> ``controls`` -> ``stats`` -> ``optim``
-> ``feedforward`` -> ``cli``.

The package root (``texsynth/__init__.py``), ``__main__`` and the pytest plugin
``testing`` are the front: they may import anything and nothing imports them.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "texsynth"
LAYERS = ("contract", "runtime", "controls", "stats", "optim", "feedforward", "cli")
FRONT = frozenset({"texsynth", "texsynth.__main__", "texsynth.testing"})
PLUGINS = sorted(p for p in (REPO / "plugins").glob("*/texsynth_*") if p.is_dir())
#: Done-when bounds (the house style aims lower: ~500 lines a module, ~80 a function).
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100


@dataclass
class ImportGraph:
    """Imports between the modules of one package tree: ``edges[a]`` are the modules
    ``a`` imports anywhere (module level, inside functions, under ``TYPE_CHECKING``);
    ``deferred[a]`` those it imports inside a function."""

    edges: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    deferred: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def reaches(self, start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(self.edges.get(node, ()))
        return False

    def cycles(self) -> list[list[str]]:
        """Every cycle's modules (strongly connected components of more than one)."""
        order: list[str] = []
        seen: set[str] = set()
        nodes = sorted(set(self.edges) | {b for bs in self.edges.values() for b in bs})
        for node in nodes:  # iterative DFS post-order
            if node in seen:
                continue
            stack = [(node, iter(sorted(self.edges.get(node, ()))))]
            seen.add(node)
            while stack:
                current, children = stack[-1]
                child = next(children, None)
                if child is None:
                    stack.pop()
                    order.append(current)
                elif child not in seen:
                    seen.add(child)
                    stack.append((child, iter(sorted(self.edges.get(child, ())))))
        reverse: dict[str, set[str]] = defaultdict(set)
        for a, bs in self.edges.items():
            for b in bs:
                reverse[b].add(a)
        found, assigned = [], set()
        for node in reversed(order):
            if node in assigned:
                continue
            component, todo = [], [node]
            while todo:
                current = todo.pop()
                if current in assigned:
                    continue
                assigned.add(current)
                component.append(current)
                todo.extend(reverse.get(current, ()))
            if len(component) > 1:
                found.append(sorted(component))
        return found


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, here: str, is_package: bool, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names if a.name in known)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = here.split(".") if is_package else here.split(".")[:-1]
            base = base[:len(base) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            yield sub if sub in known else target


def import_graph(root: Path) -> ImportGraph:
    """The :class:`ImportGraph` of the package at ``root`` (imports of other packages are
    left out)."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    graph = ImportGraph()
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            for target in _imported(node, name, path.name == "__init__.py", known):
                if target in known and target != name:
                    graph.edges[name].add(target)
                    if id(node) not in top_level and not _type_checking(tree, node):
                        graph.deferred[name].add(target)
    return graph


def _type_checking(tree: ast.Module, node: ast.AST) -> bool:
    return any(isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
               and node in list(ast.walk(n)) for n in tree.body)


def layer(module: str) -> str:
    """``texsynth.stats.losses`` -> ``stats``; a top-level module -> ``contract``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (CORE / parts[-1]).is_dir() else "contract"


# -- the analysis itself can fail ----------------------------------------------------------
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_cycle_dodged_inside_a_function_is_still_a_cycle(tmp_path: Path) -> None:
    root = _package(tmp_path, {"a.py": "from .b import x\n",
                               "b.py": "def f():\n    from .a import y\n"})
    graph = import_graph(root)
    assert graph.cycles() == [["pkg.a", "pkg.b"]]
    assert graph.deferred["pkg.b"] == {"pkg.a"}


def test_imports_between_sub_packages_are_seen(tmp_path: Path) -> None:
    root = _package(tmp_path, {"low/__init__.py": "", "low/m.py": "X = 1\n",
                               "high/__init__.py": "", "high/n.py": "from ..low.m import X\n",
                               "top.py": "from .low import m\n"})
    graph = import_graph(root)
    assert graph.edges["pkg.high.n"] == {"pkg.low.m"}
    assert graph.edges["pkg.top"] == {"pkg.low.m"}
    assert not graph.cycles()


# -- the rules -------------------------------------------------------------------------------
GRAPH = import_graph(CORE)


def test_the_top_level_is_a_short_contract_and_the_rest_sub_packages() -> None:
    modules = sorted(p.name for p in CORE.glob("*.py"))
    packages = sorted(p.name for p in CORE.iterdir() if (p / "__init__.py").is_file())
    assert len(modules) <= 15, modules
    assert len(packages) >= 5, packages
    assert set(packages) == set(LAYERS[1:]), packages


def test_there_is_no_import_cycle() -> None:
    assert not GRAPH.cycles(), GRAPH.cycles()


def test_no_import_inside_a_function_closes_a_cycle() -> None:
    dodged = [(a, b) for a, bs in GRAPH.deferred.items() for b in bs if GRAPH.reaches(b, a)]
    assert not dodged, dodged


def test_imports_flow_one_way_through_the_layers() -> None:
    upward = [(a, b) for a, bs in GRAPH.edges.items() if a not in FRONT for b in bs
              if b in FRONT or LAYERS.index(layer(b)) > LAYERS.index(layer(a))]
    assert not upward, "imports against the layers:\n" + "\n".join(
        f"{a} ({layer(a)}) imports {b} ({layer(b)})" for a, b in upward)


def test_the_contract_imports_no_sub_package() -> None:
    bad = [(a, b) for a, bs in GRAPH.edges.items() if a not in FRONT and layer(a) == "contract"
           for b in bs if layer(b) != "contract"]
    assert not bad, bad


def test_statistics_import_neither_optimisation_nor_feed_forward_nor_the_cli() -> None:
    bad = [(a, b) for a, bs in GRAPH.edges.items() if layer(a) == "stats" for b in bs
           if layer(b) in ("optim", "feedforward", "cli")]
    assert not bad, bad


@pytest.mark.parametrize("plugin", PLUGINS, ids=[p.name for p in PLUGINS])
def test_a_plugin_has_no_import_cycle_and_the_common_layout(plugin: Path) -> None:
    graph = import_graph(plugin)
    assert not graph.cycles(), graph.cycles()
    assert not [(a, b) for a, bs in graph.deferred.items() for b in bs if graph.reaches(b, a)]
    for required in ("hooks.py", "domain.py"):
        assert (plugin / required).is_file(), f"{plugin.name} has no {required}"
    assert (plugin / "io.py").is_file() or (plugin / "io" / "__init__.py").is_file(), \
        f"{plugin.name} keeps its file reading and writing outside io"


def _sources() -> list[Path]:
    return sorted([*CORE.rglob("*.py"), *(REPO / "plugins").rglob("texsynth_*/**/*.py")])


def test_modules_are_of_one_idea() -> None:
    long = [f"{p.relative_to(REPO)}: {n} lines" for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, long


def test_functions_are_short() -> None:
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length}")
    assert not long, long


def test_tests_mirror_the_packages() -> None:
    """``tests/<package>/`` for every sub-package with tests of its modules; no test of a
    sub-package's module left at the top of ``tests/``."""
    tests = REPO / "tests"
    for package in LAYERS[1:]:
        assert list((tests / package).glob("test_*.py")), f"tests/{package}/ has no tests"
    modules = {p.stem: p.parent.name for p in CORE.rglob("*.py") if p.parent != CORE}
    misplaced = [p.name for p in tests.glob("test_*.py")
                 if modules.get(p.stem.removeprefix("test_")) not in (None, "")]
    assert not misplaced, misplaced
