"""Cluster administration as the seed has it (issue 17): a guest's own passphrase, joining's
cluster-only port question, connstatus, and a machine's own access (the "secondary box")."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.ops.node import open_node
from tests.cli.conftest import PASS, Cli
from tests.cli.test_cluster_menu import _command, _env, _free_port, _wait_for_line


@contextmanager
def serving(home: Path) -> Iterator[subprocess.Popen[str]]:
    """``evstore run`` on ``home`` until the block ends (stopped by its PID)."""
    proc = subprocess.Popen([*_command(), "--home", str(home), "run"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        _wait_for_line(proc, "serving ")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _last_commit(home: Path) -> dict:  # type: ignore[type-arg]
    with open_node(home) as node:
        ev = [e for e in node.log.iter_all() if e.kind == "config.commit"][-1]
        return {"user": ev.user, "changes": ev.payload["changes"]}


def test_a_guest_changes_its_own_passphrase(cli: Cli) -> None:
    home = cli.init("m1")
    cli(home, "clusterconfig", "create", "c")
    guest_pass = cli.tmp / "guest.txt"
    guest_pass.write_text("guest pass phrase\n")
    new_pass = cli.tmp / "guest-new.txt"
    new_pass.write_text("guest new pass phrase\n")
    cli(home, "userconfig", "new", "gus", "--role", "guest", "--new-passphrase-file",
        str(guest_pass))
    cli(home, "commit")
    as_guest = {"EVSTORE_PASSPHRASE": "guest pass phrase"}
    cli(home, "passwd", "--user", "gus", "--new-passphrase-file", str(new_pass), env=as_guest)
    cli(home, "commit", "--user", "gus", env=as_guest)
    done = _last_commit(home)
    assert done["user"] == "gus"
    [change] = done["changes"]
    assert (change["section"], change["mode"], change["op"]) == ("users", "cluster", "patch")
    assert list(change["set"]) == ["users/gus"] and not change.get("unset")
    entry = change["set"]["users/gus"]
    assert (entry["name"], entry["role"]) == ("gus", "guest")
    # the new passphrase works, the old one no longer does; nobody else changed
    cli(home, "changes", "--user", "gus", env={"EVSTORE_PASSPHRASE": "guest new pass phrase"})
    with open_node(home) as node:
        node.authenticate("gus", "guest new pass phrase")
        node.authenticate("admin", PASS)
    # a guest still may not change another user's passphrase, nor anything else
    res = cli(home, "passwd", "admin", "--user", "gus", "--new-passphrase-file", str(new_pass),
              env={"EVSTORE_PASSPHRASE": "guest new pass phrase"}, code=2)
    assert "guest" in res.stderr


def test_join_enables_this_machines_cluster_only_port_when_asked(cli: Cli) -> None:
    member = cli.init("m1", "--listen", f"127.0.0.1:{_free_port()}")
    cli(member, "clusterconfig", "create", "west")
    fp = cli(member, "clusterconfig", "fingerprint", "--json")["fingerprint"]
    address = cli(member, "status", "--json")["listen"]
    j1 = cli.init("j1", "--listen", f"127.0.0.1:{_free_port()}")
    j2 = cli.init("j2", "--listen", f"127.0.0.1:{_free_port()}")
    j3 = cli.init("j3", "--listen", f"127.0.0.1:{_free_port()}")
    ccs = f"127.0.0.1:{_free_port()}"
    join = ("clusterconfig", "join", address, "--fingerprint", fp, "--yes", "--json")
    with serving(member):
        cli(j1, *join, "--enable-ccs", ccs)
        cli(j2, *join, "--enable-ccs")
        cli(j3, *join)  # no terminal, no flag: the default, no
        res = cli(j3, *join, "--no-enable-ccs", "10.0.0.1:1",
                  code=2)
        assert "--enable-ccs" in res.stderr
    detail = cli(member, "clusterconfig", "listdetail", "--json")
    ports = {m["hostname"]: m["ccs"] for g in detail["groups"] for m in g["machines"]}
    assert ports["j1"] == ccs and ports["j2"] == "127.0.0.1:2222" and ports["j3"] is None
    assert cli(j1, "ccsconfig", "--json")["ccs"] == ccs


def test_connstatus_shows_name_resolution_and_time_in_state(cli: Cli) -> None:
    from evstore.ops import cluster, membership

    a = cli.init("a", "--listen", "localhost:2401")
    b = cli.init("b", "--listen", "localhost:2402")
    cli(a, "clusterconfig", "create", "names")
    with open_node(a) as na, open_node(b) as nb:
        membership.admit(na, "admin", membership.join_request(nb), passphrase=PASS)
        membership.take_up(nb, "admin", membership.member_events(na))
        assert cluster.connstatus(na)[0]["hostname"] == "b"
    cli(a, "clusterconfig", "disconnect", "b", code=1)  # b is not served: told later
    doc = cli(a, "clusterconfig", "connstatus", "--json", code=0)
    [link] = doc["links"]
    assert link["resolution"]["resolves"] and link["state"] == "disconnected"
    assert isinstance(link["for_seconds"], int) and link["since"].endswith("Z")
    text = cli(a, "clusterconfig", "connstatus", env={"COLUMNS": "250"}).stdout
    assert "resolves to" in text and "disconnected" in text and "since" in text


def test_a_secondary_box_serves_no_web_pages(cli: Cli) -> None:
    home = cli.init("box", "--listen", f"127.0.0.1:{_free_port()}")
    assert cli(home, "show", "access", "--effective", "--machine", "box", "--json")[
        "settings"] == {"admin": True, "gui": True}
    cli(home, "set", "access", "gui=false")
    cli(home, "commit")
    res = cli(home, "gui", "--listen", "127.0.0.1:0", code=1)
    assert "access.gui" in res.stderr and "evstore set access gui=true" in res.stderr
    res = cli(home, "run", "--gui", f"127.0.0.1:{_free_port()}", code=1)
    assert "access.gui" in res.stderr


def test_a_removed_machine_prints_a_fresh_key_for_its_next_join(cli: Cli) -> None:
    home = cli.init("m1")
    cli(home, "clusterconfig", "create", "c")
    before = cli(home, "clusterconfig", "prepjoin", "print", "--json")["key"]
    assert cli(home, "clusterconfig", "prepjoin", "print", "--json")["key"] == before
    old_fp = cli(home, "clusterconfig", "fingerprint", "--json")["fingerprint"]
    cli(home, "clusterconfig", "removemachine", "m1")
    res = cli(home, "clusterconfig", "prepjoin", "print")
    assert "fresh host key" in res.stderr
    after = cli(home, "clusterconfig", "prepjoin", "print", "--json")["key"]
    assert after != before  # and it stays that one
    assert cli(home, "clusterconfig", "prepjoin", "print", "--json")["key"] == after
    assert list(home.glob("host.key.replaced-*"))
    status = cli(home, "status", "--json")
    assert status["cluster"] is None and status["fingerprint"] != old_fp
    cli(home, "clusterconfig", "create", "again")  # a standalone machine like any other
    assert cli(home, "verify", "--json")["ok"]
