"""Issue 5: audit queries on a 1,000,000-event log. Target: a typical filtered query < 200 ms.

    python -m bench.bench_audit [--events N] [--runs R]     # this module alone
    python -m bench --only audit [--quick]                  # with the others' machinery

The database is made by ``open_db`` (the real schema, every migration) and then filled by
inserting synthetic rows directly, which takes seconds instead of the hours that signing and
applying a million events through the log would: N ``events`` rows (unique ids, 20 origins
with their seq chains, clocks spread over 90 days; the bytes are placeholders, not signed:
the audit query never reads them), about 1.3 audit rows per event (a commit changes 1 to 3
sections; 2% of events are structure events), the structure registers that name 20 machines
and 5 groups, and ``meta.audit_pos`` at the last event, as ``evstore audit`` leaves it. The
indexes of m0004 are dropped for the bulk insert and created again, as SQLite builds an index
faster from sorted data.

Each query is the whole ``evstore audit`` path below the CLI (``storage.audit.run``: catch-up
check, names, filters, the indexed query, and shaping every row as JSON-ready dicts), timed
warm (after one discarded run), median of R runs. The row count of each is reported, since
turning rows into dicts costs about 3 µs each: a query that returns 100,000 rows is slow
however good its index, which is why ``--limit`` exists.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Result, log, median, workdir
from evstore import aio
from evstore.core import clock
from evstore.storage import audit
from evstore.storage.connect import open_db

TITLE = "Audit queries on a large log (issue 5)"
TARGET_MS = 200.0
DAY = 86_400_000
T_END = 1_798_761_600_000  # 2027-01-01T00:00:00Z: "now" for relative times
SPAN = 90 * DAY
HOSTS = [f"mail{i:02d}" for i in range(1, 21)]
GROUPS = ["Paris", "Rome", "Tokyo", "Austin", "Sydney"]
USERS = ["admin"] * 6 + ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
SECTIONS = ["dns", "ntp", "ldap", "listeners", "textresources", "timezone", "smtproutes",
            "destconfig", "bounceprofiles", "unsubscribe", "users", "ssh"]
STRUCTURE = ["group.add", "machine.setgroup", "group.rename", "cluster.setname"]


def _hex(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


KEYS = [_hex("bench-audit-key", h) for h in HOSTS]
GIDS = ["g" + _hex("bench-audit-group", g)[:16] for g in GROUPS]
MODES = (["cluster"] * 6 + [f"group:{g}" for g in GIDS] * 1
         + [f"machine:{k}" for k in KEYS[:4]])


# --------------------------------------------------------------------------- building the db


def _names_rows() -> list[tuple[Any, ...]]:
    rows = []
    for key, host in zip(KEYS, HOSTS, strict=True):
        for fld, value in (("hostname", host), ("serial", host.upper()), ("key", key)):
            rows.append((f"machine:{key}", "@structure", fld, "e", 0, key, 1, 1, f'"{value}"',
                         None, "admin", 0))
    for gid, name in zip(GIDS, GROUPS, strict=True):
        rows.append((f"group:{gid}", "@structure", "name", "e", 0, KEYS[0], 1, 1, f'"{name}"',
                     None, "admin", 0))
    return rows


def _event_rows(n: int, rng: random.Random) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    events, rows = [], []
    seqs = [0] * len(KEYS)
    for i in range(n):
        o = rng.randrange(len(KEYS))
        seqs[o] += 1
        t = T_END - SPAN + (i * SPAN) // n
        clk = clock.pack(t, 0)
        event_id = _hex("e", i)
        user = rng.choice(USERS)
        kind = rng.choice(STRUCTURE) if rng.random() < 0.02 else "config.commit"
        events.append((event_id, KEYS[o], seqs[o], None, clk, t, user, kind, b"{}", b"\0" * 64,
                       t))
        if kind == "config.commit":
            for idx, section in enumerate(rng.sample(SECTIONS, rng.choice([1, 1, 1, 2, 3]))):
                rows.append((event_id, idx, t, clk, KEYS[o], user, kind, section,
                             rng.choice(MODES), "patch: set servers"))
        else:
            rows.append((event_id, 0, t, clk, KEYS[o], user, kind, None, rng.choice(MODES),
                         kind))
    return events, rows


def build(path: Path, n: int, seed: int = 5) -> int:
    """Make a database with ``n`` synthetic events and their audit rows; returns audit rows."""
    open_db(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit' "
        "AND sql IS NOT NULL").fetchall()
    conn.execute("BEGIN")
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    events, rows = _event_rows(n, random.Random(seed))
    conn.executemany("INSERT INTO events (id, origin, seq, prev, clock, wall, user, kind, raw, "
                     "sig, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", events)
    conn.executemany(audit.INSERT_SQL.format(table="audit"), rows)
    conn.executemany("INSERT INTO reg_winners VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", _names_rows())
    conn.execute("UPDATE meta SET value = (SELECT MAX(rowid) FROM events) WHERE key = 'audit_pos'")
    for _, sql in indexes:
        conn.execute(sql)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return len(rows)


# --------------------------------------------------------------------------- the queries


QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("--user bob --since -1d", {"user": "bob", "since": "-1d"}),
    ("--section ldap --since -7d", {"section": "ldap", "since": "-7d"}),
    ("--mode group:Paris --since -2d", {"mode": "group:Paris", "since": "-2d"}),
    ("--origin mail07 --since -3d", {"origin": "mail07", "since": "-3d"}),
    ("--since T --until T+1h", {"since": "2026-11-15T10:00:00Z",
                                "until": "2026-11-15T11:00:00Z"}),
    ("--user carol --section dns", {"user": "carol", "section": "dns"}),
    ("--kind group", {"kind": "group"}),
    ("--limit 100 (newest, no filter)", {"limit": 100}),
    ("--user alice --limit 50", {"user": "alice", "limit": 50}),
]
WIDE = ("--user bob (whole history, about 6% of rows)", {"user": "bob"})


def _timed(fn: Callable[[], list[Any]], runs: int) -> tuple[list[float], int]:
    fn()  # warm: page cache and SQLite's schema
    times, count = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        count = len(fn())
        times.append((time.perf_counter() - t0) * 1000)
    return times, count


def measure(path: Path, runs: int) -> list[Result]:
    conn = open_db(path)
    out = []
    try:
        for label, filters in [*QUERIES, WIDE]:
            times, count = _timed(lambda f=filters: audit.run(conn, T_END, **f), runs)
            target = f"< {TARGET_MS:.0f} ms" if (label, filters) != WIDE else "none (report)"
            passed = median(times) < TARGET_MS if (label, filters) != WIDE else None
            out.append(Result(f"audit {label}", median(times), "ms", times, target=target,
                              passed=passed, note=f"{count:,} rows"))
        label, filters = QUERIES[0]
        times, count = _timed(lambda: asyncio.run(aio.audit(path, now_ms=T_END, **filters)), runs)
        out.append(Result(f"asyncio audit {label}", median(times), "ms", times,
                          target=f"< {TARGET_MS:.0f} ms", passed=median(times) < TARGET_MS,
                          note=f"{count:,} rows (evstore.aio.audit, a new aiosqlite connection per call)"))
    finally:
        conn.close()
    return out


def run(quick: bool, events: int | None = None, runs: int | None = None) -> list[Result]:
    n = events or (50_000 if quick else 1_000_000)
    reps = runs or (3 if quick else 7)
    with workdir("audit") as d:
        path = d / "evstore.db"
        t0 = time.perf_counter()
        rows = build(path, n)
        log(f"built {n:,} events, {rows:,} audit rows in {time.perf_counter() - t0:.1f} s "
            f"({path.stat().st_size / 1e6:.0f} MB)")
        return measure(path, reps)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bench_audit", description=TITLE)
    p.add_argument("--events", type=int, default=1_000_000, help="events in the log")
    p.add_argument("--runs", type=int, default=7, help="timed runs per query (median)")
    args = p.parse_args()
    for r in run(False, args.events, args.runs):
        print(f"{r.name:58} median {r.value:8.1f} ms  {r.verdict:6}  {r.note}")


if __name__ == "__main__":
    main()
