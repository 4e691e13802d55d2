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


# ---------------------------------------------------------------- 16: rollback's reach


def _rollback_lab(cli: Cli) -> tuple[Path, str]:
    """dns committed (time T), then a user, an interface and a dns change after T."""
    lab = _cluster(cli)
    cli(lab, "set", "dns", 'servers=["10.0.0.1"]', "--mode", "cluster")
    cli(lab, "commit", "-m", "dns A")
    at: str = cli(lab, "audit", "--section", "dns", "--json")[-1]["time"]
    cli(lab, "userconfig", "new", "carol", "--role", "operator",
        "--new-passphrase-file", str(cli.passfile))
    cli(lab, "set", "interfaces", 'interfaces.Data1={"address": "192.0.2.1", "netmask": "/24"}',
        "--mode", "machine:lab1")
    cli(lab, "set", "dns", 'servers=["10.0.0.2"]', "--mode", "cluster")
    cli(lab, "commit", "-m", "after T")
    return lab, at


def test_rollback_leaves_users_and_machine_settings_alone(cli: Cli) -> None:
    lab, at = _rollback_lab(cli)
    data = cli(lab, "rollback", "--to", at, "--json")
    assert [(s["section"], s["mode"]) for s in data["staged"]] == [("dns", "cluster")]
    kept = {(k["section"], k["mode"]) for k in data["kept"]}
    assert kept == {("users", "cluster"), ("interfaces", "machine:lab1")}
    res = cli(lab, "rollback", "--to", at)
    assert "--include-users" in res.stderr and "--include-machine-settings" in res.stderr


def test_rollback_includes_them_when_asked_destructive_first(cli: Cli) -> None:
    lab, at = _rollback_lab(cli)
    data = cli(lab, "rollback", "--to", at, "--include-users", "--include-machine-settings",
               "--json")
    got = [(s["section"], s["mode"], s["destructive"]) for s in data["staged"]]
    assert set(got) == {("interfaces", "machine:lab1", True), ("users", "cluster", True),
                        ("dns", "cluster", False)}
    assert [d for _, _, d in got] == [True, True, False]  # anything destructive first
    cli(lab, "clearchanges")
    out = cli(lab, "rollback", "--to", at, "--include-users", "--include-machine-settings").stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[0].startswith("DESTRUCTIVE")
    assert "carol" in out and "Data1" in out


# ---------------------------------------------------------------- 17: a deleted group is gone


def test_a_deleted_group_is_not_listed_and_its_namesake_is_new(cli: Cli) -> None:
    lab = _cluster(cli)
    cli(lab, "clusterconfig", "addgroup", "West")
    cli(lab, "set", "dns", 'servers=["10.9.9.9"]', "--mode", "group:West")
    cli(lab, "set", "dns", 'servers=["10.0.0.1"]', "--mode", "cluster")
    cli(lab, "commit", "-m", "West's own dns")
    cli(lab, "clusterconfig", "deletegroup", "West")
    assert cli(lab, "clustershow", "dns", "--json")["defined_at"] == ["cluster"]
    shown = cli(lab, "show", "dns", "--mode", "cluster", "--json")
    assert shown["also_defined_at"] == []
    assert "group:West" not in cli(lab, "show", "dns", "--mode", "cluster").stdout
    cli(lab, "clusterconfig", "addgroup", "West")
    res = cli(lab, "set", "dns", 'servers=["10.0.0.2"]', "--mode", "cluster")
    assert "West" not in res.stderr  # the new West overrides nothing: no "will not affect"
    cli(lab, "set", "dns", 'servers=["10.8.8.8"]', "--mode", "group:West")
    cli(lab, "commit", "-m", "the new West's dns")
    assert cli(lab, "clustershow", "dns", "--json")["defined_at"] == ["cluster", "group:West"]
    res = cli(lab, "set", "dns", 'servers=["10.0.0.3"]', "--mode", "cluster")
    assert "group:West" in res.stderr  # now it does


# ---------------------------------------------------------------- 11: the machine's network


def test_routes_gateway_and_ethernet_are_the_machines_own(cli: Cli) -> None:
    lab = _cluster(cli)
    res = cli(lab, "set", "routes", 'routes.lab={"destination": "10.20.0.0/16", '
              '"gateway": "192.0.2.1", "interface": "Data1"}', "--mode", "cluster", code=2)
    assert "machine" in res.stderr
    cli(lab, "set", "routes", 'routes.lab={"destination": "10.20.0.0/16", '
        '"gateway": "192.0.2.1", "interface": "Data1"}', "--mode", "machine:lab1")
    cli(lab, "set", "gateway", "ipv4=192.0.2.1", "--mode", "machine:lab1")
    cli(lab, "set", "ethernet", 'ports.eth0={"media": "1000baseTX full-duplex"}',
        "--mode", "machine:lab1")
    cli(lab, "commit", "-m", "network")
    shown = cli(lab, "show", "routes", "--effective", "--machine", "lab1", "--json")
    assert shown["disabled"] == [
        {"item": "lab", "reason": 'interface "Data1" is not defined on this machine'}]
    assert cli(lab, "get", "gateway", "--json") == {"ipv4": "192.0.2.1"}
