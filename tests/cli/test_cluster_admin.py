"""Cluster administration as the seed has it (issue 17): a guest's own passphrase, joining's
cluster-only port question, connstatus, and a machine's own access (the "secondary box")."""

from __future__ import annotations

from pathlib import Path

from evstore.ops.node import open_node
from tests.cli.conftest import PASS, Cli


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
