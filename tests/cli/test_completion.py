"""Shell completion: typer's --show-completion, and the names completed from the catalog and
the home (sections, modes, machine hostnames), asked as bash asks them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evstore.ops.node import init_home
from evstore_cli import completion

EVSTORE = [sys.executable, "-m", "evstore_cli.app"]


def complete(words: str, env: dict[str, str] | None = None) -> list[str]:
    """What ``evstore`` answers bash for the command line ``words`` (cursor at its end)."""
    parts = words.split(" ")
    done = subprocess.run(
        [*EVSTORE], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **(env or {}), "_EVSTORE_COMPLETE": "complete_bash",
             "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "m"
    init_home(h, hostname="lab1", passphrase="pw for tests", listen="127.0.0.1:2298")
    return h


def test_show_completion_prints_a_script() -> None:
    # typer guesses the shell from the parent processes (a test run under make or CI's sh
    # has none it supports); its own switch makes the shell an argument instead
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    done = subprocess.run([*EVSTORE, "--show-completion", "bash"], capture_output=True,
                          text=True, timeout=60, check=False, env=env)
    assert done.returncode == 0 and "_EVSTORE_COMPLETE" in done.stdout


def test_sections_modes_and_machines_complete(home: Path) -> None:
    assert "ntp" in complete(f"evstore --home {home} show nt")
    assert set(complete(f"evstore --home {home} set ntp --mode ")) >= {"cluster",
                                                                       "machine:lab1"}
    assert complete("evstore render t.j2 --machine l", {"EVSTORE_HOME": str(home)}) == ["lab1"]


def test_callbacks_answer_nothing_rather_than_fail(tmp_path: Path) -> None:
    class Ctx:
        params = {"home": str(tmp_path / "not-a-home")}
        parent = None

    assert completion.machines(Ctx(), "") == []
    assert completion.modes(Ctx(), "") == ["cluster"]
    assert "dns" in completion.sections("d")
