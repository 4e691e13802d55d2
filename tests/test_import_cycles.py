"""No import cycles: the modules of evstore, evstore_cli and evstore_migrations form a DAG.

A cycle means two modules that cannot be understood (or loaded) one without the other; the
cure is a module below both that holds what they share. The graph counts every import, also
those inside functions and under ``TYPE_CHECKING``: an import moved into a function still
ties the two modules together. ``from a import b`` is an edge to ``a`` (its ``__init__``
runs) and, when ``a.b`` is a module, to ``a.b`` too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (ROOT / "evstore", ROOT / "cli" / "evstore_cli",
            ROOT / "migrations" / "evstore_migrations")

Graph = Mapping[str, frozenset[str]]


def module_files(package: Path) -> dict[str, Path]:
    """Every module of one package, by dotted name (a package by the name of its __init__)."""
    out: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name a ``from`` import starts from, its dots resolved against ``module``."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, node.module] if node.module else package)


def _known(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ours (``import a.b.c`` loads ``a.b.c``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in modules:
            return prefix
    return None


def _targets(node: ast.Import | ast.ImportFrom, module: str, path: Path,
             modules: Mapping[str, Path]) -> Iterator[str | None]:
    """The modules of ours that one import statement loads (None for one not ours)."""
    if isinstance(node, ast.Import):
        yield from (_known(alias.name, modules) for alias in node.names)
        return
    base = _base(module, path, node)
    yield _known(base, modules)
    yield from (f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules)


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> frozenset[str]:
    """The modules of ours that ``module`` imports anywhere in its text."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.update(t for t in _targets(node, module, path, modules) if t is not None)
    return frozenset(out - {module})


def import_graph(packages: tuple[Path, ...]) -> dict[str, frozenset[str]]:
    """Module name -> the modules of these packages that it imports."""
    modules: dict[str, Path] = {}
    for package in packages:
        modules.update(module_files(package))
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: Graph) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    return {component for component in _components(graph) if len(component) > 1}


def _components(graph: Graph) -> list[frozenset[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, frozenset())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            found.append(_pop_component(stack, node))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _pop_component(stack: list[str], root: str) -> frozenset[str]:
    members: set[str] = set()
    while True:
        member = stack.pop()
        members.add(member)
        if member == root:
            return frozenset(members)


def _describe(found: AbstractSet[frozenset[str]]) -> str:
    return "; ".join(" <-> ".join(sorted(cycle)) for cycle in sorted(found, key=sorted))


def test_no_import_cycle() -> None:
    found = cycles(import_graph(PACKAGES))
    assert not found, (f"import cycles: {_describe(found)}; "
                       "move what both sides need to a module below them")


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def test_the_detector_finds_a_cycle_in_a_tiny_package(tmp_path: Path) -> None:
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": "def f():\n    from pkg.a import x\n",
        "pkg/c.py": "import pkg.a\n",
        "pkg/sub/__init__.py": "from .d import y\n",
        "pkg/sub/d.py": "from pkg import sub\n",
    })
    graph = import_graph((tmp_path / "pkg",))
    assert graph["pkg.a"] == {"pkg", "pkg.b"}
    assert cycles(graph) == {frozenset({"pkg.a", "pkg.b"}), frozenset({"pkg.sub", "pkg.sub.d"})}
