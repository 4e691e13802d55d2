"""Registers and their rules: the last-writer-wins part of the configuration state.

A register is named ``(scope, section, field)`` and holds the write with the greatest
``order`` among the writes that are not *excluded* (an origin removed, its seq past the
removal's cutoff); ``@cutoff`` registers merge by maximum instead. ``superseded`` finds the
concurrent changes a winner overwrote without having seen them. The whole argument is in
the docstring of evstore/core/state/__init__.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Order = tuple[int, str, str]
Reg = tuple[str, str, str]
STRUCT = "@structure"
CUTOFF = "@cutoff"
IGNORED = "@ignored"
DEFINED = "@defined"
RESET = "@reset"


@dataclass(frozen=True)
class Write:
    """One write to one register, as carried by one event."""

    scope: str
    section: str
    field: str
    present: bool
    value: Any
    order: Order
    seq: int
    base: Order | None
    user: str
    wall: int

    @property
    def reg(self) -> Reg:
        return (self.scope, self.section, self.field)

    @property
    def event(self) -> str:
        return self.order[2]

    @property
    def origin(self) -> str:
        return self.order[1]


def winner(writes: Iterable[Write], cutoffs: Mapping[str, int]) -> Write | None:
    """The write that holds a register: greatest order among the writes that still count."""
    live = [x for x in writes if not excluded(x, cutoffs)]
    if not live:
        return None
    if live[0].section == CUTOFF:
        return max(live, key=lambda x: (x.value, x.order))
    return max(live, key=lambda x: x.order)


def excluded(w: Write, cutoffs: Mapping[str, int]) -> bool:
    """A write of a removed origin past its removal's cutoff does not count, anywhere."""
    if w.section == CUTOFF:
        return False
    cut = cutoffs.get(w.origin)
    return cut is not None and w.seq > cut


def superseded(
    writes: Iterable[Write], win: Write | None, cutoffs: Mapping[str, int]
) -> list[Write]:
    """Writes that lost ``win``'s register although its author had not seen them.

    The author of ``win`` had seen everything up to ``win.base`` (the newest change of that
    section or structure field when the change was staged); a losing write newer than that
    base, with another value, was concurrent and is reported. A winner without a base (a
    create, join or load) claims nothing and reports nothing.
    """
    if win is None or win.base is None:
        return []
    base = win.base
    out = [
        x
        for x in writes
        if x.event != win.event
        and not excluded(x, cutoffs)
        and base < x.order < win.order
        and (x.present, x.value) != (win.present, win.value)
    ]
    return sorted(out, key=lambda x: x.order)
