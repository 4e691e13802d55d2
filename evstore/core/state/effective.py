"""Effective settings: what one machine uses for a section, following the seed's inheritance
(machine, then its group, then cluster, then the factory default).
"""

from __future__ import annotations

from typing import Any, Protocol

from evstore.core import catalog
from evstore.core.materialize import default_of, last_event
from evstore.core.registers import Write
from evstore.core.state.store import Store
from evstore.core.state.structure import Structure


class Reads(Protocol):
    """What resolving effective settings reads."""

    def section_value(self, mode: str, section: str) -> dict[str, Any] | None: ...
    def winners_of(self, scope: str, section: str) -> dict[str, Write]: ...


class _Memo:
    """Reads of one projection, cached: a cluster-level change reaches every machine, and
    every machine would otherwise read the same modes again."""

    def __init__(self, store: Reads) -> None:
        self.store = store
        self.values: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.wins: dict[tuple[str, str], dict[str, Write]] = {}

    def section_value(self, mode: str, section: str) -> dict[str, Any] | None:
        key = (mode, section)
        if key not in self.values:
            self.values[key] = self.store.section_value(mode, section)
        return self.values[key]

    def winners_of(self, scope: str, section: str) -> dict[str, Write]:
        key = (scope, section)
        if key not in self.wins:
            self.wins[key] = self.store.winners_of(scope, section)
        return self.wins[key]


def _affected_machines(st: Structure, modes: set[str]) -> list[str]:
    out = []
    for m in st.members():
        if set(st.chain(m.mid)) & modes:
            out.append(m.mid)
    return out


def refresh_machine(store: Store, st: Structure, mid: str, memo: Reads | None = None,
                    members: set[str] | None = None) -> None:
    """Recompute every section of one machine's effective settings."""
    store.clear_effective(mid)
    if mid not in (members if members is not None else {m.mid for m in st.members()}):
        return
    reads = memo if memo is not None else store
    for name in sorted(catalog.SECTIONS):
        _refresh_one(store, reads, st, mid, name)


def _refresh_one(store: Store, reads: Reads, st: Structure, mid: str, section: str) -> None:
    value, source, event = resolve(reads, st, mid, section)
    store.set_effective(mid, section, value, source, event)


def resolve(
    store: Reads, st: Structure, mid: str, section: str
) -> tuple[dict[str, Any], str, str | None]:
    """Effective settings of one section on one machine: (value, source mode, event)."""
    try:
        levels = catalog.get(section).levels
    except Exception:
        levels = frozenset({"cluster", "group", "machine"})
    standalone = st.name is None
    for mode in st.chain(mid):
        level = mode.partition(":")[0]
        if level not in levels and not standalone:
            continue
        value = store.section_value(mode, section)
        if value is not None:
            wins = store.winners_of(mode, section)
            return value, mode, last_event(wins)
    return default_of(section), "default", None
