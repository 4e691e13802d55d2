"""Scenarios several test packages set up the same way (one place, so they cannot drift)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from evstore.core import events
from evstore.ops import check, membership, settings
from evstore.ops.node import init_home, now_ms, open_node


def closed_port() -> int:
    """A loopback port nobody listens on (a peer there is unreachable at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sync(src: Any, dst: Any) -> None:
    """Anti-entropy by hand (as tests/ops/test_membership.py): dst gets what it lacks."""
    theirs = dst.log.version_vector()
    items = []
    for raw, sig in membership.member_events(src):
        ev = events.parse(raw, sig)
        if theirs.get(ev.origin, 0) < ev.seq:
            items.append((raw, sig))
    dst.log.ingest(items, now_ms=now_ms())


def superseded_time_zone(home: Path, other: Path, passphrase: str,
                         serial: str = "S2") -> list[dict[str, Any]]:
    """``other`` (lab2) joins ``home``'s cluster by hand and is unreachable afterwards
    (nothing serves it); both change the time zone at cluster level without seeing each other,
    then exchange events: one of the two changes is superseded. Returns the superseded rows."""
    init_home(other, hostname="lab2", passphrase=passphrase, serial=serial,
              listen=f"127.0.0.1:{closed_port()}")
    with open_node(home) as a, open_node(other) as b:
        membership.admit(a, "admin", membership.join_request(b), passphrase=passphrase)
        membership.take_up(b, "admin", membership.member_events(a))
        sync(b, a)
        settings.stage(a, "admin", "cluster", "timezone", {"zone": "Europe/Paris"})
        settings.commit(a, "admin", "Paris time")
        settings.stage(b, "admin", "cluster", "timezone", {"zone": "Asia/Tokyo"})
        settings.commit(b, "admin", "Tokyo time")
        sync(a, b)
        sync(b, a)
        return check.superseded(a)
