"""``evstore get`` and ``evstore watch`` as real processes on a real home."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.consume.consume_helpers import Child, commit, env, make_home, run, until


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path, "alpha")


def test_get_prints_a_section_a_key_and_a_bare_string(home: Path) -> None:
    commit(home, "dns", 'servers=["10.0.0.1"]')
    done = run(home, "get", "dns")
    assert done.returncode == 0 and json.loads(done.stdout) == {"servers": ["10.0.0.1"]}
    assert run(home, "get", "dns", "servers").stdout.strip().startswith("[")
    assert run(home, "get", "hostname", "hostname").stdout == "alpha\n"
    assert run(home, "get", "hostname", "hostname", "--json").stdout == '"alpha"\n'
    assert json.loads(run(home, "get", "--machine", "alpha", "dns", "--json").stdout)


@pytest.mark.parametrize(("args", "nearest"), [
    (("get", "dsn"), "'dns'"),
    (("get", "dns", "srvers"), "'servers'"),
    (("get", "dns", "--machine", "alpah"), "'alpha'"),
    (("watch", "dns", "ntpp"), "'ntp'"),
    (("watch", "--from", "0000000000-1"), "not issued by this home"),
])
def test_bad_input_exits_2_naming_the_nearest(home: Path, args: tuple[str, ...],
                                              nearest: str) -> None:
    done = run(home, *args)
    assert done.returncode == 2, done
    assert done.stderr.startswith("error: ") and nearest in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_cursor_past_the_newest_exits_2(home: Path) -> None:
    with Child(home, "watch", "dns", "--json") as w:
        line = json.loads(w.out.wait_for(lambda ls: len(ls) >= 1)[0])
        w.stop()
    tag, _, pos = line["cursor"].rpartition("-")
    done = run(home, "watch", "--from", f"{tag}-{int(pos) + 100}")
    assert done.returncode == 2 and "ahead of this home" in done.stderr


def test_help_and_unusual_lines_go_to_typer(home: Path) -> None:
    done = run(home, "get", "--help")
    assert done.returncode == 0 and "SECTION" in done.stdout.upper()
    done = run(home, "get", "dns", "--bogus")
    assert done.returncode == 2


def test_get_imports_neither_trio_typer_the_web_stack_nor_the_network(home: Path) -> None:
    probe = (
        "import sys\n"
        "from evstore_cli.app import main\n"
        "try:\n"
        f"    main(['--home', {str(home)!r}, 'get', 'dns'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env(), timeout=60, check=True)
    loaded = set(done.stderr.split())
    assert json.loads(done.stdout) == {"servers": []}
    for banned in ("trio", "typer", "click", "rich", "starlette", "hypercorn", "jinja2",
                   "aiosqlite", "nacl", "evstore.net", "evstore.web", "evstore.ops",
                   "evstore.core.state", "evstore.storage.views"):
        assert not {m for m in loaded if m == banned or m.startswith(banned + ".")}, banned


def test_watch_prints_a_commit_made_by_another_evstore_command(home: Path) -> None:
    with Child(home, "watch", "dns") as w:
        w.out.wait_for(lambda ls: len(ls) >= 1, what="the current settings")
        for args in (("set", "dns", 'servers=["10.7.7.7"]'), ("commit", "-m", "by the cli")):
            done = run(home, *args)
            assert done.returncode == 0, done
        lines = w.out.wait_for(lambda ls: any("10.7.7.7" in x for x in ls), what="the change")
        assert w.stop() == 0  # SIGTERM: a clean end
    first, last = lines[0], lines[-1]
    assert " dns now " in first and " dns changed " in last and "alpha" in last
    assert last.split()[0].count("-") == 1  # the line starts with its cursor


def test_watch_once_and_sigint(home: Path) -> None:
    with Child(home, "watch", "dns", "--once", "--json") as w:
        w.out.wait_for(lambda ls: len(ls) >= 1)
        commit(home, "dns", 'servers=["once"]')
        assert w.proc.wait(20) == 0
        lines = [json.loads(x) for x in w.out.wait_for(lambda ls: len(ls) >= 2)]
    assert [x["initial"] for x in lines] == [True, False]
    assert {"section", "machine", "source", "settings", "cursor", "time"} <= set(lines[1])
    with Child(home, "watch") as w:
        w.out.wait_for(lambda ls: len(ls) >= 5)
        assert w.stop(signal.SIGINT) == 0


def test_a_watch_killed_and_restarted_from_its_cursor_misses_nothing_and_repeats_nothing(
        home: Path) -> None:
    with Child(home, "watch", "dns", "ntp", "--json") as w:
        w.out.wait_for(lambda ls: len(ls) >= 2)
        commit(home, "dns", 'servers=["before.kill"]')
        lines = w.out.wait_for(lambda ls: len(ls) >= 3)
        w.stop(signal.SIGKILL)
    last = json.loads(lines[-1])
    assert last["settings"] == {"servers": ["before.kill"]}
    commit(home, "ntp", 'servers=["while.down"]')
    commit(home, "timezone", "zone=Europe/Oslo")
    commit(home, "dns", 'servers=["while.down"]')
    with Child(home, "watch", "dns", "ntp", "--json", "--from", last["cursor"]) as w:
        got = [json.loads(x) for x in w.out.wait_for(lambda ls: len(ls) >= 2)]
        commit(home, "dns", 'servers=["after.restart"]')
        got += [json.loads(x) for x in w.out.wait_for(lambda ls: len(ls) >= 3)[2:]]
        # a marker: lines come in order, so anything printed twice stands before it
        commit(home, "ntp", 'servers=["marker"]')
        got += [json.loads(x) for x in w.out.wait_for(
            lambda ls: any("marker" in x for x in ls), what="the marker")[3:]]
    assert [(x["section"], x["settings"]["servers"][0]) for x in got] == [
        ("ntp", "while.down"), ("dns", "while.down"), ("dns", "after.restart"),
        ("ntp", "marker")]
    assert not any(x["initial"] for x in got)


def test_exec_runs_once_per_burst_one_at_a_time_and_survives_a_failure(
        home: Path, tmp_path: Path) -> None:
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    # a run lasts until the test opens the gate (no timing guess), then fails on purpose
    cmd = (f'read line; echo "$EVSTORE_SECTION $EVSTORE_CURSOR start" >> {log}; '
           f'while [ ! -e {gate} ]; do sleep 0.05; done; echo "end $line" >> {log}; exit 7')
    with Child(home, "watch", "dns", "--exec", cmd) as w:
        w.out.wait_for(lambda ls: len(ls) >= 1)
        commit(home, "dns", 'servers=["burst.0"]')
        until(lambda: log.exists() and "start" in log.read_text(), what="the first run")
        for i in range(1, 6):  # while it runs: one more run, with the newest change
            commit(home, "dns", f'servers=["burst.{i}"]')
        w.out.wait_for(lambda ls: any("burst.5" in x for x in ls), what="the burst")
        gate.touch()
        until(lambda: log.read_text().count("end ") >= 2, what="the second run")
        # a marker change after the burst's runs: runs never overlap, so a third run for the
        # burst would stand between the second and the marker's
        commit(home, "dns", 'servers=["marker"]')
        until(lambda: "marker" in log.read_text(), what="the marker's run")
        text = log.read_text()
        assert w.proc.poll() is None  # the failures did not stop the watch
        w.stop()
        errors = w.stderr()
    lines = text.splitlines()
    assert len(lines) == 6, lines  # two runs for the burst, the second after the first ended
    assert lines[0].startswith("dns ") and lines[0].endswith(" start")
    assert lines[1].startswith("end ") and "burst.0" in lines[1]
    assert lines[2].endswith(" start") and lines[3].startswith("end ") and "burst.5" in lines[3]
    assert lines[4].endswith(" start") and lines[5].startswith("end ") and "marker" in lines[5]
    assert errors.count("exited with status 7") == 3


def test_watch_on_a_home_that_changes_under_it_by_sqlite_alone(home: Path) -> None:
    """A writer that does not announce (an old evstore, a manual fix) is still seen."""
    with Child(home, "watch", "dns", "--json") as w:
        w.out.wait_for(lambda ls: len(ls) >= 1)
        subprocess.run([sys.executable, "-c", (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute(\"UPDATE effective SET value='{\\\"servers\\\":[\\\"quiet\\\"]}' "
            "WHERE section='dns'\"); c.commit()"), str(home / "evstore.db")], check=True)
        lines = w.out.wait_for(lambda ls: len(ls) >= 2)
    assert json.loads(lines[1])["settings"] == {"servers": ["quiet"]}


@pytest.mark.parametrize(("argv", "expect"), [
    (["get", "dns"], ("get", None, ["dns"], None)),
    (["--home", "/h", "get", "dns", "servers", "--json"], ("get", "/h", ["dns", "servers"], None)),
    (["get", "--machine=b", "dns", "--home=/h"], ("get", "/h", ["dns"], "b")),
    (["--user", "bob", "--passphrase-file", "/p", "watch"], ("watch", None, [], None)),
    (["watch", "dns", "ntp", "--from", "t-1", "--exec", "x -y", "--once"],
     ("watch", None, ["dns", "ntp"], None)),
])
def test_the_fast_path_reads_plain_lines(argv: list[str],
                                         expect: tuple[object, ...]) -> None:
    from evstore_cli.consume_cmds import parse

    p = parse(argv)
    assert p is not None and (p.command, p.home, p.words, p.machine) == expect


@pytest.mark.parametrize("argv", [
    ["get", "--help"], ["get"], ["get", "a", "b", "c"], ["get", "dns", "--machine"],
    ["get", "--", "dns"], ["get", "dns", "-h"], ["watch", "--bogus"], ["status"], [],
    ["get", "dns", "--once"], ["watch", "--from"],
])
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    from evstore_cli.consume_cmds import parse

    assert parse(argv) is None


def test_get_and_watch_never_print_a_passphrase_hash(home: Path) -> None:
    from evstore_cli import consume_cmds, output

    sample = {"users": [{"name": "a", "passphrase_hash": "$argon2id$x"}], "n": [1, {"x": None}]}
    assert consume_cmds.hide_hashes(sample) == output.hide_hashes(sample)  # one rule
    done = run(home, "get", "users")
    assert done.returncode == 0 and "argon2" not in done.stdout and "(hidden)" in done.stdout
    with Child(home, "watch", "users", "--json") as w:
        line = w.out.wait_for(lambda ls: len(ls) >= 1)[0]
    assert "argon2" not in line and json.loads(line)["section"] == "users"
