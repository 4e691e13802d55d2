"""The seed's questions on a terminal (issue 17, items 6, 8 and 9); flags keep scripts quiet.

The CLI asks only where ``output.interactive()`` says a person is at a terminal; these tests
drive that one helper and type the answers through the runner's input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import Any as Cli
from unittest import mock

import pytest
from typer.testing import CliRunner

from evstore_cli import output
from evstore_cli.app import app
from tests.cli.test_cluster_menu import Terminal
from tests.scenarios import superseded_time_zone

PASS = "correct horse battery"


def typed(home: Path, answers: str, *args: str, tty: bool = True) -> Any:
    """Run a command as a person at a terminal typing ``answers`` (``tty``: False, a script)."""
    with mock.patch.object(output, "interactive", lambda: tty):
        return CliRunner().invoke(app, ["--home", str(home), *args], input=answers,
                                  env={"EVSTORE_PASSPHRASE": PASS}, catch_exceptions=False)


def _cluster(cli: Cli) -> Path:
    lab: Path = cli.init("lab1")
    cli(lab, "clusterconfig", "create", "Lab")
    cli(lab, "clusterconfig", "addgroup", "Paris")
    cli(lab, "clustermode", "machine", "lab1")
    return lab


def _mode(cli: Cli, lab: Path) -> str:
    return str(cli(lab, "clustermode", "--json")["mode"])


# ---------------------------------------------------------------- 6: bare clustermode


def test_bare_clustermode_offers_the_switch(cli: Cli) -> None:
    lab = _cluster(cli)
    res = typed(lab, "3\n", "clustermode")
    assert res.exit_code == 0, res.output
    assert "1. cluster" in res.stdout and "3. group:Paris" in res.stdout
    assert _mode(cli, lab) == "group:Paris"
    res = typed(lab, "\n", "clustermode")  # Enter keeps the mode
    assert res.exit_code == 0 and _mode(cli, lab) == "group:Paris"


def test_bare_clustermode_without_a_terminal_only_shows(cli: Cli) -> None:
    lab = _cluster(cli)
    res = typed(lab, "1\n", "clustermode", tty=False)
    assert res.exit_code == 0 and "1. cluster" not in res.stdout
    assert _mode(cli, lab) == "machine:lab1"


# ---------------------------------------------------------------- 8: cluster-mode commands


@pytest.mark.parametrize("args", [["clustercheck"], ["userconfig", "list"]])
def test_cluster_mode_commands_offer_the_switch(cli: Cli, args: list[str]) -> None:
    lab = _cluster(cli)
    res = typed(lab, "n\n", *args)
    assert 'Switch to "cluster" mode?' in res.stdout, res.output
    assert _mode(cli, lab) == "machine:lab1"
    res = typed(lab, "y\n", *args)
    assert res.exit_code == 0, res.output
    assert _mode(cli, lab) == "cluster"


def test_bare_clusterconfig_offers_the_switch_first(cli: Cli) -> None:
    lab = _cluster(cli)
    res = typed(lab, "y\n", "clusterconfig")  # then end of input leaves the menus
    assert 'Switch to "cluster" mode?' in res.stdout.split("\n1.")[0], res.output
    assert _mode(cli, lab) == "cluster"


# ---------------------------------------------------------------- 9: conflicts on a terminal


def _conflict(cli: Cli) -> Path:
    """admin stages dns and ntp; bob then commits a different dns."""
    lab = _cluster(cli)
    cli(lab, "userconfig", "new", "bob", "--role", "operator", "--new-passphrase-file",
        str(cli.passfile))
    cli(lab, "commit")
    cli(lab, "set", "dns", 'servers=["10.0.0.1"]', "--mode", "cluster")
    cli(lab, "set", "ntp", 'servers=["ntp1"]', "--mode", "cluster")
    cli(lab, "set", "dns", 'servers=["10.0.0.2"]', "--mode", "cluster", "--user", "bob")
    cli(lab, "commit", "--user", "bob")
    return lab


def test_a_conflict_asks_whether_to_discard(cli: Cli) -> None:
    lab = _conflict(cli)
    res = typed(lab, "n\n", "commit")
    assert res.exit_code == 1 and "discard" in res.stdout.lower()
    assert len(cli(lab, "changes", "--json")["changes"]) == 2  # still staged for review
    res = typed(lab, "y\n", "commit")
    assert res.exit_code == 0, res.output
    assert cli(lab, "show", "dns", "--mode", "cluster", "--json")["settings"]["servers"] == [
        "10.0.0.2"]
    assert cli(lab, "show", "ntp", "--mode", "cluster", "--json")["settings"]["servers"] == [
        "ntp1"]


def test_a_conflict_without_a_terminal_is_refused_as_before(cli: Cli) -> None:
    lab = _conflict(cli)
    res = cli(lab, "commit", code=1)
    assert "--discard" in res.stderr


def _superseded(cli: Cli, tmp_path: Path) -> Path:
    """lab2 joins by hand and is unreachable afterwards; both set the time zone at cluster
    level without seeing each other, then exchange events: one change is superseded."""
    lab = _cluster(cli)
    cli(lab, "clustermode", "cluster")
    assert len(superseded_time_zone(lab, tmp_path / "lab2", PASS)) == 1
    return lab


def _check(cli: Cli, lab: Path) -> Any:
    """clustercheck --json (exit 1: lab2 is unreachable, so never consistent here)."""
    return json.loads(cli(lab, "clustercheck", "--json", code=1).stdout)


def test_clustercheck_offers_a_numbered_choice(cli: Cli, tmp_path: Path) -> None:
    lab = _superseded(cli, tmp_path)
    before = cli(lab, "show", "timezone", "--mode", "cluster", "--json")["settings"]["zone"]
    res = typed(lab, "3\n", "clustercheck")  # ignore
    assert "1. Force lab1's version" in res.stdout and "2. Force lab2's version" in res.stdout
    assert "3. Ignore" in res.stdout, res.output
    assert _check(cli, lab)["superseded"] == []
    assert cli(lab, "show", "timezone", "--mode", "cluster", "--json")["settings"]["zone"] == before


def test_clustercheck_choice_forces_the_other_version(cli: Cli,
                                                      tmp_path: Path) -> None:
    lab = _superseded(cli, tmp_path)
    row = _check(cli, lab)["superseded"][0]
    other = "2" if row["loser"]["machine"] == "lab2" else "1"
    res = typed(lab, other + "\n", "clustercheck")
    assert "Force" in res.stdout, res.output
    zone = cli(lab, "show", "timezone", "--mode", "cluster", "--json")["settings"]["zone"]
    assert zone == row["loser"]["value"]
    assert _check(cli, lab)["superseded"] == []


@pytest.fixture
def ptys() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        t.stop()


def test_bare_clustermode_on_a_real_terminal(cli: Cli, ptys: list[Terminal]) -> None:
    """The same question through a pseudo-terminal (the program sees a real tty)."""
    lab = _cluster(cli)
    t = Terminal("--home", str(lab), "clustermode")
    ptys.append(t)
    t.answer("[]> ", "1")
    t.expect("(Cluster Lab)> mode cluster")
    assert t.exit_code() == 0
    assert _mode(cli, lab) == "cluster"
