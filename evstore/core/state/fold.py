"""The fold: ``apply`` projects events into a store incrementally, judging each by
evstore/core/admit.py, recomputing the registers they touch, the sections at each mode and
the effective settings of the machines concerned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from evstore.core import admit, catalog
from evstore.core.events import Event
from evstore.core.materialize import last_event, materialize
from evstore.core.registers import CUTOFF, IGNORED, STRUCT, Reg, Write, excluded, superseded, winner
from evstore.core.state.effective import _affected_machines, _Memo, _refresh_one, refresh_machine
from evstore.core.state.store import Store
from evstore.core.writes import writes_of


def _admissible(store: Store, evs: list[Event]) -> tuple[list[Event], set[Reg]]:
    """Judge events by evstore/core/admit.py; returns the admissible ones and the registers
    of events that must no longer count (retracted from the store's history).

    An event's verdict depends on the user database before it in the total order. When an
    event that writes a ``users`` section arrives, every event the store holds after it is
    judged again: one that is no longer admissible is retracted (its registers recomputed
    from their history), one that now is gets its writes added like a new event's.
    """
    store.remember(evs)
    auth_new = [e for e in evs if admit.is_authority(e)]
    if auth_new:
        store.add_authority(auth_new)
    auth = store.authority()
    ok: list[Event] = []
    gone: set[Reg] = set()
    batch = {e.id for e in evs}
    start = auth.first_affected(auth_new) if auth_new else None
    if start is not None:
        for ev in store.judged_after(start):
            if ev.id in batch:
                continue
            was = store.verdict_of(ev.id)  # None: it passed the static checks before
            now = auth.judge_role(ev) if was is None else auth.judge(ev)
            if (was is None) != (now is None):
                if now is None:
                    ok.append(ev)
                else:
                    regs = {w.reg for w in writes_of(ev)} if admit.static_reason(ev) is None \
                        else set()
                    store.retract(ev, regs)
                    gone |= regs
            if was != now:
                store.set_verdict(ev, now)
    for ev in evs:
        why = auth.judge(ev)
        was = store.verdict_of(ev.id)
        if why is None:
            ok.append(ev)
            if was is not None:
                store.set_verdict(ev, None)
        else:
            if was is None:  # applied before (a repeat) or new: it counts nowhere
                regs = {w.reg for w in writes_of(ev)} if admit.static_reason(ev) is None \
                    else set()
                if regs:
                    store.retract(ev, regs)
                    gone |= regs
            store.set_verdict(ev, why)
    return ok, gone


def apply(store: Store, events: Iterable[Event]) -> set[Reg]:
    """Project events into the store incrementally; returns the registers that changed.

    The result is the same for any order, duplication or batching of the same events.
    Inadmissible events (evstore/core/admit.py) are recorded and write nothing.
    """
    evs = list(events)
    ok, gone = _admissible(store, evs)
    new: list[Write] = []
    for ev in ok:
        new.extend(writes_of(ev))
    if not new and not gone:
        return set()
    store.add_writes(new)
    latest: dict[Reg, dict[str, Write]] = {}
    for w in new:  # as the stores do: the last write of an event to a register counts
        latest.setdefault(w.reg, {})[w.event] = w
    fresh = {reg: list(by_event.values()) for reg, by_event in latest.items()}
    touched = set(fresh) | gone
    before = store.cutoffs()
    history = _Histories(store)
    for reg in [r for r in touched if r[1] == CUTOFF]:
        store.set_winner(reg, winner(history.of(reg), before))
    after = store.cutoffs()
    full: set[Reg] = set(gone)
    for origin in set(after) | set(before):
        if after.get(origin) != before.get(origin):
            full.update(store.regs_of_origin(origin))
    touched |= full
    _recompute(store, history, touched, after, fresh, full)
    return touched


def _new_winner(store: Store, reg: Reg, fresh: list[Write],
                cutoffs: Mapping[str, int]) -> tuple[Write | None, list[Write]]:
    """The winner after new writes when no cutoff changed: the greater of the old winner and
    the new writes (a register is a maximum), and the writes superseded() needs: those between
    the winner's base and the winner. Reading only these keeps an update independent of how
    often the register was written before."""
    cur = store.winner_of(reg)
    cands = [w for w in fresh if not excluded(w, cutoffs)] + ([cur] if cur is not None else [])
    win = max(cands, key=lambda x: x.order) if cands else None
    if win is None or win.base is None:
        return win, []
    return win, store.writes_between(reg, win.base, win.order)


class _Histories:
    """The whole history of each (scope, section) one ``apply`` needs (after its writes are
    added), read once for all its registers: a removal recomputes every register its origin
    wrote, often many fields of one section, each with a long history."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pairs: dict[tuple[str, str], dict[str, list[Write]]] = {}

    def of(self, reg: Reg) -> list[Write]:
        got = self.pairs.get(reg[:2])
        if got is None:
            got = self.pairs[reg[:2]] = {}
            for w in self.store.section_history(reg[0], reg[1]):
                got.setdefault(w.field, []).append(w)
        return got.get(reg[2], [])


def _recompute(store: Store, history: _Histories, regs: set[Reg], cutoffs: Mapping[str, int],
               fresh: Mapping[Reg, list[Write]] | None = None,
               full: set[Reg] | None = None) -> None:
    for reg in sorted(regs):
        if fresh is not None and full is not None and reg not in full and reg[1] != CUTOFF:
            win, ws = _new_winner(store, reg, fresh.get(reg, []), cutoffs)
        else:
            ws = history.of(reg)
            win = winner(ws, cutoffs)
        store.set_winner(reg, win)
        if reg[1] not in (CUTOFF, IGNORED):
            store.set_superseded(reg, superseded(ws, win, cutoffs), win)
    pairs = {(r[0], r[1]) for r in regs if not r[1].startswith("@")}
    for mode, section in sorted(pairs):
        wins = store.winners_of(mode, section)
        store.set_section(mode, section, materialize(section, wins), last_event(wins))
    st = store.structure()
    memo = _Memo(store)
    if any(r[1] == STRUCT for r in regs):
        members = {m.mid for m in st.members()}
        for mid in sorted(st.machines):
            refresh_machine(store, st, mid, memo, members)
    else:
        known = sorted({s for _, s in pairs if s in catalog.SECTIONS})
        for mid in _affected_machines(st, {m for m, _ in pairs}):
            for section in known:
                _refresh_one(store, memo, st, mid, section)
