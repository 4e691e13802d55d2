"""docs/architecture.md cannot point at code that has moved: every module path it names
exists, and every ``path.py::name`` (or ``path.py::Class.method``) is defined there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
REF = re.compile(r"`((?:evstore|cli|migrations|tests)/[\w./]*)(?:::([\w.]+))?`")


def _refs() -> list[tuple[str, str | None]]:
    return [(m.group(1), m.group(2)) for m in REF.finditer(DOC.read_text(encoding="utf-8"))]


def _defines(text: str, name: str) -> bool:
    return bool(re.search(rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b"
                          rf"|^{re.escape(name)}\s*[:=]", text, re.M))


def test_the_map_names_many_places() -> None:
    assert len(_refs()) > 40


def test_every_path_the_map_names_exists() -> None:
    missing = sorted({p for p, _ in _refs() if not (ROOT / p).exists()})
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_function_the_map_names_is_defined_there() -> None:
    missing = []
    for path, name in _refs():
        if name is None or not (ROOT / path).is_file():
            continue
        text = (ROOT / path).read_text(encoding="utf-8")
        if not all(_defines(text, part) for part in name.split(".")):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/architecture.md names what these files do not define: {missing}"
