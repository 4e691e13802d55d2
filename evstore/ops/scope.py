"""A node's scope: which events make up its configuration now, and the views rebuilt from them.

A standalone node's configuration is its own events from its latest anchor (``node.init`` or
``node.standalone``); a cluster member's is the cluster's ``cluster.create`` and the events of
every member origin from that origin's anchor in the cluster (its join or rekey event).
Creating, joining or leaving a cluster changes the scope, and the views are rebuilt for it in
the same transaction (evstore/ops/cluster.py, evstore/ops/membership.py); so is a settled fork
that took a branch out of the log (evstore/ops/node.py).

This module sits below node.py, which defines the home it reads: it needs only the home's
connection, log and signing origin (:class:`Home`), so the home can rebuild its own views
without importing the cluster operations that import it.
"""

from __future__ import annotations

import sqlite3
from typing import Protocol

from evstore.core.events import Event
from evstore.storage import nodetable
from evstore.storage.log import EventLog


class Home(Protocol):
    """What the scope reads of an open home (``evstore.ops.node.Node`` is one)."""

    @property
    def conn(self) -> sqlite3.Connection: ...

    @property
    def log(self) -> EventLog: ...

    @property
    def origin(self) -> str: ...


def in_scope_events(node: Home) -> list[Event]:
    """The events that make up this node's configuration now (see the module docstring)."""
    create_id = nodetable.get(node.conn, nodetable.CLUSTER_CREATE)
    if create_id is None:
        anchor = node.log.latest_anchor(node.origin) or 1
        return [e for e in node.log.read_range(node.origin, anchor, 1 << 62)]
    create = node.log.get(create_id)
    if create is None:
        return []
    out = [create]
    anchors = {create.origin: create.seq}
    for ev in node.log.iter_all():
        if ev.kind in ("cluster.join", "node.rekey") and ev.payload.get("cluster") == create.id:
            anchors.setdefault(ev.origin, ev.seq)
    for origin, first in sorted(anchors.items()):
        for ev in node.log.read_range(origin, first, 1 << 62):
            if ev.id != create.id:
                out.append(ev)
    return out


def rebuild_views(node: Home) -> None:
    """Drop and recompute every view from the in-scope events (inside the caller's transaction)."""
    from evstore.storage import rebuild  # (here: `show` and `status` import this module)

    rebuild.rebuild(node.conn, in_scope_events(node))
