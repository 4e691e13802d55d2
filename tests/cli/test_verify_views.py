"""`evstore verify --views` through the real CLI (issue 15, item 9): a hand-edited
`effective` row is found (problem kind `view`, exit 1, `--json` per the contract)."""

from __future__ import annotations

import json
import sqlite3

from tests.cli.conftest import Cli


def test_verify_views_finds_a_hand_edited_effective_row(cli: Cli) -> None:
    home = cli.init("vv1")
    cli(home, "set", "dns", 'servers=["10.0.0.1"]')
    cli(home, "commit")
    assert cli(home, "verify", "--views", "--json") == {"ok": True, "events": 2,
                                                         "problems": []}
    db = sqlite3.connect(home / "evstore.db", isolation_level=None)
    db.execute("UPDATE effective SET value = ? WHERE section = 'dns'",
               ('{"servers":["6.6.6.6"]}',))
    db.close()
    assert cli(home, "verify", "--json")["ok"] is True  # the log itself is sound
    res = cli(home, "verify", "--views", "--json", code=1)
    report = json.loads(res.stdout)
    assert report["ok"] is False
    (problem,) = report["problems"]
    assert problem["kind"] == "view" and problem["detail"].startswith("effective ")
    assert "6.6.6.6" in problem["detail"] and "10.0.0.1" in problem["detail"]
    res = cli(home, "verify", "--views", code=1)
    assert "view" in res.stdout and "effective" in res.stdout


def test_verify_views_finds_a_lost_index_and_a_stray_table(cli: Cli) -> None:
    """The schema's shape (tables, columns, indexes, read with sqlite-utils) against what this
    release's migrations make: kind `schema`, exit 1."""
    home = cli.init("vv2")
    db = sqlite3.connect(home / "evstore.db", isolation_level=None)
    (index,) = db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                          "tbl_name = 'events' AND sql IS NOT NULL LIMIT 1").fetchone()
    db.execute(f"DROP INDEX {index}")
    db.execute("CREATE TABLE scratch (a)")
    db.close()
    report = json.loads(cli(home, "verify", "--views", "--json", code=1).stdout)
    details = sorted(p["detail"] for p in report["problems"] if p["kind"] == "schema")
    assert len(details) == 2 and details[1] == "table scratch is not one of this release's"
    have, want = details[0].removeprefix("table events: indexes ").split(" where ")
    assert index not in have and index in want
