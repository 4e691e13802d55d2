"""The configuration state: a CRDT of last-writer-wins registers, projected from events.

Theory of operation
-------------------
Every event is turned, by a pure function of that event alone (``writes_of``), into *writes*
to *registers*. A register is named ``(scope, section, field)``:

* settings: scope is a mode (``cluster``, ``group:GID``, ``machine:MID``), section a catalog
  section, field either ``@defined`` (is the section defined at this mode?), ``@reset`` (the
  moment the section's content was last replaced or cleared), a top-level key, or
  ``LISTKEY/ITEMNAME`` for one named entry of an items list. So concurrent changes to
  different keys or entries of one section land in different registers and both survive.
* structure: section ``@structure`` holds the cluster name and main group, each group's name and
  deletion, each machine's group, hostname, serial, addresses and removal; ``@cutoff`` holds
  the last sequence number of a removed origin (or of a key a rekey replaced) that still
  counts.

A register's value is the write with the greatest ``order`` — ``(clock, origin, event id)``,
the one total order of core/events.py — among writes that are not *excluded*. A write is
excluded when its origin was removed and its seq is past the removal's cutoff (a seq cutoff,
never a timestamp, which a removed machine could backdate). ``@cutoff`` registers merge by
maximum instead (two removals of one machine keep everything either still counted).

Because each register is a pure max over a set of writes, the state depends only on the *set*
of events applied, never on their order, duplication or delay: that is the convergence
argument, and tests/core/test_state.py checks it with hypothesis.

A section's content at a mode is the set of its field registers written at or after its
``@reset`` register, over the factory default; items lists are sorted by name. Effective
settings of a machine follow the seed's inheritance: machine, then its group, then cluster,
then the factory default; a section *defined but empty* at a mode overrides with empty.

A write that lost its register to a later write whose author had not seen it (the winner's
``base``, the newest change of that section the author had seen when staging, is older than
the loser) is a *superseded concurrent change*; clustercheck reports it unless ignored.

The ``Store`` protocol keeps where the registers and views live out of the rules: a dict-based
``MemoryStore`` here, and a SQLite store in evstore/storage/views.py, fed the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from evstore.core import admit, catalog
from evstore.core.events import Event
from evstore.core.modes import CLUSTER, group_id_of, group_mode, machine_mode

Order = tuple[int, str, str]
Reg = tuple[str, str, str]
STRUCT = "@structure"
CUTOFF = "@cutoff"
IGNORED = "@ignored"
DEFINED = "@defined"
RESET = "@reset"
SETTINGS_KINDS = frozenset({"config.commit", "clustercheck.resolve", "config.load"})


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


# --------------------------------------------------------------------------- event -> writes


RawWrite = tuple[str, str, str, bool, Any, Order | None]
"""One write before it is tied to its event: (scope, section, field, present, value, base)."""
FieldWrite = tuple[bool, Any, Order | None]
"""The last write of one event to one field of a (scope, section): (present, value, base)."""


class _Writer:
    """Collects the writes of one event, in order (keeps ``raw_writes`` short and flat)."""

    __slots__ = ("base", "out")

    def __init__(self) -> None:
        self.base: Order | None = None
        self.out: list[RawWrite] = []

    def put(self, scope: str, section: str, fld: str, value: Any, present: bool = True) -> None:
        self.out.append((scope, section, fld, present, value if present else None, self.base))

    def struct(self, scope: str, fld: str, value: Any) -> None:
        self.put(scope, STRUCT, fld, value)

    def machine(self, mid: str, info: Mapping[str, Any]) -> None:
        for key in ("hostname", "serial", "listen", "ccs", "version", "transport_key", "key"):
            if key in info:
                self.struct(machine_mode(mid), key, info[key])

    def define(self, mode: str, section: str, value: Mapping[str, Any]) -> None:
        self.put(mode, section, DEFINED, True)
        self.put(mode, section, RESET, None)
        for fld, v in fields_of(section, value).items():
            self.put(mode, section, fld, v)

    def patch(self, mode: str, section: str, sets: Mapping[str, Any], unsets: Iterable[str]) -> None:
        self.put(mode, section, DEFINED, True)
        for fld, v in sets.items():
            self.put(mode, section, fld, v)
        for fld in unsets:
            self.put(mode, section, fld, None, present=False)

    def delete(self, mode: str, section: str) -> None:
        self.put(mode, section, DEFINED, False)
        self.put(mode, section, RESET, None)

    def settings(self, mode: str, sections: Mapping[str, Any]) -> None:
        for section, value in sorted(sections.items()):
            self.define(mode, section, value)


class _Grouped(_Writer):
    """The same writes, kept per (scope, section) with the last write to each field: what
    every store keeps of an event (``pair_writes``)."""

    __slots__ = ("groups", "cur", "scope", "section")

    def __init__(self) -> None:  # not super().__init__(): ``out`` is not used here
        self.base = None
        self.groups: dict[tuple[str, str], dict[str, FieldWrite]] = {}
        self.cur: dict[str, FieldWrite] = {}
        self.scope: str | None = None
        self.section: str | None = None

    def put(self, scope: str, section: str, fld: str, value: Any, present: bool = True) -> None:
        if scope is not self.scope or section is not self.section:  # a shortcut, not a test
            cur = self.groups.get((scope, section))
            if cur is None:
                cur = self.groups[(scope, section)] = {}
            self.cur, self.scope, self.section = cur, scope, section
        self.cur[fld] = (present, value if present else None, self.base)


def _base(raw: Any) -> Order | None:
    if isinstance(raw, list) and len(raw) == 3:
        return (int(raw[0]), str(raw[1]), str(raw[2]))
    return None


def fields_of(section: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """Split a section value into its registers: top-level keys and named list entries."""
    items = _item_fields(section)
    out: dict[str, Any] = {}
    for key, v in value.items():
        if key in items and isinstance(v, list):
            for item in v:
                out[f"{key}/{item['name']}"] = item
        else:
            out[key] = v
    return out


_ITEM_FIELDS: dict[str, frozenset[str]] = {}


def _item_fields(section: str) -> frozenset[str]:
    """``catalog.item_fields``, remembered: the catalog is fixed, and this runs per write."""
    known = _ITEM_FIELDS.get(section)
    if known is None:
        try:
            known = catalog.item_fields(section)
        except Exception:  # unknown section (a newer peer's): treat every key as a scalar
            known = frozenset()
        if len(_ITEM_FIELDS) < 4096:
            _ITEM_FIELDS[section] = known
    return known


def _apply_change(w: _Writer, ch: Mapping[str, Any]) -> None:
    mode, section, op = ch["mode"], ch["section"], ch["op"]
    w.base = _base(ch.get("base"))
    if op == "define":
        w.define(mode, section, ch["value"])
    elif op == "patch":
        w.patch(mode, section, ch.get("set", {}), ch.get("unset", []))
    elif op == "delete":
        w.delete(mode, section)


def writes_of(ev: Event) -> list[Write]:
    """The register writes an event makes: a pure function of the event alone."""
    order, seq, user, wall = ev.order_key, ev.seq, ev.user, ev.wall
    return [
        Write(scope, section, fld, present, value, order, seq, base, user, wall)
        for scope, section, fld, present, value, base in raw_writes(
            ev.kind, ev.id, ev.origin, ev.payload
        )
    ]


W = TypeVar("W", bound=_Writer)


def raw_writes(kind: str, event_id: str, origin: str, payload: Mapping[str, Any]) -> list[RawWrite]:
    """``writes_of`` without the event's order, seq, user and wall, which every write shares."""
    return _emit(_Writer(), kind, event_id, origin, payload).out


def pair_writes(kind: str, event_id: str, origin: str, payload: Mapping[str, Any]) -> dict[
    tuple[str, str], dict[str, FieldWrite]
]:
    """The writes of ``raw_writes`` per (scope, section), the last write to each field kept,
    as the stores keep them: what a bulk rebuild needs, without an ``Event`` or a ``Write``."""
    return _emit(_Grouped(), kind, event_id, origin, payload).groups


def _emit(w: W, kind: str, event_id: str, origin: str, payload: Mapping[str, Any]) -> W:
    """The one definition of what each kind of event writes."""
    p = payload
    if kind in SETTINGS_KINDS:  # by far the most common kind: tested first
        for ch in p.get("changes", []):
            _apply_change(w, ch)
    elif kind in ("node.init", "node.standalone"):
        mid = p.get("machine_id", origin)
        w.machine(mid, p.get("machine", {}))
        w.settings(machine_mode(mid), p.get("settings", {}))
    elif kind == "cluster.create":
        gid = group_id_of(event_id)
        w.struct(CLUSTER, "name", p["name"])
        w.struct(CLUSTER, "main_group", gid)
        w.struct(group_mode(gid), "name", p.get("group_name", "Main_Group"))
        w.machine(origin, {**p.get("machine", {}), "key": origin})
        w.struct(machine_mode(origin), "group", gid)
        w.struct(machine_mode(origin), "member", True)
        w.settings(CLUSTER, p.get("cluster_settings", {}))
        w.settings(machine_mode(origin), p.get("machine_settings", {}))
    elif kind == "cluster.admit":
        mid = p["machine_id"]
        w.machine(mid, {**p.get("machine", {}), "key": p["key"]})
        w.struct(machine_mode(mid), "group", p["group"])
        w.struct(machine_mode(mid), "member", True)
        if "replaces" in p and "cutoff" in p:  # a rekey retires the old key, as a removal does
            w.put(f"origin:{p['replaces']}", CUTOFF, "seq", int(p["cutoff"]))
    elif kind == "cluster.join":
        mid = p.get("machine_id", origin)
        w.machine(mid, p.get("machine", {}))
        w.struct(machine_mode(mid), "joined", True)
        w.settings(machine_mode(mid), p.get("machine_settings", {}))
    elif kind == "cluster.setname":
        w.base = _base(p.get("base"))
        w.struct(CLUSTER, "name", p["name"])
    elif kind == "group.add":
        w.struct(group_mode(group_id_of(event_id)), "name", p["name"])
    elif kind == "group.rename":
        w.base = _base(p.get("base"))
        w.struct(group_mode(p["group"]), "name", p["name"])
    elif kind == "group.delete":
        w.struct(group_mode(p["group"]), "deleted", p["move_to"])
        for c in p.get("copies", []):
            w.define(machine_mode(c["machine"]), c["section"], c["value"])
    elif kind == "machine.setgroup":
        w.base = _base(p.get("base"))
        w.struct(machine_mode(p["machine"]), "group", p["group"])
    elif kind == "machine.remove":
        w.struct(machine_mode(p["machine"]), "removed", True)
        for o, seq in sorted(p.get("cutoffs", {}).items()):
            w.put(f"origin:{o}", CUTOFF, "seq", int(seq))
    elif kind == "machine.announce":
        info = p.get("machine", {})
        w.machine(p.get("machine_id", origin), {k: info[k] for k in ("listen", "ccs") if k in info})
    elif kind == "machine.detach":
        w.struct(machine_mode(p["machine"]), "detached", bool(p["detached"]))
    elif kind == "clustercheck.ignore":
        for rec in p.get("records", []):
            w.put(IGNORED, IGNORED, f"{rec['loser']}>{rec['winner']}", True)
    return w


# --------------------------------------------------------------------------- register rules


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


# --------------------------------------------------------------------------- materializing


def materialize(section: str, winners: Mapping[str, Write]) -> dict[str, Any] | None:
    """A section's value at one mode from its registers' winners; None when not defined."""
    d = winners.get(DEFINED)
    if d is None or d.value is not True:
        return None
    reset = winners.get(RESET)
    floor = reset.order if reset is not None else (0, "", "")
    items = _item_fields(section)
    out = default_of(section)
    lists: dict[str, list[Any]] = {k: [] for k in items}
    for fld, w in sorted(winners.items()):
        if fld.startswith("@") or w.order < floor or not w.present:
            continue
        key, sep, _name = fld.partition("/")
        if sep and key in items:
            lists[key].append(w.value)
        else:
            out[fld] = copy.deepcopy(w.value)
    for key, entries in lists.items():
        out[key] = sorted(entries, key=lambda it: str(it.get("name", "")))
    return out


def default_of(section: str) -> dict[str, Any]:
    """The factory default of a section (a blank table where it has none)."""
    try:
        sec = catalog.get(section)
    except Exception:
        return {}
    base = copy.deepcopy(sec.default) if sec.default is not None else {}
    for key in catalog.item_fields(section):
        base.setdefault(key, [])
    return base


def last_event(winners: Mapping[str, Write]) -> str | None:
    """The newest event that shaped a section at a mode (for "where did this come from")."""
    reset = winners.get(RESET)
    floor = reset.order if reset is not None else (0, "", "")
    live = [w for w in winners.values() if w.order >= floor]
    return max(live, key=lambda w: w.order).event if live else None


# --------------------------------------------------------------------------- structure


@dataclass
class Machine:
    mid: str
    hostname: str = ""
    serial: str = ""
    listen: str = ""
    ccs: str | None = None
    version: str = ""
    transport_key: str = ""
    key: str = ""
    group: str | None = None
    member: bool = False
    removed: bool = False
    detached: bool = False


@dataclass
class Structure:
    """Cluster name, groups and machines, as the structure registers say now."""

    name: str | None = None
    main_group: str | None = None
    groups: dict[str, str] = field(default_factory=dict)
    deleted: dict[str, str] = field(default_factory=dict)
    machines: dict[str, Machine] = field(default_factory=dict)

    def group_of(self, mid: str) -> str | None:
        """The live group of a machine, following deleted groups to where they moved."""
        gid = self.machines[mid].group
        seen: set[str] = set()
        while gid is not None and gid in self.deleted and gid not in seen:
            seen.add(gid)
            gid = self.deleted[gid]
        if gid is None or gid in self.deleted or gid not in self.groups:
            return self.main_group
        return gid

    def members(self) -> list[Machine]:
        """Machines in the cluster now (admitted or created, not removed), by hostname."""
        ms = [m for m in self.machines.values() if not m.removed and (m.member or self.name is None)]
        return sorted(ms, key=lambda m: (m.hostname, m.mid))

    def chain(self, mid: str) -> list[str]:
        """The modes a machine inherits from, most specific first."""
        out = [machine_mode(mid)]
        if self.name is not None:
            gid = self.group_of(mid)
            if gid is not None:
                out.append(group_mode(gid))
            out.append(CLUSTER)
        return out

    def display_mode(self, mode: str) -> str:
        level, _, ident = mode.partition(":")
        if level == "group":
            return f"group:{self.groups.get(ident, ident)}"
        if level == "machine" and ident in self.machines:
            return f"machine:{self.machines[ident].hostname or ident}"
        return mode

    def find_group(self, name: str) -> str | None:
        for gid, gname in self.groups.items():
            if gid not in self.deleted and (gname == name or gid == name):
                return gid
        return None

    def find_machine(self, name: str) -> str | None:
        """A machine by hostname, serial or id; a member before a removed machine of the same
        name (a machine removed and joined again is a new membership, a new id)."""
        found = [m for m in self.machines.values() if name in (m.hostname, m.serial, m.mid)]
        found.sort(key=lambda m: (m.removed, not m.member))
        return found[0].mid if found else None


ALWAYS_ADMITTED = frozenset({"cluster.create"})


def may_write(st: Structure, event: Event) -> bool | None:
    """Membership: may this event's origin write? True yes, None not yet known (wait).

    A pure function of the events already applied, never of local time or arrival order: an
    origin writes once an event admitting its key has been applied (a create names its author,
    ``cluster.admit`` names a joiner's or a rekeyed machine's key). Events of a removed origin
    past its cutoff are still stored, and ignored by the register rules.
    """
    if event.kind in ALWAYS_ADMITTED or (event.kind == "node.init" and st.name is None):
        return True
    if event.kind == "node.init":
        return None  # another machine's life before it joined: never part of a cluster
    if event.kind == "node.standalone":
        me = st.machines.get(event.payload.get("machine_id", event.origin))
        return True if st.name is None or (me is not None and me.removed) else None
    for m in st.machines.values():
        if event.origin in (m.key, m.mid) and (m.member or st.name is None):
            return True
    return None


def structure_from(winners: Iterable[Write]) -> Structure:
    """Build the structure from the winners of every ``@structure`` register."""
    st = Structure()
    for w in winners:
        level, _, ident = w.scope.partition(":")
        if w.scope == CLUSTER:
            if w.field == "name":
                st.name = w.value
            elif w.field == "main_group":
                st.main_group = w.value
        elif level == "group":
            if w.field == "name":
                st.groups[ident] = w.value
            elif w.field == "deleted":
                st.deleted[ident] = w.value
        elif level == "machine":
            m = st.machines.setdefault(ident, Machine(mid=ident))
            if hasattr(m, w.field) and w.field != "mid":
                setattr(m, w.field, w.value)
    return st


# --------------------------------------------------------------------------- the store


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


# --------------------------------------------------------------------------- projecting


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
