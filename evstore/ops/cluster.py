"""Cluster administration: create, groups, names, removal, listing.

These take effect at once, as signed events, with no commit (as in the seed). Each carries the
``base`` it saw (the order of the register it changes) so that a concurrent change to the same
register shows up in clustercheck as superseded instead of vanishing.

Scope: a node's views hold the state of the configuration it belongs to now. A standalone node
holds its own events from its latest anchor; a cluster member holds the events of every member
origin from that origin's anchor in the cluster (its create, join or rekey event). When a node
creates or joins a cluster, or is removed from one, its views are rebuilt for the new scope,
in the same transaction as the event that changes it (evstore/ops/scope.py).
"""

from __future__ import annotations

from typing import Any

from evstore._version import __version__
from evstore.core import catalog, names, state
from evstore.core.errors import InvalidInput, OperationalError
from evstore.core.modes import CLUSTER, group_id_of, machine_mode
from evstore.ops.node import Node, iso, now_ms
from evstore.ops.scope import rebuild_views
from evstore.ops.settings import current, inherited
from evstore.storage import linktable, lookups, nodetable

ANCHORS = ("node.init", "node.standalone", "cluster.create", "cluster.join", "node.rekey")


def _base_of(node: Node, scope: str, fld: str) -> list[Any] | None:
    w = node.store.winners_of(scope, state.STRUCT).get(fld)
    return list(w.order) if w else None


# ---------------------------------------------------------------------- create


def create(node: Node, user: str, name: str) -> dict[str, Any]:
    """Turn this standalone machine into a new cluster with group ``Main_Group``."""
    _check_name(name, "cluster")
    if node.in_cluster():
        raise InvalidInput(f"this machine is already in cluster {node.structure().name!r}")
    mid = node.mid
    cluster_settings: dict[str, Any] = {}
    machine_settings: dict[str, Any] = {}
    for section_name, sec in sorted(catalog.SECTIONS.items()):
        value, source, _ = state.resolve(node.store, node.structure(), mid, section_name)
        if sec.clusterable:
            cluster_settings[section_name] = value
        elif source != "default":
            machine_settings[section_name] = value
    ev = _append_create(node, user, name, cluster_settings, machine_settings)
    return {"cluster": name, "event": ev.id, "group": "Main_Group"}


def _append_create(node: Node, user: str, name: str, cs: dict[str, Any],
                   ms: dict[str, Any]) -> Any:
    """Append the create event and switch the views to the new scope, in one transaction."""

    def switch_scope() -> None:
        ev_id = lookups.newest_id_of(node.conn, node.origin)
        assert ev_id is not None  # the create event, appended in this transaction
        nodetable.put(node.conn, nodetable.CLUSTER_CREATE, ev_id)
        rebuild_views(node)

    return node.log.append(
        node.signing_key, user=user, kind="cluster.create",
        payload={"name": name, "group_name": "Main_Group",
                 "machine": node.identity().announce(node.transport_pub),
                 "cluster_settings": cs, "machine_settings": ms},
        now_ms=_now(), also=switch_scope,
    )


def _now() -> int:
    return now_ms()


def _check_name(name: str, what: str) -> None:
    names.check(name, what)  # the user-name rule: no escapes, bidi controls or '/'



def _need_cluster(node: Node) -> state.Structure:
    st = node.structure()
    if st.name is None:
        raise InvalidInput("this machine is standalone: create or join a cluster first "
                           "(`evstore clusterconfig create NAME`)")
    return st


# ---------------------------------------------------------------------- groups and names


def addgroup(node: Node, user: str, name: str) -> dict[str, Any]:
    st = _need_cluster(node)
    _check_name(name, "group")
    if st.find_group(name):
        raise InvalidInput(f"group {name!r} already exists")
    ev = node.append(user, "group.add", {"name": name})
    return {"group": name, "id": group_id_of(ev.id), "event": ev.id}


def renamegroup(node: Node, user: str, old: str, new: str) -> dict[str, Any]:
    st = _need_cluster(node)
    _check_name(new, "group")
    gid = _group(st, old)
    if st.find_group(new):
        raise InvalidInput(f"group {new!r} already exists")
    ev = node.append(user, "group.rename",
                     {"group": gid, "name": new, "base": _base_of(node, f"group:{gid}", "name")})
    return {"group": new, "was": old, "event": ev.id}


def _group(st: state.Structure, name: str) -> str:
    gid = st.find_group(name)
    if gid is None:
        known = ", ".join(sorted(n for g, n in st.groups.items() if g not in st.deleted))
        raise InvalidInput(f"no group named {name!r} (groups: {known})")
    return gid


def deletegroup(node: Node, user: str, name: str, move_to: str | None = None) -> dict[str, Any]:
    """Delete a group; its machines move to ``move_to`` (default Main_Group).

    Nothing is lost silently: for each machine that leaves, every section the group defined
    and the machine did not is copied to the machine's own level, so its effective settings do
    not change. Settings of a group with no machines stay in the log (audit, replay).
    """
    st = _need_cluster(node)
    gid = _group(st, name)
    target = _group(st, move_to) if move_to else st.main_group
    if target is None or target == gid:
        raise InvalidInput("cannot delete the group its machines would move to; "
                           "pass --move-to another group")
    copies: list[dict[str, Any]] = []
    moved = [m for m in st.members() if st.group_of(m.mid) == gid]
    group_sections = [s for md, s in node.store.defined_sections() if md == f"group:{gid}"]
    for m in moved:
        for section in group_sections:
            if node.store.section_value(machine_mode(m.mid), section) is None:
                value = node.store.section_value(f"group:{gid}", section)
                copies.append({"machine": m.mid, "section": section, "value": value})
    ev = node.append(user, "group.delete", {"group": gid, "move_to": target, "copies": copies})
    return {
        "group": name, "event": ev.id, "moved_to": st.groups.get(target),
        "machines": [m.hostname for m in moved],
        "copied": [{"machine": st.machines[str(c["machine"])].hostname,
                    "section": c["section"]} for c in copies],
        "dropped_sections": group_sections if not moved else [],
    }


def setgroup(node: Node, user: str, machine: str, group: str) -> dict[str, Any]:
    st = _need_cluster(node)
    mid = _machine(node, st, machine)
    gid = _group(st, group)
    ev = node.append(user, "machine.setgroup", {
        "machine": mid, "group": gid, "base": _base_of(node, machine_mode(mid), "group"),
    })
    return {"machine": st.machines[mid].hostname, "group": group, "event": ev.id}


def _machine(node: Node, st: state.Structure, name: str) -> str:
    mid = st.find_machine(name)
    if mid is None or mid not in {m.mid for m in st.members()}:
        raise InvalidInput(f"no machine named {name!r} in this cluster "
                           "(see `evstore clusterconfig list`)")
    return mid


def setname(node: Node, user: str, name: str) -> dict[str, Any]:
    _need_cluster(node)
    _check_name(name, "cluster")
    ev = node.append(user, "cluster.setname", {"name": name, "base": _base_of(node, CLUSTER, "name")})
    return {"cluster": name, "event": ev.id}


def removemachine(node: Node, user: str, machine: str) -> dict[str, Any]:
    """Remove a machine for good; its events past its current seq no longer count anywhere."""
    st = _need_cluster(node)
    mid = _machine(node, st, machine)
    m = st.machines[mid]
    vv = node.log.version_vector()
    keys = {mid, m.key} - {""}
    # a machine removing itself: its removal event (its next seq) must still count
    cutoffs = {k: vv.get(k, 0) + (1 if k == node.origin else 0) for k in sorted(keys)}
    ev = node.append(user, "machine.remove", {"machine": mid, "cutoffs": cutoffs})
    if mid == node.mid:
        become_standalone(node, user)
    return {"machine": m.hostname, "event": ev.id, "cutoffs": cutoffs}


def become_standalone(node: Node, user: str) -> None:
    """After removal: keep what this machine inherited, flattened, as its own settings."""
    st = node.structure()
    settings = {}
    for name in sorted(catalog.SECTIONS):
        value, _, _ = state.resolve(node.store, st, node.mid, name)
        settings[name] = value
    me = st.machines.get(node.mid)
    announce = node.identity().announce(node.transport_pub)

    def switch_scope() -> None:
        nodetable.delete(node.conn, nodetable.CLUSTER_CREATE)
        rebuild_views(node)

    node.log.append(
        node.signing_key, user=user, kind="node.standalone",
        payload={"machine_id": node.mid, "machine": announce, "settings": settings,
                 "was": me.hostname if me else ""},
        now_ms=_now(), also=switch_scope,
    )


# ---------------------------------------------------------------------- listing


RUNNING_VERSION = __version__


def _versions_now(node: Node, st: state.Structure) -> dict[str, str]:
    """The version each machine runs now, where it is known: this machine's own, and that of
    every machine linked to it now (machines of different versions refuse to link); the others
    keep the version they last announced (at their join, and each time `evstore run` starts
    on another version: membership.announce_version)."""
    up = {p["hostname"] for p in node.peers(st) if p["state"] == "up"}
    return {m.mid: RUNNING_VERSION for m in st.members() if m.mid == node.mid or m.hostname in up}


def list_cluster(node: Node, detail: bool = False) -> dict[str, Any]:
    st = node.structure()
    now = _versions_now(node, st) if detail else {}
    groups = []
    for gid, gname in sorted(st.groups.items(), key=lambda kv: kv[1]):
        if gid in st.deleted:
            continue
        machines = []
        for m in st.members():
            if st.group_of(m.mid) != gid:
                continue
            entry: dict[str, Any] = {"hostname": m.hostname, "serial": m.serial}
            if detail:
                entry.update({
                    "listen": m.listen, "ccs": m.ccs, "version": now.get(m.mid, m.version),
                    "fingerprint": _fp(m.key or m.mid), "detached": m.detached,
                    "joined": _joined(node, m.mid),
                })
            machines.append(entry)
        groups.append({"name": gname, "machines": machines})
    return {"cluster": st.name, "groups": groups}


def connstatus(node: Node, now: int | None = None) -> list[dict[str, Any]]:
    """The links as this machine sees them (``Node.peers``), with what the seed's CONNSTATUS
    adds: whether each peer's announced host resolves here and to what, and how long each
    link has been in its state (``since``: when it entered it, None when never known)."""
    now = now_ms() if now is None else now
    st = node.structure()
    since = linktable.since(node.conn)
    rows = []
    for peer in node.peers(st):
        mid = st.find_machine(peer["hostname"])
        m = st.machines[mid] if mid else None
        at = since.get(mid) if peer["state"] != "disconnected" else _detached_at(node, st, mid)
        rows.append({**peer, "resolution": resolve_host(m.ccs or m.listen if m else ""),
                     "since": iso(at) if at else None,
                     "for_seconds": max(0, (now - at) // 1000) if at else None})
    return rows


def _detached_at(node: Node, st: state.Structure, mid: str | None) -> int | None:
    """When the machine (or this one, which cuts every link) was detached."""
    me = st.machines.get(node.mid)
    which = node.mid if me is not None and me.detached else mid
    if which is None:
        return None
    w = node.store.winners_of(machine_mode(which), state.STRUCT).get("detached")
    return w.wall if w else None


def resolve_host(address: str) -> dict[str, Any]:
    """Does the host of ``address`` resolve here, and to which addresses (an IP address
    resolves to itself)?"""
    import socket

    host = address.rpartition(":")[0].strip("[]") if ":" in address else address
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return {"host": host, "resolves": False, "addresses": []}
    found = sorted({str(info[4][0]) for info in infos})
    return {"host": host, "resolves": bool(found), "addresses": found}


def _fp(key: str) -> str:
    from evstore.core.events import fingerprint

    try:
        return fingerprint(key)
    except ValueError:
        return ""


def _joined(node: Node, mid: str) -> str | None:
    w = node.store.winners_of(machine_mode(mid), state.STRUCT).get("member")
    return iso(w.wall) if w else None


def _mode_order(mode: str) -> tuple[int, str]:
    """Cluster first, then groups, then machines, each by name (the seed's listing order)."""
    return ({"cluster": 0, "group": 1, "machine": 2}.get(mode.partition(":")[0], 3), mode)


def clustershow(node: Node, section: str) -> dict[str, Any]:
    catalog.get(section)
    from evstore.ops.settings import defined_at

    modes = sorted((node.to_display(m) for m in defined_at(node, section)), key=_mode_order)
    return {"section": section, "defined_at": modes}


__all__ = [
    "addgroup", "clustershow", "connstatus", "create", "current", "deletegroup", "inherited", "list_cluster",
    "removemachine", "renamegroup", "setgroup", "setname", "OperationalError",
    "rebuild_views",  # (its home is evstore/ops/scope.py; evstore/net/restore.py imports it here)
]
