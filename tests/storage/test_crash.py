"""kill -9 never loses an acknowledged event and never leaves a partial one.

Several writer processes (crash_writer.py, one origin each) append to ONE database file at the
same time and print each seq only after ``append`` returned. The test SIGKILLs them at seeded
random moments, some during start-up (opening, migrating a new file), most while appending,
restarts each at once, and finally checks the file: every printed seq is there, each origin's
seqs run 1..N, every hash link holds, every event re-verifies (signature and derived columns),
nothing is left pending, and SQLite's own integrity check passes.
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nacl.signing
import pytest

import evstore
import evstore_migrations
from evstore.storage.connect import open_db
from evstore.storage.log import EventLog

SEED = 20260101
WRITERS = 3
KILLS = 150
EARLY = 0.2  # share of kills aimed at start-up rather than at appends
WRITER = Path(__file__).with_name("crash_writer.py")
DEADLINE_S = 120  # the whole loop; a hung writer fails the test instead of hanging it


@dataclass
class Lane:
    """One writer identity and the process currently writing for it."""

    name: str
    err: Path
    proc: subprocess.Popen[bytes] | None = None
    buf: bytes = b""
    kill_at: float | None = None
    printed: list[int] = field(default_factory=list)
    kills: int = 0

    def origin(self) -> str:
        seed = hashlib.sha256(f"crash/{self.name}".encode()).digest()
        return nacl.signing.SigningKey(seed).verify_key.encode().hex()


def _env() -> dict[str, str]:
    """The writer imports evstore the way this process did, installed or not."""
    roots = [str(Path(m.__file__ or "").parents[1]) for m in (evstore, evstore_migrations)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*roots, env.get("PYTHONPATH", "")])
    return env


def _spawn(lane: Lane, db: Path, rnd: random.Random, env: dict[str, str]) -> None:
    with lane.err.open("ab") as err:
        lane.proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(db), lane.name],
            stdout=subprocess.PIPE, stderr=err, env=env,
        )
    lane.buf = b""
    early = rnd.random() < EARLY
    lane.kill_at = time.monotonic() + rnd.uniform(0, 0.15) if early else None


def _take_lines(lane: Lane, data: bytes, rnd: random.Random) -> None:
    lane.buf += data
    *lines, lane.buf = lane.buf.split(b"\n")
    for line in lines:
        if line == b"ready":
            if lane.kill_at is None:
                lane.kill_at = time.monotonic() + rnd.uniform(0, 0.08)
        else:
            lane.printed.append(int(line))


def _fail_if_exited(lane: Lane) -> None:
    assert lane.proc is not None
    rc = lane.proc.wait()
    raise AssertionError(
        f"writer {lane.name} exited by itself (code {rc}):\n{lane.err.read_text()[-3000:]}"
    )


def _kill(lane: Lane, rnd: random.Random) -> None:
    """SIGKILL our own child, then keep every line it printed before dying."""
    assert lane.proc is not None and lane.proc.stdout is not None
    lane.proc.send_signal(signal.SIGKILL)
    rc = lane.proc.wait()
    _take_lines(lane, lane.proc.stdout.read(), rnd)
    lane.proc.stdout.close()
    if rc != -signal.SIGKILL:
        _fail_if_exited(lane)
    lane.proc, lane.kill_at = None, None
    lane.kills += 1


def _step(lanes: list[Lane], rnd: random.Random) -> None:
    """Wait for output until the next kill is due, then carry out the due kills."""
    running = {lane.proc.stdout.fileno(): lane for lane in lanes
               if lane.proc is not None and lane.proc.stdout is not None}
    due = [lane.kill_at for lane in lanes if lane.kill_at is not None]
    timeout = max(0.0, min([0.05, *(t - time.monotonic() for t in due)]))
    readable, _, _ = select.select(list(running), [], [], timeout)
    for fd in readable:
        data = os.read(fd, 65536)
        if not data:
            _fail_if_exited(running[fd])
        _take_lines(running[fd], data, rnd)
    now = time.monotonic()
    for lane in lanes:
        if lane.proc is not None and lane.kill_at is not None and now >= lane.kill_at:
            _kill(lane, rnd)


def _check_origin(log: EventLog, lane: Lane) -> int:
    events = log.read_range(lane.origin(), 1, 1 << 62, verify=True)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(events) + 1)), f"{lane.name}: gap in {seqs}"
    assert max(lane.printed, default=0) <= len(events), f"{lane.name}: acknowledged seq lost"
    assert events[0].prev is None and events[0].kind == "node.init"
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev == before.id, f"{lane.name}: broken link at seq {after.seq}"
        assert after.clock > before.clock
    assert log.version_vector()[lane.origin()] == len(events)
    assert log.first_seq(lane.origin()) == 1
    return len(events)


def _check_file(db: Path, lanes: list[Lane]) -> int:
    conn = open_db(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        log = EventLog(conn)
        total = sum(_check_origin(log, lane) for lane in lanes)
        assert log.count() == total == len(list(log.iter_all(verify=True)))
        assert log.pending_count() == 0 and log.held() == [] and log.forks() == []
        assert log.hlc_hwm() >= max(e.clock for e in log.iter_all())
        return total
    finally:
        conn.close()


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    rnd = random.Random(SEED)
    db = tmp_path / "crash.db"
    lanes = [Lane(f"writer-{i}", tmp_path / f"writer-{i}.err") for i in range(WRITERS)]
    env = _env()
    started = time.monotonic()
    try:
        while sum(lane.kills for lane in lanes) < KILLS:
            assert time.monotonic() - started < DEADLINE_S, "crash loop took too long"
            for lane in lanes:
                if lane.proc is None:
                    _spawn(lane, db, rnd, env)
            _step(lanes, rnd)
    finally:
        for lane in lanes:
            if lane.proc is not None:
                _kill(lane, rnd)
    total = _check_file(db, lanes)
    acked = sum(len(lane.printed) for lane in lanes)
    print(
        f"\ncrash test: seed {SEED}, {WRITERS} writers, {sum(lane.kills for lane in lanes)} "
        f"SIGKILLs, {acked} acknowledged appends, {total} events in the log, "
        f"{time.monotonic() - started:.1f} s"
    )
    assert acked > KILLS  # most runs got to append before they were killed
