"""Traps a new operator fell into (issue 17, items 15-18 and 20), each pinned by a test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any as Cli


def _cluster(cli: Cli) -> Path:
    lab: Path = cli.init("lab1")
    cli(lab, "clusterconfig", "create", "Lab")
    return lab


# ---------------------------------------------------------------- 15: unknown keys refused


def test_edit_refuses_an_unknown_key_and_stages_nothing(cli: Cli, tmp_path: Path) -> None:
    lab = _cluster(cli)
    f = tmp_path / "dns.json"
    f.write_text(json.dumps({"server": ["10.0.0.1"]}))
    res = cli(lab, "edit", "dns", "--file", str(f), "--mode", "cluster", code=2)
    assert "dns.server: unknown key; did you mean servers?" in res.stderr
    assert cli(lab, "changes", "--json")["changes"] == []


def test_set_of_a_whole_list_refuses_an_unknown_field(cli: Cli) -> None:
    lab = _cluster(cli)
    res = cli(lab, "set", "ldap", 'servers=[{"name": "a", "host": "h", "prot": 1}]',
              "--mode", "cluster", code=2)
    assert "ldap.servers[a].prot: unknown key; did you mean port?" in res.stderr


def test_loadconfig_refuses_an_unknown_key(cli: Cli, tmp_path: Path) -> None:
    lab = _cluster(cli)
    saved = tmp_path / "conf.xml"
    cli(lab, "saveconfig", str(saved))
    text = saved.read_text()
    assert '"servers": []' in text or '"servers":[]' in text
    saved.write_text(text.replace('"servers":[]', '"server":[]', 1)
                     .replace('"servers": []', '"server": []', 1))
    res = cli(lab, "loadconfig", str(saved), "--cluster", "--yes", code=2)
    assert "unknown key; did you mean servers?" in res.stderr
    assert cli(lab, "changes", "--json")["changes"] == []
