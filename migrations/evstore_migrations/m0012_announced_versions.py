"""Schema step: a ``machine.announce`` carries the version its machine runs into the machine's
record (issue 17 item 20), where it carried only the addresses before.

No table changes. Views made before this step applied an announcement's addresses only, so a
home whose log holds an announcement that names a version rebuilds its views when next opened
(the mark of step 9), and its views are again exactly what its log gives.

Never edit once released: add a new step instead."""

from __future__ import annotations

import json
import sqlite3


def _names_a_version(raw: bytes | str) -> bool:
    try:
        payload = json.loads(raw).get("payload")
        return isinstance(payload, dict) and "version" in payload.get("machine", {})
    except (ValueError, AttributeError):
        return False


def apply(conn: sqlite3.Connection) -> None:
    rows = conn.execute("SELECT raw FROM events WHERE kind = 'machine.announce'")
    if any(_names_a_version(raw) for (raw,) in rows):
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('views_rejudge', '1')")
