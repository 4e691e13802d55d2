"""The modules of evstore/net import one another without a cycle (issue 13 item 3: node.py and
service.py used to import each other). Every import counts: at module level, inside a function
and under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

NET = Path(__file__).resolve().parents[2] / "evstore" / "net"


def _net_imports(path: Path, modules: set[str]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[2] for a in node.names
                       if a.name.startswith("evstore.net."))
        elif isinstance(node, ast.ImportFrom) and node.module == "evstore.net":
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("evstore.net."):
            out.add((node.module or "").split(".")[2])
    return (out & modules) - {path.stem}


def graph() -> dict[str, set[str]]:
    modules = {p.stem for p in NET.glob("*.py")} - {"__init__"}
    return {m: _net_imports(NET / f"{m}.py", modules) for m in sorted(modules)}


def _cycle_from(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    """A path start -> ... -> start, if there is one (depth first)."""
    todo, seen = [(start, [start])], set()
    while todo:
        here, path = todo.pop()
        for nxt in sorted(edges[here]):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                todo.append((nxt, [*path, nxt]))
    return None


def test_no_import_cycle_among_the_net_modules() -> None:
    edges = graph()
    cycles = [c for m in edges if (c := _cycle_from(m, edges))]
    assert not cycles, f"import cycles in evstore/net: {cycles}"


def test_relative_imports_are_not_used_so_the_graph_sees_everything() -> None:
    relative = [p.name for p in NET.glob("*.py")
                if any(isinstance(n, ast.ImportFrom) and n.level
                       for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
    assert not relative, relative


def test_the_detector_finds_a_cycle() -> None:
    assert _cycle_from("node", {"node": {"service"}, "service": {"node"}}) == [
        "node", "service", "node"]
    assert _cycle_from("node", {"node": {"service"}, "service": set()}) is None
