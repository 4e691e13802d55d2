"""Schema step 12: a home whose log holds an announcement naming a version rebuilds its views
once (they were made when an announcement changed only the addresses)."""

from __future__ import annotations

from pathlib import Path

from evstore.ops import cluster
from evstore.ops.node import init_home, open_node
from evstore.storage import views
from evstore_migrations import m0012_announced_versions as step


def _marked_after_step(home: Path) -> bool:
    with open_node(home) as node:
        conn = node.conn
        conn.execute("BEGIN")
        views.rejudge_done(conn)
        step.apply(conn)
        marked = views.rejudge_marked(conn)
        conn.execute("ROLLBACK")
    return marked


def test_an_announcement_naming_a_version_marks_the_views(tmp_path: Path) -> None:
    home = tmp_path / "lab1"
    init_home(home, hostname="lab1", passphrase="pw", serial="S1")
    with open_node(home) as node:
        cluster.create(node, "admin", "Co")
    assert not _marked_after_step(home)  # no announcement: nothing to redo
    with open_node(home) as node:
        node.append("admin", "machine.announce", {
            "machine_id": node.mid, "machine": node.identity().announce(node.transport_pub)})
    assert _marked_after_step(home)
