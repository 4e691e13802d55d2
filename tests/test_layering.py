"""The layering of STYLE.md, checked: the core is pure, and imports only point down.

    cli, web          shells (typer, ASGI)
    net               trio shell (sockets, timers, the node loop)
    ops               operations shared by the shells
    storage           SQLite shell
    core              pure: stdlib + PyNaCl only
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "evstore"
LAYER = {"core": 0, "storage": 1, "ops": 2, "aio": 2, "net": 3, "web": 3}
CORE_BANNED = {"sqlite3", "trio", "typer", "aiosqlite", "sqlite_utils", "socket", "os", "time",
               "random", "secrets", "threading", "asyncio", "subprocess", "datetime", "pathlib"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _layer_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if _layer_of(p) in LAYER)


@pytest.mark.parametrize("path", sorted((PKG / "core").rglob("*.py")), ids=lambda p: p.name)
def test_core_is_pure(path: Path) -> None:
    bad = {m for m in _imports(path) if m.split(".")[0] in CORE_BANNED}
    assert not bad, f"{path.name} imports {sorted(bad)}: the core must not do I/O"


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path: Path) -> None:
    mine = LAYER[_layer_of(path)]
    for module in _imports(path):
        parts = module.split(".")
        if parts[0] != "evstore" or len(parts) < 2 or parts[1] not in LAYER:
            continue
        assert LAYER[parts[1]] <= mine, f"{path} imports {module}: a lower layer imports a higher one"
        if parts[1] in ("net", "web") and _layer_of(path) in ("net", "web"):
            assert parts[1] == _layer_of(path) or _layer_of(path) == "net", (
                f"{path} imports {module}"
            )


def test_cli_and_migrations_are_uniquely_named_packages() -> None:
    assert (ROOT / "cli" / "evstore_cli" / "__init__.py").exists()
    assert (ROOT / "migrations" / "evstore_migrations" / "__init__.py").exists()
    assert not (ROOT / "cli" / "__init__.py").exists()
    assert not (ROOT / "migrations" / "__init__.py").exists()


def test_public_api_resolves_and_hides_privates() -> None:
    import evstore

    for name in evstore.__all__:
        assert not name.startswith("_") or name == "__version__"
        assert getattr(evstore, name) is not None
