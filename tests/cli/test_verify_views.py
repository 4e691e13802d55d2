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
