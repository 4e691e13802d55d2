"""The contract's conventions, checked over every command the CLI registers."""

from __future__ import annotations

from typing import Any

import typer.main

from evstore_cli.app import app

READS_WITHOUT_JSON = {"run", "demo", "gui"}
CHANGES = {
    "clustermode", "set", "edit", "override", "delete", "clusterset", "commit", "clearchanges",
    "clear", "passwd", "ccsconfig", "clustercheck", "revert", "rollback", "loadconfig", "init",
    "saveconfig",
}


def _leaves(c: Any, prefix: list[str]) -> list[tuple[str, set[str]]]:
    if hasattr(c, "list_commands"):
        ctx = type(c).context_class(c)
        out = []
        for n in c.list_commands(ctx):
            out += _leaves(c.get_command(ctx, n), [*prefix, n])
        return out
    return [(" ".join(prefix), {o for p in c.params for o in getattr(p, "opts", [])})]


LEAVES = _leaves(typer.main.get_command(app), [])


def test_every_read_takes_json() -> None:
    missing = [n for n, opts in LEAVES if n not in READS_WITHOUT_JSON and "--json" not in opts]
    assert not missing


def test_every_change_takes_yes() -> None:
    changing = [n for n, _ in LEAVES if n in CHANGES or n.startswith("clusterconfig ")
                and n.split()[-1] not in ("fingerprint", "list", "listdetail", "connstatus", "print")]
    missing = [n for n in changing for name, opts in LEAVES if name == n and "--yes" not in opts]
    assert not missing


def test_every_command_acts_on_a_home() -> None:
    homeless = {"replay", "verify", "demo", "sections"}
    missing = [n for n, opts in LEAVES if n not in homeless and "--home" not in opts]
    assert not missing
