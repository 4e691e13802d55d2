"""Schema step: inadmissible events kept in the log but applied nowhere (issue 15).

``inadmissible`` names every event the admissibility rule (evstore/core/admit.py) refused,
with its clock and the reason: such an event stays in ``events`` (signed and chained) and
writes no register. ``authority_events`` names the events that write a ``users`` section
or declare cutoffs (a removal's, a rekey's), admissible or not: the user database that judges
every other event is folded from them.
Both are views (a rebuild empties and refills them).

An existing log's authority events are found here, so that events applied after the upgrade
are judged against the users it already has, and ``meta`` is marked ``views_rejudge``: a home
rebuilds its views (applying the rule to the events applied before) when next opened
(evstore/ops/node.py, ``open_node``).
The test is this step's own copy of the rule (a ``users`` section written by a settings
change, a node's or cluster's initial settings, a join's machine settings or a group
deletion's copies; the cutoffs of a removal or of a rekey's admission), so the step means the same whatever the code becomes. Never edit once
released: add a new step instead.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

SQL = """
CREATE TABLE inadmissible (
  event TEXT PRIMARY KEY, clock INTEGER NOT NULL, reason TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE authority_events (
  clock INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (clock, event)
) WITHOUT ROWID;
"""

_SETTINGS_KINDS = ("config.commit", "clustercheck.resolve", "config.load")


def _has(settings: Any) -> bool:
    return isinstance(settings, dict) and "users" in settings


def _writes_users(kind: str, p: Any) -> bool:
    if not isinstance(p, dict):
        return False
    if kind in _SETTINGS_KINDS:
        chs = p.get("changes")
        return isinstance(chs, list) and any(isinstance(c, dict) and c.get("section") == "users"
                                             for c in chs)
    if kind in ("node.init", "node.standalone"):
        return _has(p.get("settings"))
    if kind == "cluster.create":
        return _has(p.get("cluster_settings")) or _has(p.get("machine_settings"))
    if kind == "cluster.join":
        return _has(p.get("machine_settings"))
    if kind == "group.delete":
        copies = p.get("copies")
        return isinstance(copies, list) and any(isinstance(c, dict) and c.get("section") == "users"
                                                for c in copies)
    return False


def _declares_cutoffs(kind: str, p: Any) -> bool:
    if not isinstance(p, dict):
        return False
    if kind == "machine.remove":
        return isinstance(p.get("cutoffs"), dict) and bool(p["cutoffs"])
    return kind == "cluster.admit" and "replaces" in p and "cutoff" in p


def apply(conn: sqlite3.Connection) -> None:
    for statement in SQL.split(";"):
        if statement.strip():
            conn.execute(statement)
    rows = []
    for event_id, kind, clock, raw in conn.execute("SELECT id, kind, clock, raw FROM events"):
        try:
            payload = json.loads(raw).get("payload")
        except (ValueError, AttributeError):
            continue
        if _writes_users(kind, payload) or _declares_cutoffs(kind, payload):
            rows.append((clock, event_id))
    conn.executemany("INSERT OR IGNORE INTO authority_events (clock, event) VALUES (?,?)", rows)
    if conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None:
        # the views were made without the rule: a home rebuilds them when next opened
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('views_rejudge', '1')")
