"""The configuration model through the real CLI on real SQLite homes."""

from __future__ import annotations

import os
import stat
from typing import Any as Cli


def test_init_makes_a_private_home_and_refuses_to_overwrite(cli: Cli) -> None:
    home = cli.init("lab1.example.com", "--serial", "S1")
    assert stat.S_IMODE(os.stat(home / "host.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home / "transport.key").st_mode) == 0o600
    s = cli(home, "status", "--json")
    assert s["hostname"] == "lab1.example.com" and s["serial"] == "S1"
    assert s["cluster"] is None and s["events"] == 1
    assert s["mode"] == "machine:lab1.example.com"
    res = cli(home, "init", "--hostname", "x", "--admin-passphrase-file", str(cli.passfile), code=2)
    assert "already" in res.stderr
    key = (home / "host.key").read_bytes()
    for name in ("status", "clusterconfig", "show"):
        assert key.hex() not in cli(home, name, "--help").stdout


def test_wrong_passphrase_is_refused_and_changes_nothing(cli: Cli) -> None:
    home = cli.init("a")
    before = cli(home, "status", "--json")["state_digest"]
    res = cli(home, "set", "dns", 'servers=["1.1.1.1"]', code=2,
              env={"EVSTORE_PASSPHRASE": "wrong"})
    assert "passphrase" in res.stderr
    assert cli(home, "changes", "--json")["changes"] == []
    assert cli(home, "status", "--json")["state_digest"] == before


def test_cluster_group_override_commit_and_inheritance(cli: Cli) -> None:
    home = cli.init("lab1")
    cli(home, "clusterconfig", "create", "CompanyName")
    listing = cli(home, "clusterconfig", "list", "--json")
    assert listing["cluster"] == "CompanyName"
    assert listing["groups"][0]["name"] == "Main_Group"
    assert listing["groups"][0]["machines"][0]["hostname"] == "lab1"
    cli(home, "clusterconfig", "addgroup", "Paris")
    cli(home, "set", "ldap", 'queries=[{"name":"a","server":"s","base":"dc=x","filter":"(u)"}]',
        'servers=[{"name":"s","host":"ldap1"}]', "--mode", "cluster")
    assert cli(home, "changes", "--json")["changes"][0]["op"] in ("define", "patch")
    cli(home, "commit", "-m", "ldap")
    shown = cli(home, "show", "ldap", "--mode", "cluster", "--json")
    assert shown["defined"] and shown["settings"]["servers"][0]["port"] == 389
    cli(home, "clusterconfig", "setgroup", "lab1", "Paris")
    cli(home, "override", "ldap", "--defaults", "--mode", "group:Paris")
    cli(home, "commit")
    eff = cli(home, "show", "ldap", "--effective", "--machine", "lab1", "--json")
    assert eff["source"] == "group:Paris" and eff["settings"]["queries"] == []
    assert cli(home, "clustershow", "ldap", "--json")["defined_at"] == ["cluster", "group:Paris"]
    cli(home, "delete", "ldap", "--mode", "group:Paris")
    cli(home, "commit")
    eff = cli(home, "show", "ldap", "--effective", "--machine", "lab1", "--json")
    assert eff["source"] == "cluster" and len(eff["settings"]["queries"]) == 1


def test_machine_only_section_refused_in_cluster_mode(cli: Cli) -> None:
    home = cli.init("m1")
    cli(home, "clusterconfig", "create", "c")
    res = cli(home, "set", "interfaces", "interfaces=[]", "--mode", "cluster", code=2)
    assert "machine" in res.stderr
    cli(home, "clustermode", "cluster")
    res = cli(home, "set", "interfaces", "interfaces=[]", code=2)
    assert "--switch" in res.stderr or "machine" in res.stderr
    cli(home, "set", "interfaces",
        'interfaces=[{"name":"Data1","address":"10.0.0.1","netmask":"255.255.255.0"}]',
        "--switch")
    assert cli(home, "clustermode", "--json")["mode"] == "machine:m1"


def test_dry_run_previews_and_commits_nothing(cli: Cli) -> None:
    home = cli.init("m1")
    cli(home, "clusterconfig", "create", "c")
    digest = cli(home, "status", "--json")["state_digest"]
    cli(home, "set", "listeners",
        'listeners=[{"name":"IncomingMail","interface":"Data1","port":25}]', "--mode", "cluster")
    preview = cli(home, "commit", "--dry-run", "--json")
    assert preview["changes"][0]["section"] == "listeners"
    assert preview["machines"][0]["hostname"] == "m1"
    assert preview["broken_references"], preview
    assert cli(home, "status", "--json")["state_digest"] == digest
    cli(home, "commit")
    assert cli(home, "status", "--json")["state_digest"] != digest


def test_commit_conflict_keeps_changes_staged(cli: Cli) -> None:
    home = cli.init("m1")
    cli(home, "clusterconfig", "create", "c")
    cli(home, "userconfig", "new", "bob", "--role", "operator",
        "--new-passphrase-file", str(cli.passfile))
    cli(home, "commit")
    cli(home, "set", "timezone", "zone=Europe/Paris", "--mode", "cluster")
    cli(home, "set", "timezone", "zone=Asia/Tokyo", "--mode", "cluster", "--user", "bob")
    cli(home, "commit", "--user", "bob")
    res = cli(home, "commit", code=1)
    assert "timezone" in res.stderr
    assert cli(home, "changes", "--json")["changes"]
    cli(home, "commit", "--discard")
    assert cli(home, "show", "timezone", "--mode", "cluster", "--json")["settings"]["zone"] == "Asia/Tokyo"


def test_readonly_user_cannot_stage(cli: Cli) -> None:
    home = cli.init("m1")
    cli(home, "clusterconfig", "create", "c")
    cli(home, "userconfig", "new", "ro", "--role", "readonly",
        "--new-passphrase-file", str(cli.passfile))
    cli(home, "commit")
    res = cli(home, "set", "dns", "servers=[]", "--mode", "cluster", "--user", "ro", code=2)
    assert "readonly" in res.stderr


def test_deletegroup_keeps_settings_on_its_machines(cli: Cli) -> None:
    home = cli.init("m1")
    cli(home, "clusterconfig", "create", "c")
    cli(home, "clusterconfig", "addgroup", "Rome")
    cli(home, "clusterconfig", "setgroup", "m1", "Rome")
    cli(home, "set", "dns", 'servers=["10.9.9.9"]', "--mode", "group:Rome")
    cli(home, "commit")
    out = cli(home, "clusterconfig", "deletegroup", "Rome", "--json")
    assert out["machines"] == ["m1"]
    eff = cli(home, "show", "dns", "--effective", "--machine", "m1", "--json")
    assert eff["settings"]["servers"] == ["10.9.9.9"] and eff["source"] == "machine:m1"


def test_removemachine_flattens_to_standalone(cli: Cli) -> None:
    home = cli.init("m1")
    cli(home, "set", "dns", 'servers=["10.1.1.1"]')
    cli(home, "commit")
    cli(home, "clusterconfig", "create", "c")
    cli(home, "clusterconfig", "removemachine", "m1")
    s = cli(home, "status", "--json")
    assert s["cluster"] is None
    shown = cli(home, "show", "dns", "--mode", "machine:m1", "--json")
    assert shown["defined"] and shown["settings"]["servers"] == ["10.1.1.1"]
