"""Where registers and views live: the ``Store`` protocol the fold writes through, and
``MemoryStore``, the reference store of plain dicts (the SQLite store is
evstore/storage/views.py; hypothesis checks the two against each other).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from evstore.core import admit
from evstore.core.events import Event
from evstore.core.registers import CUTOFF, IGNORED, STRUCT, Order, Reg, Write
from evstore.core.state.structure import Structure, structure_from


class Store(Protocol):
    """Where registers and views live. MemoryStore here; SqliteStore in storage/views.py."""

    def add_writes(self, writes: list[Write]) -> None: ...
    def section_history(self, scope: str, section: str) -> list[Write]: ...
    def writes_between(self, reg: Reg, lo: Order, hi: Order) -> list[Write]: ...
    def winner_of(self, reg: Reg) -> Write | None: ...
    def regs_of_origin(self, origin: str) -> list[Reg]: ...
    def cutoffs(self) -> dict[str, int]: ...
    def set_winner(self, reg: Reg, w: Write | None) -> None: ...
    def winners_of(self, scope: str, section: str) -> dict[str, Write]: ...
    def structure_winners(self) -> list[Write]: ...
    def structure(self) -> Structure: ...
    def set_section(self, mode: str, section: str, value: dict[str, Any] | None,
                    event: str | None) -> None: ...
    def section_value(self, mode: str, section: str) -> dict[str, Any] | None: ...
    def defined_sections(self) -> list[tuple[str, str]]: ...
    def set_effective(self, mid: str, section: str, value: dict[str, Any] | None,
                      source: str, event: str | None) -> None: ...
    def clear_effective(self, mid: str) -> None: ...
    def set_superseded(self, reg: Reg, losers: list[Write], win: Write | None) -> None: ...
    def ignored(self) -> set[str]: ...
    # admissibility (evstore/core/admit.py)
    def remember(self, events: list[Event]) -> None: ...
    def add_authority(self, events: list[Event]) -> None: ...
    def authority(self) -> admit.Authority: ...
    def set_verdict(self, event: Event, reason: str | None) -> None: ...
    def verdict_of(self, event: str) -> str | None: ...
    def judged_after(self, order: Order) -> list[Event]: ...
    def retract(self, event: Event, regs: set[Reg]) -> None: ...
    def invalid(self) -> dict[str, str]: ...


@dataclass
class MemoryStore:
    """The reference store: plain dicts. Used by the simulation and the property tests."""

    writes: dict[Reg, dict[str, Write]] = field(default_factory=dict)
    by_origin: dict[str, set[Reg]] = field(default_factory=dict)
    winners: dict[Reg, Write] = field(default_factory=dict)
    sections: dict[tuple[str, str], tuple[dict[str, Any], str | None]] = field(default_factory=dict)
    effective: dict[tuple[str, str], tuple[dict[str, Any] | None, str, str | None]] = field(
        default_factory=dict
    )
    lost: dict[Reg, list[tuple[Write, Write]]] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    authors: dict[str, Event] = field(default_factory=dict)
    _authority: admit.Authority | None = None

    def remember(self, events: list[Event]) -> None:
        for ev in events:
            self.events.setdefault(ev.id, ev)

    def add_authority(self, events: list[Event]) -> None:
        for ev in events:
            if ev.id not in self.authors:
                self.authors[ev.id] = ev
                self._authority = None

    def authority(self) -> admit.Authority:
        if self._authority is None:
            self._authority = admit.Authority(self.authors.values())
        return self._authority

    def set_verdict(self, event: Event, reason: str | None) -> None:
        self.events[event.id] = event
        if reason is None:
            self.verdicts.pop(event.id, None)
        else:
            self.verdicts[event.id] = reason

    def verdict_of(self, event: str) -> str | None:
        return self.verdicts.get(event)

    def judged_after(self, order: Order) -> list[Event]:
        return sorted((e for e in self.events.values() if e.order_key > order),
                      key=lambda e: e.order_key)

    def retract(self, event: Event, regs: set[Reg]) -> None:
        for reg in regs:
            self.writes.get(reg, {}).pop(event.id, None)

    def invalid(self) -> dict[str, str]:
        return dict(self.verdicts)

    def add_writes(self, writes: list[Write]) -> None:
        for w in writes:
            self.writes.setdefault(w.reg, {})[w.event] = w
            self.by_origin.setdefault(w.origin, set()).add(w.reg)

    def section_history(self, scope: str, section: str) -> list[Write]:
        return [w for reg, ws in self.writes.items() if reg[:2] == (scope, section)
                for w in ws.values()]

    def writes_between(self, reg: Reg, lo: Order, hi: Order) -> list[Write]:
        return [w for w in self.writes.get(reg, {}).values() if lo <= w.order <= hi]

    def winner_of(self, reg: Reg) -> Write | None:
        return self.winners.get(reg)

    def regs_of_origin(self, origin: str) -> list[Reg]:
        return sorted(self.by_origin.get(origin, set()))

    def cutoffs(self) -> dict[str, int]:
        return {
            reg[0].removeprefix("origin:"): int(w.value)
            for reg, w in self.winners.items()
            if reg[1] == CUTOFF
        }

    def set_winner(self, reg: Reg, w: Write | None) -> None:
        if w is None:
            self.winners.pop(reg, None)
        else:
            self.winners[reg] = w

    def winners_of(self, scope: str, section: str) -> dict[str, Write]:
        return {r[2]: w for r, w in self.winners.items() if r[0] == scope and r[1] == section}

    def structure_winners(self) -> list[Write]:
        return [w for r, w in sorted(self.winners.items()) if r[1] == STRUCT]

    def structure(self) -> Structure:
        return structure_from(self.structure_winners())

    def set_section(self, mode: str, section: str, value: dict[str, Any] | None,
                    event: str | None) -> None:
        if value is None:
            self.sections.pop((mode, section), None)
        else:
            self.sections[(mode, section)] = (value, event)

    def section_value(self, mode: str, section: str) -> dict[str, Any] | None:
        got = self.sections.get((mode, section))
        return got[0] if got else None

    def defined_sections(self) -> list[tuple[str, str]]:
        return sorted(self.sections)

    def set_effective(self, mid: str, section: str, value: dict[str, Any] | None,
                      source: str, event: str | None) -> None:
        self.effective[(mid, section)] = (value, source, event)

    def clear_effective(self, mid: str) -> None:
        for key in [k for k in self.effective if k[0] == mid]:
            del self.effective[key]

    def set_superseded(self, reg: Reg, losers: list[Write], win: Write | None) -> None:
        if losers and win is not None:
            self.lost[reg] = [(x, win) for x in losers]
        else:
            self.lost.pop(reg, None)

    def ignored(self) -> set[str]:
        return {r[2] for r in self.winners if r[0] == IGNORED}
