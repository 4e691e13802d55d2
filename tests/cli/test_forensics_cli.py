"""Audit and forensics through the real CLI on real homes: audit, blame, diff, replay, verify,
revert, rollback, saveconfig and loadconfig."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

Cli = Any
DNS_A = 'servers=["10.0.0.1"]'
DNS_B = 'servers=["10.0.0.2"]'


def copy_db(home: Path, dest: Path) -> Path:
    """A consistent copy of a home's database, made with SQLite's backup API."""
    src = sqlite3.connect(home / "evstore.db")
    dst = sqlite3.connect(dest)
    src.backup(dst)
    src.close()
    dst.close()
    return dest


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def lab(cli: Cli) -> Path:
    """A one-machine cluster with a group, and a few commits by two users."""
    home = cli.init("lab1", "--serial", "S1")
    cli(home, "clusterconfig", "create", "Co")
    cli(home, "clusterconfig", "addgroup", "Paris")
    cli(home, "userconfig", "new", "bob", "--role", "operator",
        "--new-passphrase-file", str(cli.passfile))
    cli(home, "commit", "-m", "users")
    cli(home, "set", "dns", DNS_A, "--mode", "cluster")
    cli(home, "commit", "-m", "dns A")
    cli(home, "set", "dns", DNS_B, "--mode", "cluster", "--user", "bob")
    cli(home, "set", "timezone", "zone=Europe/Paris", "--mode", "cluster", "--user", "bob")
    cli(home, "set", "ldap", 'servers=[{"name":"s1","host":"ldap1"}]', "--mode", "group:Paris",
        "--user", "bob")
    cli(home, "commit", "-m", "bob's", "--user", "bob")
    return home


def commits(cli: Cli, home: Path) -> list[dict[str, Any]]:
    return [r for r in cli(home, "audit", "--kind", "config.commit", "--json")]


# --------------------------------------------------------------------------- audit


def test_audit_lists_each_change_oldest_first(cli: Cli, lab: Path) -> None:
    rows = cli(lab, "audit", "--json")
    assert [r["kind"] for r in rows[:3]] == ["node.init", "cluster.create", "group.add"]
    for r in rows:
        assert set(r) >= {"time", "user", "origin", "kind", "section", "mode", "commit", "summary"}
        assert r["origin"] == "lab1" and r["time"].endswith("Z")
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    bobs = cli(lab, "audit", "--user", "bob", "--json")
    assert {(r["section"], r["mode"]) for r in bobs} == {
        ("dns", "cluster"), ("timezone", "cluster"), ("ldap", "group:Paris")}
    assert len({r["commit"] for r in bobs}) == 1  # three changes, one commit
    assert [r["user"] for r in cli(lab, "audit", "--section", "dns", "--json")] == ["admin", "bob"]


def test_audit_exports_csv_and_json_lines_with_the_same_rows(cli: Cli, lab: Path) -> None:
    import csv
    import io
    import json

    rows = cli(lab, "audit", "--section", "dns", "--json")
    table = list(csv.DictReader(io.StringIO(cli(lab, "audit", "--section", "dns", "--csv").stdout)))
    assert [r["commit"] for r in table] == [r["commit"] for r in rows]
    assert list(table[0])[:8] == ["time", "user", "origin", "kind", "section", "mode", "commit",
                                  "summary"]
    lines = cli(lab, "audit", "--section", "dns", "--nl").stdout.splitlines()
    assert [json.loads(line) for line in lines] == rows
    res = cli(lab, "audit", "--csv", "--nl", code=2)
    assert "choose one output format" in res.stderr


def test_audit_filters_by_mode_origin_kind_time_and_limit(cli: Cli, lab: Path) -> None:
    cli(lab, "clusterconfig", "renamegroup", "Paris", "Lyon")
    lyon = cli(lab, "audit", "--mode", "group:Lyon", "--json")
    assert [r["kind"] for r in lyon] == ["group.add", "config.commit", "group.rename"]
    assert all(r["mode"] == "group:Lyon" for r in lyon)
    assert len(cli(lab, "audit", "--origin", "lab1", "--json")) == len(cli(lab, "audit", "--json"))
    groups = cli(lab, "audit", "--kind", "group", "--json")
    assert [r["kind"] for r in groups] == ["group.add", "group.rename"]
    rows = cli(lab, "audit", "--json")
    middle = rows[len(rows) // 2]["time"]
    later = cli(lab, "audit", "--since", middle, "--json")
    assert later and all(r["time"] >= middle for r in later)
    assert all(r["time"] <= middle for r in cli(lab, "audit", "--until", middle, "--json"))
    assert cli(lab, "audit", "--limit", "2", "--json") == rows[-2:]
    assert cli(lab, "audit", "--since", "-1h", "--json") == rows
    assert cli(lab, "audit", "--until", "-1h", "--json") == []


def test_audit_refuses_bad_filters_in_one_line(cli: Cli, lab: Path) -> None:
    res = cli(lab, "audit", "--since", "yesterday", code=2)
    assert "ISO 8601" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = cli(lab, "audit", "--mode", "group:Nowhere", code=2)
    assert "Paris" in res.stderr


def test_audit_catches_up_after_new_commits(cli: Cli, lab: Path) -> None:
    before = len(cli(lab, "audit", "--json"))
    cli(lab, "set", "ntp", 'servers=["ntp1"]', "--mode", "cluster")
    cli(lab, "commit")
    rows = cli(lab, "audit", "--json")
    assert len(rows) == before + 1 and rows[-1]["section"] == "ntp"


# --------------------------------------------------------------------------- blame and diff


def test_blame_names_mode_and_event_of_each_value(cli: Cli, lab: Path) -> None:
    dns = cli(lab, "blame", "dns", "--machine", "lab1", "--json")
    assert dns["section"] == "dns" and dns["machine"] == "lab1"
    (servers,) = dns["values"]
    assert servers["key"] == "servers" and servers["value"] == ["10.0.0.2"]
    assert servers["source"] == "cluster" and servers["user"] == "bob"
    bob_commit = cli(lab, "audit", "--user", "bob", "--json")[0]["commit"]
    assert servers["event"] == bob_commit
    cli(lab, "clusterconfig", "setgroup", "lab1", "Paris")
    ldap = cli(lab, "blame", "ldap", "--json")
    keys = {v["key"]: v for v in ldap["values"]}
    assert keys["servers[s1]"]["source"] == "group:Paris"
    assert keys["servers[s1]"]["value"]["host"] == "ldap1"
    assert keys["queries"]["value"] == []
    default = cli(lab, "blame", "ntp", "--json")
    assert default["source"] == "cluster"
    cli(lab, "blame", "nosuchsection", code=2)


def test_diff_between_two_times(cli: Cli, lab: Path) -> None:
    times = [r["time"] for r in commits(cli, lab)]  # users, dns A, bob's (3 rows)
    data = cli(lab, "diff", "--from", times[1], "--to", times[2], "--machine", "lab1", "--json")
    assert data["from"] == times[1] and data["to"] == times[2]
    (machine,) = data["machines"]
    changes = machine["changes"]
    assert machine["hostname"] == "lab1" and set(changes) == {"dns", "timezone"}
    assert changes["dns"]["before"] == {"servers": ["10.0.0.1"]}
    assert changes["dns"]["after"] == {"servers": ["10.0.0.2"]}
    assert cli(lab, "diff", "--from", times[2], "--json")["machines"][0]["changes"] == {}
    cli(lab, "diff", "--from", times[2], "--to", times[1], code=2)


# --------------------------------------------------------------------------- replay


def test_replay_rebuilds_any_point_offline_without_touching_the_copy(cli: Cli, lab: Path) -> None:
    copy = copy_db(lab, cli.tmp / "copy.db")
    before = digest(copy)
    now = cli(lab, "status", "--json")
    data = cli(lab, "replay", str(copy), "--json")
    assert data["state_digest"] == now["state_digest"]
    assert data["cluster"] == "Co"
    assert data["groups"] == cli(lab, "clusterconfig", "list", "--json")["groups"]
    assert data["settings"]["cluster"]["dns"] == {"servers": ["10.0.0.2"]}
    assert data["settings"]["group:Paris"]["ldap"]["servers"][0]["host"] == "ldap1"
    first_dns = commits(cli, lab)[1]
    old = cli(lab, "replay", str(copy), "--at", first_dns["commit"][:10], "--machine", "lab1",
              "--json")
    assert old["settings"]["cluster"]["dns"] == {"servers": ["10.0.0.1"]}
    assert old["effective"]["dns"] == {"servers": ["10.0.0.1"]} and old["machine"] == "lab1"
    assert "group:Paris" not in old["settings"]
    same = cli(lab, "replay", str(copy), "--until", first_dns["time"], "--verify", "--json")
    assert same["state_digest"] == old["state_digest"] and same["verified"]
    assert digest(copy) == before
    assert sorted(p.name for p in copy.parent.glob("copy.db*")) == ["copy.db"]


def test_replay_reads_the_wal_of_a_copy_taken_by_hand(cli: Cli, lab: Path) -> None:
    db = lab / "evstore.db"
    holder = sqlite3.connect(db)  # keeps the -wal from being checkpointed away
    holder.execute("SELECT COUNT(*) FROM events").fetchone()
    cli(lab, "set", "ntp", 'servers=["ntp.example"]', "--mode", "cluster")
    cli(lab, "commit")
    assert (lab / "evstore.db-wal").stat().st_size > 0
    grab = cli.tmp / "grab"
    grab.mkdir()
    shutil.copyfile(db, grab / "evstore.db")
    shutil.copyfile(lab / "evstore.db-wal", grab / "evstore.db-wal")
    holder.close()
    data = cli(lab, "replay", str(grab / "evstore.db"), "--json")
    assert data["settings"]["cluster"]["ntp"] == {"servers": ["ntp.example"]}
    assert sorted(p.name for p in grab.iterdir()) == ["evstore.db", "evstore.db-wal"]


def test_replay_needs_no_home_and_refuses_junk(cli: Cli, tmp_path: Path, lab: Path) -> None:
    copy = copy_db(lab, tmp_path / "c.db")
    res = cli.runner.invoke(__import__("evstore_cli.app").app.app, ["replay", str(copy), "--json"],
                            env={"EVSTORE_HOME": "", "EVSTORE_PASSPHRASE": ""})
    assert res.exit_code == 0, res.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    res = cli(lab, "replay", str(junk), code=2)
    assert "not a readable evstore database" in res.stderr
    cli(lab, "replay", str(tmp_path / "missing.db"), code=2)
    cli(lab, "replay", str(copy), "--at", "ffffff", code=2)


# --------------------------------------------------------------------------- verify


def test_verify_passes_a_sound_log_and_fails_a_tampered_one(cli: Cli, lab: Path) -> None:
    report = cli(lab, "verify", "--json")
    assert report["ok"] is True and report["problems"] == [] and report["events"] >= 6
    copy = copy_db(lab, cli.tmp / "tampered.db")
    conn = sqlite3.connect(copy)
    conn.execute("UPDATE events SET user = 'mallory' WHERE seq = 4")
    conn.commit()
    conn.close()
    res = cli(lab, "verify", str(copy), "--json", code=1)
    assert '"altered"' in res.stdout and '"ok": false' in res.stdout
    res = cli(lab, "verify", str(copy), code=1)
    assert "altered" in res.stdout
    res = cli(lab, "replay", str(copy), "--verify", code=1)
    assert "does not verify" in res.stderr


# --------------------------------------------------------------------------- revert and rollback


def test_revert_stages_the_inverse_of_one_commit(cli: Cli, lab: Path) -> None:
    cli(lab, "set", "ntp", 'servers=["ntp1"]', "--mode", "cluster")
    cli(lab, "commit", "-m", "later, unrelated")
    bob = cli(lab, "audit", "--user", "bob", "--json")[0]["commit"]
    data = cli(lab, "revert", bob[:12], "--json")
    assert data["commit"] == bob
    assert {(s["section"], s["mode"], s["op"]) for s in data["staged"]} == {
        ("dns", "cluster", "change"), ("timezone", "cluster", "change"),
        ("ldap", "group:Paris", "delete")}
    assert {c["section"] for c in cli(lab, "changes", "--json")["changes"]} == {
        "dns", "timezone", "ldap"}
    cli(lab, "commit", "-m", "revert bob")
    assert cli(lab, "show", "dns", "--mode", "cluster", "--json")["settings"] == {
        "servers": ["10.0.0.1"]}
    assert cli(lab, "show", "timezone", "--mode", "cluster", "--json")["settings"]["zone"] == "UTC"
    assert not cli(lab, "show", "ldap", "--mode", "group:Paris", "--json")["defined"]
    assert cli(lab, "show", "ntp", "--mode", "cluster", "--json")["settings"] == {
        "servers": ["ntp1"]}
    assert cli(lab, "revert", bob, "--json")["staged"] == []  # nothing left to undo
    create = cli(lab, "audit", "--kind", "cluster.create", "--json")[0]["commit"]
    assert "not a commit of settings" in cli(lab, "revert", create, code=2).stderr


def test_rollback_brings_settings_back_to_a_time(cli: Cli, lab: Path) -> None:
    at = commits(cli, lab)[1]["time"]  # just after "dns A"
    then = cli(lab, "replay", str(lab / "evstore.db"), "--until", at, "--json")
    cli(lab, "set", "ntp", 'servers=["ntp1"]', "--mode", "cluster")
    cli(lab, "commit")
    data = cli(lab, "rollback", "--to", at, "--json")
    assert {s["section"] for s in data["staged"]} == {"dns", "timezone", "ldap", "ntp"}
    preview = cli(lab, "commit", "--dry-run", "--json")
    assert preview["machines"][0]["hostname"] == "lab1"
    cli(lab, "commit", "-m", "rollback")
    assert cli(lab, "status", "--json")["state_digest"] == then["state_digest"]
    assert len(cli(lab, "audit", "--section", "dns", "--json")) == 3  # audited like any change
    res = cli(lab, "rollback", "--to", "2000-01-01", code=2)
    assert "before this cluster was created" in res.stderr


def test_revert_and_rollback_need_the_passphrase(cli: Cli, lab: Path) -> None:
    bob = cli(lab, "audit", "--user", "bob", "--json")[0]["commit"]
    cli(lab, "revert", bob, code=2, env={"EVSTORE_PASSPHRASE": "wrong"})
    cli(lab, "rollback", "--to", "-1m", code=2, env={"EVSTORE_PASSPHRASE": "wrong"})
    assert cli(lab, "changes", "--json")["changes"] == []


# --------------------------------------------------------------------------- saveconfig, loadconfig


def test_saveconfig_then_loadconfig_restores_the_cluster(cli: Cli, lab: Path) -> None:
    saved = cli.tmp / "saved.xml"
    cli(lab, "saveconfig", str(saved))
    assert (saved.stat().st_mode & 0o777) == 0o600
    text = saved.read_text()
    assert 'standalone="false"' in text and '<group name="Paris">' in text
    digest_saved = cli(lab, "status", "--json")["state_digest"]
    cli(lab, "set", "dns", 'servers=["192.0.2.9"]', "--mode", "cluster")
    cli(lab, "override", "ntp", "--defaults", "--mode", "group:Paris")
    cli(lab, "commit")
    data = cli(lab, "loadconfig", str(saved), "--cluster", "--yes", "--json")
    assert Path(data["backup"]).is_file() and Path(data["backup"]).parent == lab / "backups"
    assert {(s["section"], s["mode"]) for s in data["staged"]} == {
        ("dns", "cluster"), ("ntp", "group:Paris")}
    cli(lab, "commit", "-m", "load")
    assert cli(lab, "status", "--json")["state_digest"] == digest_saved
    assert cli(lab, "audit", "--json")[-1]["summary"].endswith("(load)")


def _other_cluster(cli: Cli) -> Path:
    """A second home, old1 in cluster Old with group Rome, saved to a file."""
    old = cli.init("old1", "--serial", "S9")
    cli(old, "clusterconfig", "create", "Old")
    cli(old, "clusterconfig", "addgroup", "Rome")
    cli(old, "set", "timezone", "zone=Europe/Rome", "--mode", "group:Rome")
    cli(old, "set", "listeners", 'listeners=[{"name":"In","interface":"Data9","port":25}]',
        "--mode", "cluster")
    cli(old, "set", "interfaces",
        'interfaces=[{"name":"Data9","address":"10.9.9.9","netmask":"255.255.255.0"}]',
        "--mode", "machine:old1")
    cli(old, "commit")
    file = cli.tmp / "old.xml"
    cli(old, "saveconfig", str(file))
    return file


def test_loadconfig_maps_groups_and_copies_machines_only_when_asked(cli: Cli, lab: Path) -> None:
    file = _other_cluster(cli)
    res = cli(lab, "loadconfig", str(file), "--cluster", code=2)
    assert "Rome" in res.stderr and "--group-map" in res.stderr
    assert cli(lab, "changes", "--json")["changes"] == []  # a refused load stages nothing
    data = cli(lab, "loadconfig", str(file), "--cluster", "--group-map", "Rome=Paris", "--json")
    assert ("timezone", "group:Paris") in {(s["section"], s["mode"]) for s in data["staged"]}
    assert not any(s["mode"].startswith("machine:") for s in data["staged"])  # Don't Copy
    assert data["missing_interfaces"] == [{"hostname": "lab1", "interfaces": ["Data9"]}]
    cli(lab, "clearchanges")
    data = cli(lab, "loadconfig", str(file), "--cluster", "--group-map", "Rome=Paris",
               "--copy-machine", "old1=lab1", "--json")
    assert ("interfaces", "machine:lab1") in {(s["section"], s["mode"]) for s in data["staged"]}
    assert data["missing_interfaces"] == []
    cli(lab, "commit")
    iface = cli(lab, "show", "interfaces", "--mode", "machine:lab1", "--json")["settings"]
    assert iface["interfaces"][0]["name"] == "Data9"
    assert cli(lab, "show", "hostname", "--mode", "machine:lab1", "--json")["settings"] == {
        "hostname": "lab1"}


def test_loadconfig_one_machine_from_a_cluster_file(cli: Cli, lab: Path) -> None:
    file = _other_cluster(cli)
    data = cli(lab, "loadconfig", str(file), "--machine", "lab1", "--from-machine", "old1",
               "--json")
    assert [(s["section"], s["mode"]) for s in data["staged"]] == [("interfaces", "machine:lab1")]
    res = cli(lab, "loadconfig", str(file), "--machine", "lab1", "--from-machine", "nobody", code=2)
    assert "old1" in res.stderr


def test_loadconfig_refuses_standalone_files_bad_files_and_unsafe_xml(cli: Cli, lab: Path) -> None:
    solo = cli.init("solo")
    solo_file = cli.tmp / "solo.xml"
    cli(solo, "saveconfig", str(solo_file))
    assert 'standalone="true"' in solo_file.read_text()
    res = cli(lab, "loadconfig", str(solo_file), "--cluster", code=2)
    assert "standalone" in res.stderr
    good = cli.tmp / "good.xml"
    cli(lab, "saveconfig", str(good))
    bad = cli.tmp / "bad.xml"
    bad.write_text(good.read_text().replace('{"servers":["10.0.0.2"]}', '{"servers":[1.5]}'))
    res = cli(lab, "loadconfig", str(bad), "--cluster", code=2)
    assert "dns" in res.stderr and "nothing was loaded" in res.stderr
    bombs = {
        "laughs": '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
                  '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                  '<evstore-config format="1" standalone="false">&b;</evstore-config>',
        "xxe": '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               '<evstore-config format="1" standalone="false">&x;</evstore-config>',
        "junk": "<evstore-config",
    }
    for name, body in bombs.items():
        path = cli.tmp / f"{name}.xml"
        path.write_text(body)
        res = cli(lab, "loadconfig", str(path), "--cluster", code=2)
        assert "nothing was loaded" in res.stderr, name
    assert cli(lab, "changes", "--json")["changes"] == []
    assert not (lab / "backups").exists()  # refused before the backup, before any change


def test_loadconfig_on_a_standalone_machine(cli: Cli) -> None:
    solo = cli.init("solo")
    cli(solo, "set", "dns", 'servers=["9.9.9.9"]')
    cli(solo, "commit")
    file = cli.tmp / "solo.xml"
    cli(solo, "saveconfig", str(file))
    cli(solo, "set", "dns", 'servers=["8.8.8.8"]')
    cli(solo, "commit")
    cli(solo, "loadconfig", str(file), "--cluster", code=2)
    data = cli(solo, "loadconfig", str(file), "--machine", "solo", "--json")
    assert [(s["section"], s["op"]) for s in data["staged"]] == [("dns", "change")]
    cli(solo, "commit")
    assert cli(solo, "show", "dns", "--json")["settings"] == {"servers": ["9.9.9.9"]}
