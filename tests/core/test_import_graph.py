"""The core's modules import one another without a cycle (issue 13: admit <-> state was one).

Every import counts, at module level or inside a function, and importing ``a.b.c`` runs the
packages ``a.b`` first: a package ``__init__`` that re-exports its submodules while one of
them imports the package back is a cycle too. A module's own enclosing packages are already
being imported when it runs, so that implicit step is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "evstore" / "core"


def _name_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_name_of(p): p for p in sorted(CORE.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, me: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = me.split(".") if is_package else me.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(path: Path, me: str, known: set[str]) -> set[str]:
    """The core modules ``path`` imports, with the packages each import runs on the way."""
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            named.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, me, path.name == "__init__.py")
            named.add(module)
            named.update(f"{module}.{a.name}" for a in node.names)
    mine = {me.rsplit(".", n)[0] for n in range(1, me.count(".") + 1)}
    out: set[str] = set()
    for name in named:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            step = ".".join(parts[:i])
            if step in known and step not in mine and step != me:
                out.add(step)
    return out


def import_graph() -> dict[str, set[str]]:
    """{core module: the core modules it imports}."""
    mods = _modules()
    return {m: _targets(p, m, set(mods)) for m, p in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_core_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_graph_sees_function_level_and_package_imports() -> None:
    graph = import_graph()
    assert "evstore.core.catalog" in graph["evstore.core.admit"]
    assert "evstore.core.state.fold" in graph["evstore.core.state"]  # the re-exports
    assert "evstore.core.admit" in graph["evstore.core.state.fold"]
    assert "evstore.core.catalog" not in graph["evstore.core.catalog.sections"]


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
