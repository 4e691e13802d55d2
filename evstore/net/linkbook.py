"""The node's record of its links: the ``links`` table, the ``alerts`` table, peers' vectors.

Runs in the node's database thread only (the runtime queues these calls to one writer task),
so it needs no locking. It remembers, per peer, what it last wrote, to store transitions and
raise each alert once:

* "HOST is down" for a link that stays down (the runtime confirms it after a moment), or
  after three failed dials of a peer never reached; "HOST is up again" only after that;
* the clock of a peer off by more than the threshold (from the pings), once per crossing;
* a peer refusing our links: a version mismatch at once, anything else (a join or a
  reconnect in progress) only when it lasts three attempts.

The statements are storage's (storage/linktable.py, storage/nodetable.py); this module
decides what to write and when. ``status`` and ``connstatus`` read the tables (``Node.peers``); ``commitdetail`` reads the last
version vector a peer reported when it cannot reach that peer (``peer_vv_of``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from evstore.core.state import Machine
from evstore.net.gossip import LinkState
from evstore.ops.node import Node, now_ms
from evstore.storage import alerts, linktable, nodetable
from evstore.storage.connect import transaction

__all__ = ["LinkBook", "LinkRow", "peer_vv_of"]


@dataclass
class LinkRow:
    """What was last written about one peer."""

    state: str = "down"
    since: int | None = None
    down_alerted: bool = False
    failures: int = 0
    clock_alerted: bool = False
    last_refusal: str | None = None


class LinkBook:
    """Link rows, alerts and peers' vectors of one node (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, clock_alert_ms: int) -> None:
        self.conn = conn
        self.clock_alert_ms = clock_alert_ms
        self.rows: dict[str, LinkRow] = {}

    def reset(self) -> None:
        """No link is up while no node serves (at start, and at a clean stop)."""
        with transaction(self.conn):
            linktable.all_down(self.conn)

    def alert(self, kind: str, detail: str) -> None:
        with transaction(self.conn):
            alerts.add(self.conn, now_ms(), kind, detail)  # bounded (storage/alerts.py)

    def _row(self, mid: str) -> LinkRow:
        return self.rows.setdefault(mid, LinkRow())

    def _upsert(self, mid: str, state: str, since: int | None, last_seen: int | None,
                offset: int | None) -> None:
        with transaction(self.conn):
            linktable.store_state(self.conn, mid, state, since, last_seen, offset)

    def store_address(self, mid: str, address: str) -> None:
        with transaction(self.conn):
            linktable.store_address(self.conn, mid, address)

    def store_link(self, m: Machine, s: LinkState) -> None:
        row = self._row(m.mid)
        state = "up" if s.up else "down"
        if state != row.state:
            row.since = s.since_ms if s.up else now_ms()
            row.state = state
        if s.up:
            if row.down_alerted:
                self.alert("peer_up", f"{m.hostname} is up again")
            row.down_alerted, row.failures, row.last_refusal = False, 0, None
        self._upsert(m.mid, state, row.since, s.last_seen_ms, s.offset_ms)
        self._clock_check(m, row, s.offset_ms)

    def alert_down(self, m: Machine, detail: str) -> None:
        row = self._row(m.mid)
        if not row.down_alerted and row.state != "up":
            row.down_alerted = True
            self.alert("peer_down", detail)

    def _clock_check(self, m: Machine, row: LinkRow, offset: int | None) -> None:
        if offset is None:
            return
        over = abs(offset) > self.clock_alert_ms
        if over and not row.clock_alerted:
            self.alert("clock_offset", f"the clock of {m.hostname} is {offset} ms off this "
                       f"machine's (threshold {self.clock_alert_ms} ms): check NTP")
        row.clock_alerted = over

    def store_failure(self, m: Machine, text: str, refused: bool) -> None:
        row = self._row(m.mid)
        row.failures += 1
        if refused:  # a refusal during a join or a reconnect is normal for a moment
            if text != row.last_refusal and ("version" in text or row.failures >= 3):
                self.alert("link_refused", f"{m.hostname} refused the link: {text}")
                row.last_refusal = text
        elif row.failures >= 3 and not row.down_alerted:
            row.down_alerted = True
            self.alert("peer_down", f"{m.hostname} is down: not answering at "
                       f"{m.ccs or m.listen} ({text})")
        if row.state != "down" or row.since is None:
            row.state, row.since = "down", now_ms()
        self._upsert(m.mid, "down", row.since, None, None)

    def store_peer_vv(self, mid: str, vv: dict[str, int]) -> None:
        with transaction(self.conn):
            nodetable.put(self.conn, nodetable.peer_vv_key(mid), json.dumps(vv, sort_keys=True))


def peer_vv_of(node: Node, mid: str) -> dict[str, int] | None:
    """The version vector a peer last reported over a link (stored by the serving node)."""
    text = nodetable.get(node.conn, nodetable.peer_vv_key(mid))
    return None if text is None else {str(k): int(v) for k, v in json.loads(text).items()}
