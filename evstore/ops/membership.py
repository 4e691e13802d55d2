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

import ipaddress
from typing import Any

from evstore import __version__
from evstore.core import catalog, state
from evstore.core.errors import InvalidInput, OperationalError
from evstore.core.events import Event
from evstore.core.modes import machine_mode
from evstore.ops import secrets
from evstore.ops.cluster import rebuild_views
from evstore.ops.node import Node, now_ms, parse_hostport


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
    """Member side of a join: check the request and append ``cluster.admit``."""
    st = node.structure()
    if st.name is None:
        raise OperationalError("this machine is not in a cluster: create one first")
    version = str(request.get("version", ""))
    if version != __version__:
        raise OperationalError(f"version mismatch: this cluster runs evstore {__version__}, "
                               f"the joining machine runs {version}; upgrade it first")
    key = str(request.get("key", ""))
    check_credentials(node, str(request.get("hostname", "")), key, passphrase=passphrase,
                      preshared=preshared)
    check_naming(node, str(request.get("listen", "")))
    gid = st.find_group(str(request.get("group") or "")) if request.get("group") else st.main_group
    if gid is None:
        raise InvalidInput(f"no group named {request.get('group')!r} in cluster {st.name}")
    machine = {k: request[k] for k in ("hostname", "serial", "listen", "ccs", "version",
                                       "transport_key") if request.get(k)}
    return node.append(user, "cluster.admit", {
        "machine_id": key, "key": key, "machine": machine, "group": gid,
        "cluster": _create_id(node), "via": "preshared" if preshared else "passphrase",
    })


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


def _use_prepjoin(node: Node, host: str, key: str) -> None:
    entries = node.store.section_value("cluster", "prepjoin") or {"hosts": []}
    if not any(h["name"] == host and h["key"] == key for h in entries["hosts"]):
        raise InvalidInput(f"no pre-shared join entry for {host} with this key: run "
                           "`evstore clusterconfig prepjoin new HOST SERIAL KEY` on a member "
                           "and commit it first")


def _create_id(node: Node) -> str:
    row = node.conn.execute("SELECT value FROM node WHERE key='cluster_create'").fetchone()
    if row is None:
        raise OperationalError("this machine is not in a cluster")
    return str(row[0])


def join_request(node: Node, group: str | None = None) -> dict[str, Any]:
    """What a joining machine tells the member about itself."""
    if node.in_cluster():
        raise InvalidInput(f"this machine is already in cluster {node.structure().name!r}; "
                           "remove it first (`clusterconfig removemachine`)")
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
    if create is None:
        raise OperationalError("the member's log holds no cluster: nothing to join")

    def switch_scope() -> None:
        node.conn.execute("INSERT OR REPLACE INTO node (key, value) VALUES ('cluster_create', ?)",
                          (create.id,))
        rebuild_views(node)

    return node.log.append(
        node.signing_key, user=user, kind="cluster.join",
        payload={"cluster": create.id, "machine_id": node.origin,
                 "machine": node.identity().announce(node.transport_pub),
                 "machine_settings": keep},
        now_ms=now_ms(), also=switch_scope,
    )


def member_events(node: Node) -> list[tuple[bytes, bytes]]:
    """Every in-scope event of this member, as (raw, sig), for a joiner or a catch-up."""
    from evstore.ops.cluster import in_scope_events

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
