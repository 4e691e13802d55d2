"""Traps a new operator fell into (issue 17, items 15-18 and 20), each pinned by a test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any as Cli

import pytest


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


# ---------------------------------------------------------------- 20: the smaller ones


def test_clearchanges_needs_the_passphrase(cli: Cli) -> None:
    lab = _cluster(cli)
    cli(lab, "set", "dns", 'servers=["10.0.0.1"]', "--mode", "cluster")
    cli(lab, "clearchanges", "--user", "admin", code=2, env={"EVSTORE_PASSPHRASE": "wrong"})
    assert len(cli(lab, "changes", "--json")["changes"]) == 1
    cli(lab, "clearchanges")
    assert cli(lab, "changes", "--json")["changes"] == []


def test_tables_are_not_cut_when_piped(cli: Cli) -> None:
    lab = _cluster(cli)
    out = cli(lab, "sections").stdout
    assert "…" not in out and "cluster,group,machine" in out


def test_a_commit_with_the_node_stopped_says_when_it_leaves(cli: Cli) -> None:
    lab = _cluster(cli)
    cli(lab, "set", "dns", 'servers=["10.0.0.1"]', "--mode", "cluster")
    res = cli(lab, "commit", "-m", "x")
    assert "evstore run" in res.stdout + res.stderr


def test_commit_warns_only_about_items_it_disables(cli: Cli) -> None:
    lab = _cluster(cli)
    cli(lab, "set", "listeners", 'listeners.In={"interface": "Data1", "port": 25}',
        "--mode", "cluster")
    res = cli(lab, "commit", "-m", "a listener on an interface lab1 lacks")
    assert "In is disabled" in res.stderr
    cli(lab, "set", "dns", 'servers=["10.0.0.1"]', "--mode", "cluster")
    res = cli(lab, "commit", "-m", "unrelated")
    assert "disabled" not in res.stderr


HASH = "$argon2id$"


def test_passphrase_hashes_are_never_printed(cli: Cli, tmp_path: Path) -> None:
    lab = _cluster(cli)
    at = cli(lab, "audit", "--json")[-1]["time"]
    cli(lab, "userconfig", "new", "carol", "--role", "operator", "--new-passphrase-file",
        str(cli.passfile))
    for args in (["changes", "--diff"], ["commit", "--dry-run"]):
        assert HASH not in cli(lab, *args).stdout, args
    for args in (["changes", "--diff", "--json"], ["commit", "--dry-run", "--json"]):
        assert HASH not in json.dumps(cli(lab, *args)), args
    cli(lab, "commit", "-m", "carol")
    for args in (["show", "users", "--mode", "cluster"], ["show", "users", "--mode", "cluster",
                                                          "--json"],
                 ["diff", "--from", at], ["diff", "--from", at, "--json"],
                 ["replay", str(lab / "evstore.db")], ["replay", str(lab / "evstore.db"), "--json"],
                 ["show", "users", "--effective", "--machine", "lab1", "--json"],
                 ["blame", "users", "--machine", "lab1"]):
        out = cli(lab, *args)
        assert HASH not in (json.dumps(out) if "--json" in args else out.stdout), args
    assert "carol" in cli(lab, "show", "users", "--mode", "cluster").stdout


def test_an_unknown_time_zone_is_refused(cli: Cli) -> None:
    lab = _cluster(cli)
    res = cli(lab, "set", "timezone", "zone=Not/AZone", "--mode", "cluster", code=2)
    assert "Not/AZone" in res.stderr and "time zone" in res.stderr
    cli(lab, "set", "timezone", "zone=Europe/Paris", "--mode", "cluster")


def test_moving_a_table_without_a_factory_default_warns(cli: Cli) -> None:
    lab = _cluster(cli)
    cli(lab, "set", "listeners", 'listeners.In={"interface": "Data1", "port": 25}',
        "--mode", "cluster")
    cli(lab, "commit")
    res = cli(lab, "clusterset", "listeners", "--move", "--to", "group:Main_Group",
              "--mode", "cluster")
    assert "factory default" in res.stderr
    cli(lab, "clearchanges")
    res = cli(lab, "clusterset", "listeners", "--copy", "--to", "group:Main_Group",
              "--mode", "cluster")
    assert "factory default" not in res.stderr


def test_sections_shows_keys_and_defaults_and_describes_one(cli: Cli) -> None:
    lab = _cluster(cli)
    out = cli(lab, "sections").stdout
    assert "servers" in out and '{"zone": "UTC"}' in out
    one = cli(lab, "sections", "dns").stdout
    assert one.startswith("dns: DNS servers (seed: dnsconfig)") and "servers" in one
    assert "ldap" not in one
    ldap = cli(lab, "sections", "ldap", "--json")
    assert [s["name"] for s in ldap] == ["ldap"]
    assert "389" in cli(lab, "sections", "ldap").stdout
    assert "unknown section 'dsn'" in cli(lab, "sections", "dsn", code=2).stderr


def test_a_malformed_fingerprint_is_a_usage_error(cli: Cli) -> None:
    lab: Path = cli.init("lab2")
    for bad in ("zz:top", "3a:91", "3a" * 17):
        res = cli(lab, "clusterconfig", "join", "127.0.0.1:1", "--fingerprint", bad, "--yes",
                  code=2)
        assert res.stderr.count("\n") == 1 and "not a host-key fingerprint" in res.stderr


def test_a_group_added_on_a_detached_machine_warns(cli: Cli, tmp_path: Path) -> None:
    import socket

    from evstore.core import events
    from evstore.ops import membership
    from evstore.ops.node import init_home, now_ms, open_node

    def closed_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    lab = _cluster(cli)
    other = tmp_path / "lab2"
    init_home(other, hostname="lab2", passphrase="correct horse battery", serial="S2",
              listen=f"127.0.0.1:{closed_port()}")
    with open_node(lab) as a, open_node(other) as b:
        membership.admit(a, "admin", membership.join_request(b),
                         passphrase="correct horse battery")
        membership.take_up(b, "admin", membership.member_events(a))
    cli(lab, "clusterconfig", "disconnect", "lab2", code=1)  # lab2 cannot be told: unreachable
    with open_node(lab) as a, open_node(other) as b:  # it learns at its next contact
        theirs = b.log.version_vector()
        b.log.ingest([(raw, sig) for raw, sig in membership.member_events(a)
                      if theirs.get(events.parse(raw, sig).origin, 0)
                      < events.parse(raw, sig).seq], now_ms=now_ms())
    for home, group in ((lab, "West"), (other, "East")):
        res = cli(home, "clusterconfig", "addgroup", group)
        assert "get this change only on reconnect" in res.stderr, home


def test_listdetail_shows_the_version_a_machine_runs_now(cli: Cli,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from evstore.ops import cluster as cluster_ops

    lab = _cluster(cli)
    joined = cli(lab, "clusterconfig", "listdetail", "--json")["groups"][0]["machines"][0]
    monkeypatch.setattr(cluster_ops, "RUNNING_VERSION", "99.0.0")  # as after an upgrade
    now = cli(lab, "clusterconfig", "listdetail", "--json")["groups"][0]["machines"][0]
    assert joined["version"] != "99.0.0" and now["version"] == "99.0.0"
