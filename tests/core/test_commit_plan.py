"""Commit planning (evstore/core/commit_plan.py), table-driven: the change each staged row
writes, the conflicts that stop a commit, and what discard and force do with them."""

from __future__ import annotations

from typing import Any

import pytest

from evstore.core.commit_plan import (
    Change,
    Conflict,
    Current,
    Staged,
    change_of,
    conflict_of,
    plan,
)

S = "x-test"  # a section the catalog does not know: every key is one field
B0, B1 = (1, "a" * 64, "e0"), (2, "b" * 64, "e1")  # two bases: before and after someone's commit


def row(value: Any, orig: Any, base: Any = B0, mode: str = "@cluster") -> Staged:
    return Staged(mode, S, value, orig, base)


CHANGES = [
    # (what, staged row, current value, expected payload or None)
    ("delete what is there", row(None, {"a": 1}), {"a": 1},
     {"mode": "@cluster", "section": S, "base": list(B0), "op": "delete"}),
    ("delete what is gone already", row(None, {"a": 1}), None, None),
    ("define a new section", row({"a": 1}, None), None,
     {"mode": "@cluster", "section": S, "base": list(B0), "op": "define", "value": {"a": 1}}),
    ("define over a section gone since", row({"a": 2}, {"a": 1}), None,
     {"mode": "@cluster", "section": S, "base": list(B0), "op": "define", "value": {"a": 2}}),
    ("patch only my fields", row({"a": 2, "c": 3}, {"a": 1, "b": 1}), {"a": 1, "b": 9},
     {"mode": "@cluster", "section": S, "base": list(B0), "op": "patch",
      "set": {"a": 2, "c": 3}, "unset": ["b"]}),
    ("nothing changed", row({"a": 1}, {"a": 1}), {"a": 5}, None),
]


@pytest.mark.parametrize("what,staged,cur,expected", CHANGES, ids=[c[0] for c in CHANGES])
def test_change_of(what: str, staged: Staged, cur: Any, expected: Any) -> None:
    ch = change_of(staged, cur, B0)
    assert (ch.payload() if ch else None) == expected


def test_a_payload_keeps_its_key_order_and_a_missing_base() -> None:
    ch = Change("m", S, None, "patch", sets={"a": 1}, unsets=[])
    assert list(ch.payload()) == ["mode", "section", "base", "op", "set", "unset"]
    assert ch.payload()["base"] is None


CONFLICTS = [
    # (what, staged row, current, conflicting fields or None)
    ("nothing committed since", row({"a": 2}, {"a": 1}), Current({"a": 7}, B0), None),
    ("other fields changed", row({"a": 2, "b": 1}, {"a": 1, "b": 1}),
     Current({"a": 1, "b": 5}, B1), None),
    ("the same field changed", row({"a": 2}, {"a": 1}), Current({"a": 3}, B1), ["a"]),
    ("both defined it", row({"a": 1}, None), Current({"b": 1}, B1), []),
    ("I delete what they changed", row(None, {"a": 1}), Current({"a": 2}, B1), ["a"]),
    ("I delete, they added a field", row(None, {"a": 1}), Current({"a": 1, "b": 1}, B1), []),
    ("I delete, they moved nothing of it", row(None, {"a": 1}), Current({"a": 1}, B1), None),
]


@pytest.mark.parametrize("what,staged,now,fields", CONFLICTS, ids=[c[0] for c in CONFLICTS])
def test_conflict_of(what: str, staged: Staged, now: Current, fields: Any) -> None:
    c = conflict_of(staged, now)
    if fields is None:
        assert c is None
    else:
        assert c == Conflict(staged.mode, S, fields, staged.value, now.value)


CLASH = row({"a": 2}, {"a": 1})  # they set a=3 meanwhile
CLEAN = Staged("@cluster", "y-test", {"k": 1}, None, None)
NOW = {("@cluster", S): Current({"a": 3}, B1), ("@cluster", "y-test"): Current(None, None)}
PLANS = [
    # (what, discard, force, changes as (section, base), used sections, conflicts)
    ("a conflict stops its row", False, False, [("y-test", None)], ["y-test"], 1),
    ("discard drops it, unwritten", True, False, [("y-test", None)], [S, "y-test"], 1),
    ("force writes it on the current base", False, True, [(S, list(B1)), ("y-test", None)],
     [S, "y-test"], 1),
]


@pytest.mark.parametrize("what,discard,force,changes,used,conflicts", PLANS,
                         ids=[p[0] for p in PLANS])
def test_plan(what: str, discard: bool, force: bool, changes: list[Any], used: list[str],
              conflicts: int) -> None:
    p = plan([CLASH, CLEAN], NOW, discard=discard, force=force)
    assert [(c.section, c.payload()["base"]) for c in p.changes] == changes
    assert [r.section for r in p.used] == used
    assert len(p.conflicts) == conflicts


def test_a_plan_without_conflicts_writes_every_row_on_its_own_base() -> None:
    p = plan([CLEAN], NOW)
    assert p.conflicts == [] and p.used == [CLEAN]
    assert p.changes == [Change("@cluster", "y-test", None, "define", value={"k": 1})]
