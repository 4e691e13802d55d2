"""``evstore render``: real homes, the real ``evstore`` command in its own process.

Atomic replacement (a reader looping over FILE never sees a partial or empty file while it is
rendered again many times), writing only on change, template errors (exit 2, naming the line,
FILE untouched), an unwritable --out (exit 1, the old file stays), --check, --file-mode, and
--watch with --exec following commits.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evstore.ops import render as ops
from evstore.ops.node import init_home, open_node
from tests.consume.consume_helpers import until
from tests.net.cluster_helpers import commit_now

PASS = "render passphrase"
EVSTORE = [sys.executable, "-m", "evstore_cli.app"]
TEMPLATE = """# made by evstore on {{ machine }} ({{ cluster or "standalone" }})
{% for s in settings.ntp.servers %}server {{ s }} iburst
{% endfor %}"""


class Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = code, stdout, stderr


def evstore(home: Path, *args: str, code: int | None = 0) -> Any:
    """The ``evstore`` command, in this process (typer's runner)."""
    from evstore_cli.app import app

    res = CliRunner().invoke(app, ["--home", str(home), *args], catch_exceptions=False)
    if code is not None:
        assert res.exit_code == code, (args, res.exit_code, res.stdout, res.stderr)
    return Result(res.exit_code, res.stdout, res.stderr)


def commit(home: Path, section: str, value: dict[str, Any]) -> None:
    with open_node(home) as node:
        commit_now(node, section, value, mode="machine:m1")


def set_ntp(home: Path, *servers: str) -> None:
    commit(home, "ntp", {"servers": list(servers)})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "m"
    init_home(h, hostname="m1", passphrase=PASS, listen="127.0.0.1:2299")
    set_ntp(h, "a.example")
    return h


def template(tmp_path: Path, text: str = TEMPLATE, name: str = "ntp.conf.j2") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def wait_for(what: str, pred: Callable[[], bool], timeout: float = 20.0) -> None:
    until(pred, timeout, what)


def test_render_writes_the_file_then_only_on_change(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "ntp.conf"
    tpl = template(tmp_path)
    evstore(home, "render", str(tpl), "--out", str(out))
    assert out.read_text() == "# made by evstore on m1 (standalone)\nserver a.example iburst\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    before = out.stat()
    evstore(home, "render", str(tpl), "--out", str(out))  # a write would be a rename:
    after = out.stat()  # another inode
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    set_ntp(home, "b.example")
    evstore(home, "render", str(tpl), "--out", str(out), "--file-mode", "0640")
    assert "server b.example" in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert out.stat().st_ino != before.st_ino
    assert [p.name for p in tmp_path.iterdir() if "evstore-tmp" in p.name] == []


def test_check_prints_and_writes_nothing(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "ntp.conf"
    done = evstore(home, "render", str(template(tmp_path)), "--out", str(out), "--check")
    assert "server a.example iburst" in done.stdout
    assert not out.exists()


def test_json_reports_what_was_written(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "ntp.conf"
    tpl = str(template(tmp_path))
    first = json.loads(evstore(home, "render", tpl, "--out", str(out), "--json").stdout)
    assert first["out"] == str(out) and first["changed"] is True and first["cursor"]
    assert first["bytes"] == len(out.read_bytes())
    again = json.loads(evstore(home, "render", tpl, "--out", str(out), "--json").stdout)
    assert again["changed"] is False
    checked = json.loads(evstore(home, "render", tpl, "--check", "--json").stdout)
    assert checked["text"] == out.read_text() and checked["out"] is None


@pytest.mark.parametrize(("text", "line", "word"), [
    ("line one\n{{ settings.ntp.servers }}\n{{ settings.ntp.no_such_key }}\n", 3, "no_such_key"),
    ("{{ machine }}\n\n{{ not_a_name }}\n", 3, "not_a_name"),
    ("{{ settings.no_such_section.x }}\n", 1, "no_such_section"),
    ("ok\n{% for x in %}\n", 2, ""),
])
def test_a_template_error_exits_2_naming_the_line_and_leaves_the_file(
        home: Path, tmp_path: Path, text: str, line: int, word: str) -> None:
    out = tmp_path / "ntp.conf"
    out.write_text("the old file\n")
    before = out.stat()
    tpl = template(tmp_path, text, "bad.j2")
    done = evstore(home, "render", str(tpl), "--out", str(out), code=2)
    assert f"bad.j2:{line}" in done.stderr and word in done.stderr
    assert done.stderr.count("\n") == 1
    assert out.read_text() == "the old file\n"
    assert out.stat().st_ino == before.st_ino
    evstore(home, "render", str(tpl), "--check", code=2)


def test_an_unwritable_out_exits_1_and_the_old_file_stays(home: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes anywhere: a directory in the way instead
        target = tmp_path / "isadir"
        target.mkdir()
        done = evstore(home, "render", str(template(tmp_path)), "--out", str(target), code=1)
        assert "cannot write" in done.stderr
        missing = tmp_path / "no" / "such" / "dir" / "f"
        evstore(home, "render", str(template(tmp_path)), "--out", str(missing), code=1)
        return
    locked = tmp_path / "locked"
    locked.mkdir()
    out = locked / "ntp.conf"
    out.write_text("the old file\n")
    locked.chmod(0o555)
    try:
        done = evstore(home, "render", str(template(tmp_path)), "--out", str(out), code=1)
        assert "cannot write" in done.stderr
        assert out.read_text() == "the old file\n"
    finally:
        locked.chmod(0o755)


def test_bad_file_mode_is_bad_input(home: Path, tmp_path: Path) -> None:
    evstore(home, "render", str(template(tmp_path)), "--out", str(tmp_path / "o"),
            "--file-mode", "rw-r--r--", code=2)


def test_write_if_changed_is_atomic_for_a_reader(tmp_path: Path) -> None:
    """A reader process loops over FILE while it is replaced many times: it never sees an
    empty or partial file, only one of the complete versions."""
    out = tmp_path / "f.conf"
    versions = [f"v{i:03d}\n" + ("x" * (2000 + 37 * i)) + "\nend\n" for i in range(200)]
    ops.write_if_changed(out, versions[0])
    reader = subprocess.Popen([sys.executable, "-c", READER, str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        for v in versions[1:]:
            assert ops.write_if_changed(out, v)
    finally:
        reader.send_signal(signal.SIGTERM)
        stdout, _ = reader.communicate(timeout=20)
    reads, bad = (int(x) for x in stdout.split())
    assert bad == 0
    assert reads > 0


READER = """
import signal, sys
path = sys.argv[1]
reads = bad = 0
stop = False
def end(*a):
    global stop
    stop = True
signal.signal(signal.SIGTERM, end)
while not stop:
    with open(path) as f:
        text = f.read()
    reads += 1
    if not (text.startswith("v") and text.endswith("\\nend\\n")):
        bad += 1
print(reads, bad)
"""


def test_rendered_again_and_again_a_reader_sees_whole_files(home: Path, tmp_path: Path) -> None:
    """The command itself, many times, with a reader looping over its output."""
    out = tmp_path / "ntp.conf"
    tpl = template(tmp_path, "begin\n{{ settings.ntp.servers | join(',') }}\n" + "y" * 5000
                   + "\nend\n")
    evstore(home, "render", str(tpl), "--out", str(out))
    reader = subprocess.Popen([sys.executable, "-c", READER.replace('"v"', '"begin"'),
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        for i in range(6):
            set_ntp(home, f"s{i}.example")
            evstore(home, "render", str(tpl), "--out", str(out))
            assert f"s{i}.example" in out.read_text()
    finally:
        reader.send_signal(signal.SIGTERM)
        stdout, _ = reader.communicate(timeout=20)
    reads, bad = (int(x) for x in stdout.split())
    assert bad == 0 and reads > 0


def test_watch_renders_after_each_commit_and_execs(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "ntp.conf"
    ran = tmp_path / "ran.log"
    log = (tmp_path / "watch.log").open("w")
    proc = subprocess.Popen(
        [*EVSTORE, "--home", str(home), "render", str(template(tmp_path)), "--out", str(out),
         "--watch", "--exec",
         f"echo \"$EVSTORE_OUT $(grep -o '[a-z]*[.]example' \"$EVSTORE_OUT\")\" >> {ran}; exit 3"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        wait_for("the first render", lambda: out.exists() and "a.example" in out.read_text())
        wait_for("the first exec", lambda: ran.exists() and ran.read_text().count("\n") == 1)
        set_ntp(home, "c.example")
        wait_for("the render after a commit", lambda: "c.example" in out.read_text())
        wait_for("the exec after it", lambda: ran.read_text().count("\n") == 2)
        assert ran.read_text().splitlines() == [f"{out} a.example", f"{out} c.example"]
        assert proc.poll() is None  # a failing --exec is logged; the watch goes on
        commit(home, "dns", {"servers": ["9.9.9.9"]})  # a change the file does not use
        set_ntp(home, "d.example")
        wait_for("the render after the second commit", lambda: "d.example" in out.read_text())
        set_ntp(home, "e.example")  # a marker: an exec for the dns change would come before
        wait_for("the marker's exec", lambda: "e.example" in ran.read_text())
        # the dns change wrote nothing and ran nothing
        assert [x.split()[1] for x in ran.read_text().splitlines()] == [
            "a.example", "c.example", "d.example", "e.example"]
    finally:
        proc.send_signal(signal.SIGTERM)  # systemctl stop
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "watch.log").read_text()
    assert "exited with status 3" in text
    assert proc.returncode == 0, text
    assert [p.name for p in tmp_path.iterdir() if "evstore-tmp" in p.name] == []


async def test_on_a_cluster_a_file_rendered_on_c_follows_commits_on_a(tmp_path: Path) -> None:
    """Three nodes; ``render --watch --exec`` on machine C; a reader process loops over the
    file while commits on machine A change it again and again: it only ever sees whole files,
    and the file ends with the last commit's value."""
    import trio

    from tests.net import cluster_helpers as ch

    async with ch.running_cluster(tmp_path) as (a, _b, c):
        await ch.commit(a, "dns", {"servers": ["10.0.0.0"]})
        tpl = template(tmp_path, "begin {{ machine }}\n{% for s in settings.dns.servers %}"
                       "nameserver {{ s }}\n{% endfor %}" + "# padding\n" * 400 + "end\n",
                       "resolv.j2")
        out = tmp_path / "resolv.conf"
        ran = tmp_path / "ran.log"
        log = (tmp_path / "render.log").open("w")
        proc = subprocess.Popen(
            [*EVSTORE, "--home", str(c.home), "render", str(tpl), "--out", str(out), "--watch",
             "--exec", f"echo x >> {ran}"], stdout=log, stderr=subprocess.STDOUT)
        reader: subprocess.Popen[str] | None = None
        try:
            await ch.wait_until("C's first render", lambda: out.exists()
                                and "10.0.0.0" in out.read_text(), 30)
            reader = subprocess.Popen(
                [sys.executable, "-c", READER.replace('"v"', '"begin c"'), str(out)],
                stdout=subprocess.PIPE, text=True)
            for i in range(1, 9):
                await ch.commit(a, "dns", {"servers": [f"10.0.0.{i}"]})
                await ch.wait_until(f"commit {i} on C's file",
                                    lambda i=i: f"nameserver 10.0.0.{i}\n" in out.read_text(), 30)
            assert proc.poll() is None
            assert 2 <= ran.read_text().count("x") <= 9  # once per write that changed the file
        finally:
            if reader is not None:
                reader.send_signal(signal.SIGTERM)
                stdout, _ = await trio.to_thread.run_sync(lambda: reader.communicate(timeout=20))
            proc.send_signal(signal.SIGINT)
            await trio.to_thread.run_sync(proc.wait, 10)
            log.close()
        reads, bad = (int(x) for x in stdout.split())
        assert bad == 0 and reads > 0
        assert out.read_text().startswith("begin c\nnameserver 10.0.0.8\n")
        where = template(tmp_path, "{{ machine }}|{{ group }}|{{ cluster }}\n", "where.j2")
        shown = await trio.to_thread.run_sync(
            lambda: evstore(c.home, "render", str(where), "--check", "--machine", "a"))
        machine, group, cluster = shown.stdout.strip().split("|")
        assert (machine, cluster) == ("a", "testcluster") and group not in ("", "None")
