"""The role table is one: evstore/core/admit.py judges events with it and the operations
refuse with it before staging (a copy in ops could drift from what every node applies)."""

from __future__ import annotations

import ast
from pathlib import Path

from evstore.core import admit, catalog
from evstore.ops import users

ROOT = Path(__file__).resolve().parents[2]


def test_ops_uses_the_core_table() -> None:
    assert users.CAN is admit.CAN
    assert set(admit.CAN) == set(catalog.ROLES) == set(users.ROLES)


def test_no_other_module_defines_a_role_table() -> None:
    found = []
    for path in sorted((ROOT / "evstore").rglob("*.py")) + sorted((ROOT / "cli").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            for t in targets:
                if isinstance(t, ast.Name) and t.id == "CAN" and isinstance(
                        getattr(node, "value", None), ast.Dict):
                    found.append(str(path.relative_to(ROOT)))
    assert found == ["evstore/core/admit.py"]
