"""The package's shape: no imports in a circle, and no file too long to read in one sitting.

Every module is parsed, not imported, so that an import inside a function or under
``TYPE_CHECKING`` counts as much as one at the top: a cycle through either is still a tangle for
a reader, and a function-local import is one refactor away from a real ImportError.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pokedreamer"
AGENT_MAX_LINES = 400
MAX_LINES = 650
LONG_FILES_ALLOWED = ("env/cartridge/",)  # the tile generator's data, not code to read


class Edge(NamedTuple):
    """One module importing another, and where it says so ("pokedreamer/cli.py", line 12)."""

    target: str
    file: str
    line: int


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root`` by dotted name; a package by its __init__.py."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imported(node: ast.AST, module: str, is_package: bool) -> tuple[list[str], list[str]]:
    """What one node imports: (the modules it names, the packages Python runs on the way)."""
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the importing module's package, one level up per dot
            package = module.split(".") if is_package else module.split(".")[:-1]
            anchor = package[: len(package) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        # `from a.b import c` runs a.b, and a.b.c too when c is a module rather than a name.
        named = [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
        in ("import_module", "__import__")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        named = [node.args[0].value]
    else:
        return [], []
    return named, [a for name in named for a in _ancestors(name)]


def import_graph(root: Path) -> dict[str, list[Edge]]:
    """Each module's imports of the package's own modules, wherever in the file they are.

    A module's own enclosing packages are already imported by the time it runs, so reaching them
    on the way to a sibling adds no edge; naming one of them in an import does.
    """
    found = modules(root)
    graph: dict[str, list[Edge]] = {}
    for module, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        own = set(_ancestors(module))
        file = path.relative_to(root.parent).as_posix()
        edges = []
        for node in ast.walk(tree):
            named, passed = _imported(node, module, path.name == "__init__.py")
            targets = {*named, *(p for p in passed if p not in own)}
            line = getattr(node, "lineno", 0)
            edges += [Edge(t, file, line) for t in sorted(targets) if t in found and t != module]
        graph[module] = edges
    return graph


def cycles(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, without
    recursion), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[Edge]]] = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            edge = next(edges, None)
            if edge is not None:
                if edge.target not in index:
                    index[edge.target] = low[edge.target] = len(index)
                    stack.append(edge.target)
                    on_stack.add(edge.target)
                    work.append((edge.target, iter(graph[edge.target])))
                elif edge.target in on_stack:
                    low[node] = min(low[node], index[edge.target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def describe_cycle(component: list[str], graph: dict[str, list[Edge]]) -> str:
    """The shortest circle through the component's first module, each step with the file and
    line of its import: "a -> b (pkg/a.py:3) -> a (pkg/b.py:9)"."""
    members = set(component)
    first = component[0]
    importer_of: dict[str, tuple[str, Edge]] = {}  # a module reached -> who imports it, and where
    frontier = [first]
    while frontier and first not in importer_of:
        reached = []
        for node in frontier:
            for edge in graph[node]:
                if edge.target in members and edge.target not in importer_of:
                    importer_of[edge.target] = (node, edge)
                    reached.append(edge.target)
        frontier = reached
    steps: list[Edge] = []
    node = first
    while not steps or node != first:
        node, edge = importer_of[node][0], importer_of[node][1]
        steps.append(edge)
    circle = first + "".join(f" -> {e.target} ({e.file}:{e.line})" for e in reversed(steps))
    others = sorted(members - {e.target for e in steps})
    return circle + (f"; the same tangle also holds {', '.join(others)}" if others else "")


def too_long(root: Path) -> list[str]:
    """The package's files over their length limit, "path (lines, at most N)", longest first."""
    over = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(LONG_FILES_ALLOWED):
            continue
        limit = AGENT_MAX_LINES if relative.startswith("agent/") else MAX_LINES
        with path.open(encoding="utf-8") as fh:
            lines = sum(1 for _ in fh)
        if lines > limit:
            over.append((lines, f"{root.name}/{relative} ({lines} lines, at most {limit})"))
    return [text for _, text in sorted(over, reverse=True)]


# --- the package ------------------------------------------------------------------------------


def test_no_imports_in_a_circle() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the whole package was read
    found = cycles(graph)
    assert not found, "imports in a circle:\n" + "\n".join(describe_cycle(c, graph) for c in found)


def test_no_file_is_too_long() -> None:
    assert not too_long(PACKAGE), "files too long to read in one sitting: " + "; ".join(
        too_long(PACKAGE)
    )


# --- the checker itself, on small packages written for it -------------------------------------


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for folder in {p.parent for p in (root / "pkg").rglob("*.py")}:
        (folder / "__init__.py").touch()
    return root / "pkg"


@pytest.mark.parametrize(
    ("files", "circle"),
    [
        (  # the plainest: two modules at the top of each other
            {"a.py": "import pkg.b\n", "b.py": "from pkg.a import x\n"},
            ["pkg.a", "pkg.b"],
        ),
        (  # inside a function, and under TYPE_CHECKING
            {
                "a.py": "def f():\n    from pkg import b\n",
                "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
            },
            ["pkg.a", "pkg.b"],
        ),
        (  # relative imports, and `from package import module`
            {
                "sub/a.py": "from . import b\n",
                "sub/b.py": "from ..c import y\n",
                "c.py": "from pkg.sub import a\n",
            },
            ["pkg.c", "pkg.sub.a", "pkg.sub.b"],
        ),
        (  # a package's __init__ that imports a module which imports the package back
            {"sub/__init__.py": "from pkg.sub.a import x\n", "sub/a.py": "from pkg.sub import y\n"},
            ["pkg.sub", "pkg.sub.a"],
        ),
        (  # through a package Python runs on the way to the module named
            {"sub/__init__.py": "import pkg.a\n", "sub/m.py": "", "a.py": "import pkg.sub.m\n"},
            ["pkg.a", "pkg.sub"],
        ),
        (  # importlib with a constant name
            {
                "a.py": "import importlib\nimportlib.import_module('pkg.b')\n",
                "b.py": "import pkg.a\n",
            },
            ["pkg.a", "pkg.b"],
        ),
    ],
    ids=["top", "function-and-type-checking", "relative", "init", "on-the-way", "importlib"],
)  # fmt: skip
def test_the_checker_finds_a_circle(
    tmp_path: Path, files: dict[str, str], circle: list[str]
) -> None:
    graph = import_graph(write_package(tmp_path, files))
    found = cycles(graph)
    assert found == [circle]
    described = describe_cycle(found[0], graph)
    assert described.startswith(f"{circle[0]} -> ") and described.count(circle[0]) >= 2, described
    assert ".py:" in described


def test_the_checker_passes_a_package_without_circles(tmp_path: Path) -> None:
    files = {
        # A sibling reached through the package it shares, and an __init__ gathering its modules.
        "sub/__init__.py": "from pkg.sub.a import x\nfrom pkg.sub.b import y\n",
        "sub/a.py": "import pkg.sub.b\nfrom pkg import c\n",
        "sub/b.py": "from pkg.c import z\n",
        "c.py": "import os\n",
        "d.py": "from pkg.sub import a, b\n",
    }
    graph = import_graph(write_package(tmp_path, files))
    assert cycles(graph) == []
    assert {e.target for e in graph["pkg.sub.a"]} == {"pkg", "pkg.c", "pkg.sub.b"}
    assert {e.target for e in graph["pkg.d"]} == {"pkg.sub", "pkg.sub.a", "pkg.sub.b"}


def test_the_checker_measures_files(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "agent/loop.py": "x = 1\n" * (AGENT_MAX_LINES + 1),
            "agent/ok.py": "x = 1\n" * AGENT_MAX_LINES,
            "cli.py": "x = 1\n" * (MAX_LINES + 1),
            "config.py": "x = 1\n" * MAX_LINES,
            "env/cartridge/tilegen.py": "x = 1\n" * 2000,
        },
    )
    assert too_long(root) == [
        f"pkg/cli.py ({MAX_LINES + 1} lines, at most {MAX_LINES})",
        f"pkg/agent/loop.py ({AGENT_MAX_LINES + 1} lines, at most {AGENT_MAX_LINES})",
    ]
