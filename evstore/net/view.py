"""What a serving node knows of the membership (``View``), re-read after every log change.

The view decides which links may exist (``View.linkable``), who may connect (``View.by_key``)
and which of our own events may leave (the anchors and the restored-home mark). It is read in
the database thread (``load_view``) and replaced whole, never changed in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from evstore.core.state import Machine
from evstore.net import restore
from evstore.ops import membership
from evstore.ops.node import Node
from evstore.storage import chainreads, nodetable

__all__ = ["View", "load_view"]


@dataclass(frozen=True)
class View:
    """What the node needs to know of the membership, refreshed after every log change."""

    origin: str
    mid: str
    hostname: str
    listen: str
    ccs: str | None
    cluster: str | None
    create_id: str | None
    detached: bool
    members: dict[str, Machine]  # the other members (detached ones too), by machine id
    removed: dict[str, Machine]  # removed machines: their links stay until they learn it
    prepjoin: frozenset[str]
    spoken: frozenset[str]  # keys with events in our log
    anchor: int
    mid_anchor: int
    selfsync: tuple[str, str] | None
    retired: frozenset[str] = frozenset()  # our keys a removal retired (membership.py)

    def by_key(self, key: str, *, removed: bool = False) -> Machine | None:
        """The member (or, with ``removed``, removed machine) whose host key is ``key``."""
        pool: list[Machine] = [*self.members.values(), *(self.removed.values() if removed else ())]
        for m in pool:
            if m.key == key:
                return m
        return None

    def linkable(self, blocked: frozenset[str] = frozenset()) -> dict[str, Machine]:
        """Members this node may link with now: none while standalone or detached; not a
        machine admitted whose own join has not arrived yet (it is still taking up the log)."""
        if self.cluster is None or self.detached:
            return {}
        return {mid: m for mid, m in self.members.items()
                if not m.detached and m.key in self.spoken and m.hostname not in blocked}


def load_view(node: Node) -> View:
    """Read the view (in the database thread)."""
    st = node.structure()
    ident = node.identity()
    me = node.mid
    origin = node.origin
    mine = st.machines.get(me)
    create_id = nodetable.get(node.conn, nodetable.CLUSTER_CREATE)
    # in a cluster once the scope has switched: a join ingests the cluster's log first and
    # anchors this machine in it only afterwards, in a second transaction
    cluster = st.name if create_id is not None else None
    members = {m.mid: m for m in st.members() if m.mid != me} if cluster else {}
    removed = {m.mid: m for m in st.machines.values()
               if cluster and m.removed and m.mid != me and m.key}
    prep = node.store.section_value("cluster", "prepjoin") if cluster else None
    return View(
        origin=origin, mid=me, hostname=ident.hostname, listen=ident.listen, ccs=ident.ccs,
        cluster=cluster, create_id=create_id if cluster else None,
        detached=bool(mine and mine.detached and cluster),
        members=members, removed=removed,
        prepjoin=frozenset(str(h.get("key")) for h in (prep or {}).get("hosts", [])),
        spoken=chainreads.origins(node.conn),
        anchor=node.log.latest_anchor(origin) or 1,
        mid_anchor=node.log.latest_anchor(me) or 1,
        selfsync=restore.read_mark(node),
        retired=membership.retired_keys(node),
    )
