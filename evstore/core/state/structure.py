"""The cluster's structure (its name, groups and machines) from the ``@structure`` registers,
and membership: may an event's origin write (``may_write``)?
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from evstore.core.events import Event
from evstore.core.modes import CLUSTER, group_mode, machine_mode
from evstore.core.registers import Write


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
