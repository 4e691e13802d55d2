"""Commit planning, pure: from a user's staged changes and what each section holds now, the
changes a commit writes and the conflicts that stop it.

Theory of operation
-------------------
Each staged row keeps the section as it was when first staged (``orig``) and the newest
event that had shaped it then (``base``). At commit the caller reads what the section holds
now (``Current``: its value and the newest event that shaped it) and hands both here:

* **conflict** (``conflict_of``): the section moved since it was staged (another base), and
  someone else changed a field this user changed too, or both defined a section that was
  absent, or this user deletes a section someone else changed meanwhile;
* **change** (``change_of``): a deletion, a whole definition (the section was absent when
  staged, or is absent now), or a ``patch`` that sets and unsets only the fields this user
  changed, so concurrent changes to other fields survive. A row that changes nothing gives
  no change;
* **plan** (``plan``): every row in order. A conflicting row stops the commit unless the user
  discards (the row is dropped, unwritten) or forces (written against the current base).

The changes are written into the commit event as dicts (``Change.payload``): their keys and
order are part of the signed bytes and stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evstore.core.materialize import fields_of
from evstore.core.registers import Order

__all__ = ["Change", "Conflict", "Current", "Plan", "Staged", "change_of", "changed_fields",
           "conflict_of", "plan"]

Value = dict[str, Any]


@dataclass(frozen=True)
class Staged:
    """One staged change: the new value (None: delete) and what it was based on."""

    mode: str
    section: str
    value: Value | None
    orig: Value | None
    base: Order | None


@dataclass(frozen=True)
class Current:
    """What a mode holds of a section now, and the newest event that shaped it."""

    value: Value | None
    base: Order | None


@dataclass(frozen=True)
class Change:
    """One change of a commit event: ``define`` (``value``), ``delete``, or ``patch``
    (``sets`` and ``unsets`` of single fields)."""

    mode: str
    section: str
    base: Order | None
    op: str
    value: Value | None = None
    sets: dict[str, Any] = field(default_factory=dict)
    unsets: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        """The change as the commit event carries it."""
        out: dict[str, Any] = {"mode": self.mode, "section": self.section,
                               "base": list(self.base) if self.base else None, "op": self.op}
        if self.op == "define":
            out["value"] = self.value
        elif self.op == "patch":
            out["set"] = self.sets
            out["unset"] = self.unsets
        return out


@dataclass(frozen=True)
class Conflict:
    """A staged change that collides with a change committed by someone else since."""

    mode: str
    section: str
    fields: list[str]
    yours: Value | None
    theirs: Value | None


@dataclass(frozen=True)
class Plan:
    """What a commit writes (``changes``), the staged rows it consumes (``used``: written or
    discarded) and the conflicts found."""

    changes: list[Change]
    used: list[Staged]
    conflicts: list[Conflict]


_MISSING = object()


def changed_fields(section: str, a: Value | None, b: Value | None) -> set[str]:
    """The fields (registers) of ``section`` that differ between two values."""
    fa = fields_of(section, a or {})
    fb = fields_of(section, b or {})
    return {k for k in fa.keys() | fb.keys() if fa.get(k, _MISSING) != fb.get(k, _MISSING)}


def change_of(row: Staged, cur: Value | None, base: Order | None) -> Change | None:
    """The change that writes ``row`` over ``cur`` against ``base`` (None: nothing to write)."""
    if row.value is None:
        return None if cur is None else Change(row.mode, row.section, base, "delete")
    if row.orig is None or cur is None:
        return Change(row.mode, row.section, base, "define", value=row.value)
    mine = changed_fields(row.section, row.orig, row.value)
    if not mine:
        return None
    new = fields_of(row.section, row.value)
    sets = {k: new[k] for k in sorted(mine) if k in new}
    unsets = sorted(k for k in mine if k not in new)
    return Change(row.mode, row.section, base, "patch", sets=sets, unsets=unsets)


def conflict_of(row: Staged, now: Current) -> Conflict | None:
    """Does ``row`` collide with what was committed since it was staged?"""
    if now.base == row.base:
        return None
    mine = changed_fields(row.section, row.orig, row.value)
    theirs = changed_fields(row.section, row.orig, now.value)
    both_defined = row.orig is None and now.value is not None and row.value is not None
    overlap = sorted(mine & theirs)
    if not overlap and not both_defined and not (row.value is None and theirs):
        return None
    return Conflict(row.mode, row.section, overlap, row.value, now.value)


def plan(rows: Sequence[Staged], now: Mapping[tuple[str, str], Current], *,
         discard: bool = False, force: bool = False) -> Plan:
    """Plan a commit of ``rows``; ``now`` holds each row's ``(mode, section)`` as it is."""
    out = Plan([], [], [])
    for row in rows:
        cur = now[(row.mode, row.section)]
        c = conflict_of(row, cur)
        if c is not None:
            out.conflicts.append(c)
            if discard:
                out.used.append(row)
                continue
            if not force:
                continue
        base = cur.base if (c is not None and force) else row.base
        ch = change_of(row, cur.value, base)
        out.used.append(row)
        if ch is not None:
            out.changes.append(ch)
    return out
