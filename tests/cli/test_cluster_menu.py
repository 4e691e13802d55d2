"""A bare ``evstore clusterconfig``: the seed's menus on a real pseudo-terminal, help without one.

Each menu test runs the installed ``evstore`` in a subprocess whose stdin, stdout and stderr
are a pty (so it sees a terminal, as an operator's shell would), answers the questions as
they appear, and waits for each with a deadline; nothing sleeps blind.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evstore_cli.app import app
from tests.cli.conftest import PASS, Cli

EVSTORE = Path(sys.executable).parent / "evstore"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DEADLINE_S = 30.0


def _command() -> list[str]:
    return [str(EVSTORE)] if EVSTORE.exists() else [sys.executable, "-m", "evstore_cli.app"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "EVSTORE_HOME", "EVSTORE_CLUSTER_PASSPHRASE")}
    return {**env, "EVSTORE_PASSPHRASE": PASS, "TERM": "dumb", "COLUMNS": "200", **extra}


class Terminal:
    """``evstore ARGS`` on a pseudo-terminal: wait for text, type lines, wait for the end."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.proc = subprocess.Popen([*_command(), *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env or _env(), start_new_session=True,
                                     close_fds=True)
        os.close(slave)
        self.text = ""  # everything shown so far, without escapes and carriage returns
        self.seen = 0  # where the next expect starts looking
        self.closed = False

    def _read(self, deadline: float) -> bool:
        """Read what is there within the deadline; False once the program has closed it."""
        left = deadline - time.monotonic()
        if left <= 0 or self.closed:
            return not self.closed
        ready, _, _ = select.select([self.master], [], [], left)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every writer of the pty is gone
            data = b""
        if not data:
            self.closed = True
            return False
        self.text += ANSI.sub("", data.decode("utf-8", "replace")).replace("\r", "")
        return True

    def expect(self, text: str, deadline_s: float = DEADLINE_S) -> str:
        """Wait for ``text`` after what earlier calls matched; returns what came before it."""
        deadline = time.monotonic() + deadline_s
        while (at := self.text.find(text, self.seen)) < 0:
            if time.monotonic() >= deadline or not self._read(deadline):
                raise AssertionError(f"did not see {text!r} within {deadline_s} s; the "
                                     f"terminal shows:\n{self.text[self.seen:]}")
        before = self.text[self.seen:at]
        self.seen = at + len(text)
        return before

    def answer(self, prompt: str, line: str) -> str:
        before = self.expect(prompt)
        os.write(self.master, line.encode() + b"\n")
        return before

    def end_of_input(self, prompt: str) -> None:
        self.expect(prompt)
        os.write(self.master, b"\x04")  # Ctrl-D at the start of a line

    def exit_code(self, deadline_s: float = DEADLINE_S) -> int:
        deadline = time.monotonic() + deadline_s
        while self._read(deadline) and time.monotonic() < deadline:
            pass
        try:
            return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        finally:
            os.close(self.master)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Homes with passphrase hashes of evstore's real cost: the menu runs in another process,
    which would refuse the cheap hashes of tests/cli/conftest.py's ``cli`` as weak."""
    return Cli(tmp_path)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        t.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MENU = "Choose the operation you want to perform:"
STANDALONE = "Do you want to join or create a cluster?"


# ---------------------------------------------------------------------- without a terminal


def test_without_a_terminal_a_bare_clusterconfig_prints_its_help(cli: Cli) -> None:
    home = cli.init("lab1")
    res = cli(home, "clusterconfig")
    assert "Usage" in res.stdout and "addgroup" in res.stdout and STANDALONE not in res.stdout
    assert cli(home, "clusterconfig", "--help").exit_code == 0


def test_options_given_to_the_group_count_for_its_subcommands(cli: Cli) -> None:
    home = cli.init("lab1")
    res = cli.runner.invoke(app, ["clusterconfig", "--home", str(home), "list", "--json"],
                            env={"EVSTORE_PASSPHRASE": PASS})
    assert res.exit_code == 0 and '"cluster": null' in res.stdout


# ---------------------------------------------------------------------- on a terminal


def test_menu_creates_a_cluster_adds_a_group_sets_it_and_lists(cli: Cli,
                                                              terminals: list[Terminal]) -> None:
    home = cli.init("solo")
    t = Terminal("--home", str(home), "clusterconfig")
    terminals.append(t)
    t.expect(STANDALONE)
    assert "4. Join an existing cluster over the cluster-only port." in t.expect("[1]> ")
    t.answer("", "2")
    t.answer("[]> ", "americas")
    t.expect("New cluster americas created")
    t.expect("Cluster americas")
    t.expect(MENU)
    t.answer("[]> ", "addgroup")
    t.answer("[]> ", "Paris")  # the group's name
    t.answer("Switch to \"cluster\" mode?", "y")  # asked once, as the subcommands ask it
    t.expect("Group Paris added.")
    t.answer("[]> ", "setgroup")
    assert "1. solo (group Main_Group)" in t.answer("[]> ", "1")
    t.answer("[]> ", "Paris")
    t.expect("solo is now in group Paris.")
    t.answer("[]> ", "list")
    listing = t.expect(MENU)
    assert "cluster = americas" in listing
    assert re.search(r"Group Paris:\n\s+Machine solo \(Serial #: ", listing)
    t.answer("[]> ", "")  # a blank answer leaves
    assert t.exit_code() == 0
    data = cli(home, "clusterconfig", "list", "--json")
    assert data["cluster"] == "americas"
    paris = next(g for g in data["groups"] if g["name"] == "Paris")
    assert [m["hostname"] for m in paris["machines"]] == ["solo"]
    assert "cluster" in cli(home, "clustermode").stdout


def test_menu_keeps_a_machine_standalone(cli: Cli, terminals: list[Terminal]) -> None:
    home = cli.init("solo")
    t = Terminal("--home", str(home), "clusterconfig")
    terminals.append(t)
    t.answer("[1]> ", "")  # the default: 1, stay standalone
    t.expect("This machine stays standalone.")
    assert t.exit_code() == 0
    assert cli(home, "clusterconfig", "list", "--json")["cluster"] is None
    assert cli(home, "ccsconfig", "--json")["ccs"] is None  # the failed join changed nothing


def test_end_of_input_leaves_the_menu_and_errors_keep_it_going(cli: Cli,
                                                               terminals: list[Terminal]) -> None:
    home = cli.init("solo")
    cli(home, "clusterconfig", "create", "c1")
    t = Terminal("--home", str(home), "clusterconfig")
    terminals.append(t)
    t.answer("Switch to \"cluster\" mode?", "n")  # asked first, as for every cluster command
    t.answer("[]> ", "renamegroup")
    t.answer("[]> ", "Main_Group")
    t.answer("[]> ", "bad name with spaces")
    t.expect("error: ")
    t.answer("[]> ", "nosuch")
    t.expect("'NOSUCH' is not an operation of this menu.")
    t.end_of_input("[]> ")
    assert t.exit_code() == 0
    assert [g["name"] for g in cli(home, "clusterconfig", "list", "--json")["groups"]] == [
        "Main_Group"]


def test_menu_join_over_the_admin_port_is_the_join_command(cli: Cli, tmp_path: Path,
                                                           terminals: list[Terminal]) -> None:
    """Option 3 against a member served by a real ``evstore run``: the join checks the
    member's host key and asks before anything changes, then the cluster's menu follows."""
    port = _free_port()
    member = cli.init("m1", "--listen", f"127.0.0.1:{port}")
    cli(member, "clusterconfig", "create", "west")
    fingerprint = cli(member, "clusterconfig", "fingerprint", "--json")["fingerprint"]
    joiner = cli.init("j1", "--listen", f"127.0.0.1:{_free_port()}")
    server = subprocess.Popen([*_command(), "--home", str(member), "run"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=_env())
    try:
        _wait_for_line(server, "serving ")
        t = Terminal("--home", str(joiner), "clusterconfig",
                     env=_env(EVSTORE_CLUSTER_PASSPHRASE=PASS))
        terminals.append(t)
        t.answer("[1]> ", "3")
        t.answer("the cluster-only port", "")  # the seed's CCS question: default no
        t.answer("[]> ", "127.0.0.1")
        t.answer("[2200]> ", str(port))
        t.answer("[N]> ", "")  # not with a pre-shared key: the cluster's admin passphrase
        assert fingerprint in t.answer("Is this a valid key for this host?", "y")
        t.answer("Join?", "y")
        t.expect("Joined cluster west in group Main_Group through m1")
        t.expect("Cluster west")
        t.answer("[]> ", "list")
        listing = t.expect(MENU)
        assert "Machine j1" in listing and "Machine m1" in listing
        t.answer("[]> ", "")
        assert t.exit_code() == 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert list((joiner / "backups").glob("before-join-*.xml"))  # as `clusterconfig join`
    data = cli(joiner, "clusterconfig", "list", "--json")
    assert data["cluster"] == "west"


def test_menu_join_to_an_unreachable_member_says_so_and_goes_on(
    cli: Cli, terminals: list[Terminal]
) -> None:
    home = cli.init("j2")
    t = Terminal("--home", str(home), "clusterconfig", env=_env(EVSTORE_CLUSTER_PASSPHRASE=PASS))
    terminals.append(t)
    t.answer("[1]> ", "4")  # over the cluster-only port: a pre-shared join
    t.answer("the cluster-only port", "y")  # its own: enabled if the join succeeds
    t.answer("[]> ", "127.0.0.1")
    port = _free_port()
    t.answer("[2222]> ", str(port))
    details = t.answer("Would you like to continue?", "y")
    assert "Host: j2" in details and "Serial Number: " in details and "Key: " in details
    shown = t.answer("[1]> ", "1")  # back at the first menu
    assert "cannot reach" in shown and f"127.0.0.1:{port}" in shown
    assert t.exit_code() == 0
    assert cli(home, "clusterconfig", "list", "--json")["cluster"] is None
    assert cli(home, "ccsconfig", "--json")["ccs"] is None  # the failed join changed nothing


def _wait_for_line(proc: subprocess.Popen[str], text: str) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + DEADLINE_S
    while (left := deadline - time.monotonic()) > 0:
        if sel.select(timeout=left):
            line = proc.stdout.readline()
            if not line:
                break
            if text in line:
                return line
    raise AssertionError(f"`evstore run` did not print {text!r} within {DEADLINE_S} s")
