"""Membership: who may write, admitting a machine, and a machine taking up a cluster.

A join has two halves. The *member* checks the request (passphrase or pre-shared entry,
software version, host naming) and appends a ``cluster.admit`` event naming the joiner's host
key, transport key, addresses and group. The *joiner* then receives the whole cluster log,
appends its own ``cluster.join`` event (an anchor: its chain in the cluster starts there) with
the machine-only settings it keeps, and rebuilds its views for the cluster: its clusterable
settings are now the cluster's. The network layer carries the bytes; this module holds the
rules, so they can be tested without sockets.
"""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import Path
from typing import Any

import nacl.signing

from evstore import __version__
from evstore.core import catalog, encoding, names, state
from evstore.core.errors import InvalidInput, OperationalError
from evstore.core.events import Event
from evstore.core.modes import machine_mode
from evstore.ops import secrets
from evstore.ops.node import Node, now_ms, parse_hostport
from evstore.ops.scope import in_scope_events, rebuild_views
from evstore.storage import lookups, nodetable


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_naming(node: Node, listen: str) -> None:
    """A cluster's announced hosts are all names or all IP addresses, never both."""
    host, _ = parse_hostport(listen)
    st = node.structure()
    kinds = {_is_ip(parse_hostport(m.listen)[0]) for m in st.members() if m.listen}
    if kinds and _is_ip(host) not in kinds:
        have = "IP addresses" if True in kinds else "host names"
        raise InvalidInput(f"this cluster's machines are announced by {have}; announce "
                           f"{listen} the same way (a cluster may not mix names and addresses)")


def admit(node: Node, user: str, request: dict[str, Any], *, passphrase: str | None = None,
          preshared: bool = False) -> Event:
    """Member side of a join: check the request and append ``cluster.admit`` (or, for a
    join taken up again after its admission, return that admission: ``awaiting_join``)."""
    st = node.structure()
    if st.name is None:
        raise OperationalError("this machine is not in a cluster: create one first")
    version = str(request.get("version", ""))
    if version != __version__:
        raise OperationalError(f"version mismatch: this cluster runs evstore {__version__}, "
                               f"the joining machine runs {version}; upgrade it first")
    key = str(request.get("key", ""))
    names.check(str(request.get("hostname", "")), "host")  # a joiner's name is shown too
    check_credentials(node, str(request.get("hostname", "")), key, passphrase=passphrase,
                      preshared=preshared)
    check_naming(node, str(request.get("listen", "")))
    again = awaiting_join(node, key)
    if again is not None:
        return again
    gid = st.find_group(str(request.get("group") or "")) if request.get("group") else st.main_group
    if gid is None:
        raise InvalidInput(f"no group named {request.get('group')!r} in cluster {st.name}")
    machine = {k: request[k] for k in ("hostname", "serial", "listen", "ccs", "version",
                                       "transport_key") if request.get(k)}
    ev = node.append(user, "cluster.admit", {
        "machine_id": key, "key": key, "machine": machine, "group": gid,
        "cluster": _create_id(node), "via": "preshared" if preshared else "passphrase",
    })
    if preshared:
        _use_up(node, user, str(request.get("hostname", "")), key)
    return ev


def _use_up(node: Node, user: str, host: str, key: str) -> None:
    """A join uses its pre-shared entry up: the member that admitted it commits the entry's
    removal at once, so it is pending on no member and admits that key no more."""
    from evstore.ops.settings import commit_change

    entries = node.store.section_value("cluster", "prepjoin") or {"hosts": []}
    rest = [h for h in entries.get("hosts", []) if h.get("key") != key and h.get("name") != host]
    if len(rest) != len(entries.get("hosts", [])):
        commit_change(node, user, "cluster", "prepjoin", {**entries, "hosts": rest},
                      comment=f"the pre-shared join entry of {host} is used up by its join")


def check_credentials(node: Node, host: str, key: str, *, passphrase: str | None,
                      preshared: bool) -> None:
    """May the machine holding ``key`` join? The admin passphrase, or its pre-shared entry.

    A member asks this before it tells a joining machine anything about the cluster, and
    again when it admits it.
    """
    if preshared:
        _use_prepjoin(node, host, key)
        return
    admin = next((u for u in node.users() if u.get("name") == "admin"), None)
    if admin is None or passphrase is None or not secrets.check_passphrase(
        admin.get("passphrase_hash", ""), passphrase
    ):
        node.authenticate("admin", "\x00invalid")  # records the failure, then raises


def awaiting_join(node: Node, key: str) -> Event | None:
    """The admission of ``key`` when it was admitted and its own ``cluster.join`` has not
    arrived yet (a join cut off after its admission, taken up again): the same admission
    goes on, none is added. None otherwise."""
    st = node.structure()
    if not any(m.key == key and not m.removed for m in st.members()):
        return None
    if lookups.has_events_of(node.conn, key):
        return None
    for event_id, raw in lookups.rows_of_kind(node.conn, "cluster.admit", newest_first=True):
        payload = encoding.loads_json(raw).get("payload") or {}
        if isinstance(payload, dict) and payload.get("key") == key:
            return node.log.get(event_id)
    return None


def _use_prepjoin(node: Node, host: str, key: str) -> None:
    if awaiting_join(node, key) is not None:
        return  # its entry admitted it already: the join is being taken up again
    if any(key in (m.key, m.mid) for m in node.structure().machines.values()):
        raise InvalidInput(f"the key of {host} has joined this cluster before: its pre-shared "
                           "entry is used up (a machine joining again takes a fresh key: run "
                           "`evstore clusterconfig prepjoin print` there and enter that)")
    entries = node.store.section_value("cluster", "prepjoin") or {"hosts": []}
    if not any(h["name"] == host and h["key"] == key for h in entries["hosts"]):
        raise InvalidInput(f"no pre-shared join entry for {host} with this key: run "
                           "`evstore clusterconfig prepjoin new HOST SERIAL KEY` on a member "
                           "and commit it first")


def _create_id(node: Node) -> str:
    create_id = nodetable.get(node.conn, nodetable.CLUSTER_CREATE)
    if create_id is None:
        raise OperationalError("this machine is not in a cluster")
    return str(create_id)


def join_request(node: Node, group: str | None = None) -> dict[str, Any]:
    """What a joining machine tells the member about itself (a removed machine first takes
    a fresh key: ``prepare_rejoin``)."""
    if node.in_cluster():
        raise InvalidInput(f"this machine is already in cluster {node.structure().name!r}; "
                           "remove it first (`clusterconfig removemachine`)")
    prepare_rejoin(node)
    ident = node.identity()
    return {**ident.announce(node.transport_pub), "key": node.origin, "group": group}


def take_up(node: Node, user: str, cluster_events: list[tuple[bytes, bytes]]) -> Event:
    """Joiner side: ingest the cluster's log and append this machine's ``cluster.join``.

    Its machine-only settings are kept (carried in the join event so every member holds them);
    everything clusterable now comes from the cluster and its group.
    """
    keep = {}
    st = node.structure()
    for name, sec in sorted(catalog.SECTIONS.items()):
        value, source, _ = state.resolve(node.store, st, node.mid, name)
        if not sec.clusterable and source != "default":
            keep[name] = value
    result = node.log.ingest(cluster_events, now_ms=now_ms())
    if result.rejected:
        raise InvalidInput(f"the member sent {len(result.rejected)} events that do not verify: "
                           f"{result.rejected[0].reason}")
    create = next((e for e in result.applied if e.kind == "cluster.create"), None)
    if create is None:  # a machine joining again holds the cluster's beginning already
        create = _create_among(node, cluster_events)
    if create is None:
        raise OperationalError("the member's log holds no cluster: nothing to join")

    def switch_scope() -> None:
        nodetable.put(node.conn, nodetable.CLUSTER_CREATE, create.id)
        rebuild_views(node)

    return node.log.append(
        node.signing_key, user=user, kind="cluster.join",
        payload={"cluster": create.id, "machine_id": node.origin,
                 "machine": node.identity().announce(node.transport_pub),
                 "machine_settings": keep},
        now_ms=now_ms(), also=switch_scope,
    )


def _create_among(node: Node, items: list[tuple[bytes, bytes]]) -> Event | None:
    """The ``cluster.create`` among ``items`` that this log held before they came."""
    raws = {bytes(raw) for raw, _sig in items}
    for event_id, raw in lookups.rows_of_kind(node.conn, "cluster.create"):
        if bytes(raw) in raws:
            return node.log.get(event_id)
    return None


# ---------------------------------------------------------------------- joining again

RETIRED_KEY = "retired_keys"


def removed_key(node: Node) -> bool:
    """Was this standalone machine's current host key removed from a cluster?

    Its removal's ``@cutoff`` retires that key everywhere: whatever it signs later counts
    nowhere, so it cannot take part in a cluster again.
    """
    if node.in_cluster():
        return False
    mine = {node.origin, node.mid}
    for raw in lookups.raw_of_kind(node.conn, "machine.remove"):
        payload = encoding.loads_json(raw).get("payload") or {}
        cutoffs = payload.get("cutoffs") if isinstance(payload, dict) else None
        if isinstance(cutoffs, dict) and mine & set(cutoffs):
            return True
    return False


def retired_keys(node: Node) -> frozenset[str]:
    """This machine's earlier host keys that a removal retired (their events never leave)."""
    retired = nodetable.get(node.conn, RETIRED_KEY)
    return frozenset(str(retired).split()) if retired is not None else frozenset()


def prepare_rejoin(node: Node, user: str = "admin") -> str | None:
    """A machine removed from a cluster joins again as a new membership: it takes a fresh
    host key (the old one stays beside it, 0600, as evidence) and becomes a new machine id,
    anchored by a ``node.standalone`` event of the new key that carries its settings as
    they are. Its events under the old key stay the history they were; those past the
    removal's cutoff keep counting nowhere. Returns the new key, or None when there is
    nothing to do (never removed, or already renewed).
    """
    if not removed_key(node):
        return None
    old, old_mid = node.origin, node.mid
    st = node.structure()
    settings = {name: state.resolve(node.store, st, old_mid, name)[0]
                for name in sorted(catalog.SECTIONS)}
    new_key = nacl.signing.SigningKey.generate()
    new_pub = new_key.verify_key.encode().hex()
    retired = " ".join(sorted(retired_keys(node) | {old, old_mid}))
    swap_key_files(node.home, old, new_key)
    node._key = new_key

    def switch_scope() -> None:
        for key, value in (("machine_id", new_pub), (RETIRED_KEY, retired)):
            nodetable.put(node.conn, key, value)
        rebuild_views(node)

    node.log.append(new_key, user=user, kind="node.standalone", payload={
        "machine_id": new_pub, "machine": node.identity().announce(node.transport_pub),
        "settings": settings, "was": node.identity().hostname, "replaces": old,
    }, now_ms=now_ms(), also=switch_scope)
    return new_pub


def swap_key_files(home: Path, old: str, new_key: nacl.signing.SigningKey) -> None:
    """Keep the old host key (0600, as evidence), put the new one in its place."""
    fresh = home / "host.key.new"
    with contextlib.suppress(FileNotFoundError):
        fresh.unlink()
    secrets.write_private(fresh, new_key.encode())
    (home / "host.key").rename(home / f"host.key.replaced-{old[:16]}")
    fresh.rename(home / "host.key")
    (home / "host.pub").write_text(new_key.verify_key.encode().hex() + "\n")


def member_events(node: Node) -> list[tuple[bytes, bytes]]:
    """Every in-scope event of this member, as (raw, sig), for a joiner or a catch-up."""
    return [(e.raw, e.sig) for e in sorted(in_scope_events(node), key=lambda e: (e.origin, e.seq))]


def is_member_key(node: Node, key: str) -> bool:
    st = node.structure()
    return any(key in (m.key, m.mid) for m in st.members())


__all__ = ["admit", "join_request", "machine_mode", "member_events", "take_up"]


def after_ingest(node: Node, applied: list[Event]) -> list[str]:
    """Follow-ups of events received from peers; returns what happened, for the log.

    A machine that learns of its own removal keeps what it inherited, flattened, as its own
    standalone settings (the seed's FAQ), at once.
    """
    notes = []
    for ev in applied:
        if ev.kind == "machine.remove" and ev.payload.get("machine") == node.mid:
            from evstore.ops.cluster import become_standalone

            if node.in_cluster():
                become_standalone(node, ev.user)
                notes.append(f"removed from the cluster by {ev.user}: now standalone")
    return notes


def announce_version(node: Node, user: str = "admin") -> Event | None:
    """Tell the cluster the version this machine runs, when the cluster's record of it says
    another (the seed's upgrade: disconnect, upgrade, reconnect). `listdetail` then shows the
    new version on every machine the announcement reaches, linked to this one or not. None
    when there is nothing to announce (standalone, removed, or the record is current)."""
    st = node.structure()
    me = st.machines.get(node.mid)
    if st.name is None or me is None or me.removed or me.version == __version__:
        return None
    return node.append(user, "machine.announce", {
        "machine_id": node.mid, "machine": node.identity().announce(node.transport_pub)})
