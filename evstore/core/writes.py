"""What each kind of event writes: a pure function of the event alone (``writes_of``).

``raw_writes`` gives the same writes without the event's order, seq, user and wall, and
``pair_writes`` groups them per (scope, section) as the stores keep them. ``_emit`` is
the one definition of every kind's writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from evstore.core.events import Event
from evstore.core.materialize import fields_of
from evstore.core.modes import CLUSTER, group_id_of, group_mode, machine_mode
from evstore.core.registers import CUTOFF, DEFINED, IGNORED, RESET, STRUCT, Order, Write

SETTINGS_KINDS = frozenset({"config.commit", "clustercheck.resolve", "config.load"})


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


# What a ``machine.announce`` may change in the machine's record: its addresses and the
# version it runs (announced when ``evstore run`` starts on another version). Its names and
# keys change only by admission or rekey.
ANNOUNCED = ("listen", "ccs", "version")


def _base(raw: Any) -> Order | None:
    if isinstance(raw, list) and len(raw) == 3:
        return (int(raw[0]), str(raw[1]), str(raw[2]))
    return None


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
        w.machine(p.get("machine_id", origin), {k: info[k] for k in ANNOUNCED if k in info})
    elif kind == "machine.detach":
        w.struct(machine_mode(p["machine"]), "detached", bool(p["detached"]))
    elif kind == "clustercheck.ignore":
        for rec in p.get("records", []):
            w.put(IGNORED, IGNORED, f"{rec['loser']}>{rec['winner']}", True)
    return w
