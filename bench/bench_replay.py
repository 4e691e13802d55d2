"""Issue 5: offline replay of a 1,000,000-event log, with and without ``--verify``.

    python -m bench.bench_replay [--events N] [--runs R] [--verify-runs V]
    python -m bench --only replay [--quick]

The log is real: every event is signed by its origin's Ed25519 key and chained, as a member's
database would hold it. One machine inits, creates a cluster, adds a group and admits two
members; the members join; then the three commit in turn (patches of LDAP query entries, DNS,
NTP and time zone at cluster, group and machine modes). Signing is the slow part (about 4,000
events per second per core on the reference machine): the three chains are signed in parallel
processes, each into its own SQLite file, then copied into one database made by ``open_db``
(the real schema) with its ``anchors``, clock and ``node`` rows. Building 1,000,000 events
took 294 s on the reference machine's two (busy) cores; a full run (3 replays, 1 with
``--verify``) about 13 minutes in all, so ``--quick`` uses 20,000 events.

Measured: ``evstore.ops.forensics.replay(DBFILE)`` as ``evstore replay DBFILE --json`` runs it
(read the file whole into memory with the backup API, find the scope, fold every event into
the registers, materialize; no progress bar), and the same with ``verify=True``, which first
checks every event's id, canonical bytes, signature, stored columns and chain. Rates are
events per second of the whole command; medians of the runs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import nacl.signing

from bench.common import Result, log, median, workdir
from evstore.core import clock, events
from evstore.core.events import Event
from evstore.core.modes import group_id_of
from evstore.ops import forensics
from evstore.storage.connect import open_db

TITLE = "Offline replay and verify of a large signed log (issue 5)"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOSTS = ("r1", "r2", "r3")
ZONES = ("UTC", "Europe/Paris", "Asia/Tokyo")
_COLS = "id, origin, seq, prev, clock, wall, user, kind, raw, sig"


def key(i: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(f"bench-replay/{i}".encode()).digest())


def origin(i: int) -> str:
    return key(i).verify_key.encode().hex()


def _sign(k: nacl.signing.SigningKey, seq: int, prev: str | None, t: int, kind: str,
          payload: dict[str, Any], user: str = "admin") -> Event:
    return events.create(k, seq=seq, prev=prev, clock=clock.pack(t), wall=t, user=user,
                         kind=kind, payload=payload)


def _machine(i: int) -> dict[str, Any]:
    return {"hostname": HOSTS[i], "serial": f"BENCH{i}", "listen": f"127.0.0.{i + 1}:2200",
            "version": "bench", "transport_key": "00" * 32}


def genesis() -> list[Event]:
    """Init, create, a group and two admissions by r1; a join by each member."""
    k = key(0)
    out = [_sign(k, 1, None, T0, "node.init", {"machine": _machine(0), "settings": {
        "hostname": {"hostname": "r1"}}})]
    out.append(_sign(k, 2, out[-1].id, T0 + 1, "cluster.create", {
        "name": "bench", "group_name": "Main_Group", "machine": _machine(0),
        "cluster_settings": {"dns": {"servers": ["10.0.0.53"]}, "users": {"users": [
            {"name": n, "role": "admin", "passphrase_hash": "x"}
            for n in ("admin", "alice", "bob")]}},  # the users the commits act as
        "machine_settings": {"hostname": {"hostname": "r1"}}}))
    create = out[-1]
    out.append(_sign(k, 3, create.id, T0 + 2, "group.add", {"name": "Paris"}))
    for i in (1, 2):
        out.append(_sign(k, 3 + i, out[-1].id, T0 + 2 + i, "cluster.admit", {
            "machine_id": origin(i), "key": origin(i), "group": group_id_of(create.id),
            "machine": _machine(i)}))
    for i in (1, 2):
        out.append(_sign(key(i), 1, None, T0 + 5 + i, "cluster.join", {
            "cluster": create.id, "machine": _machine(i),
            "machine_settings": {"hostname": {"hostname": HOSTS[i]}}}))
    return out


def _change(j: int, author: int, gid: str) -> dict[str, Any]:
    mode = ("cluster", f"group:{gid}", f"machine:{origin(author)}")[j % 3]
    pick = j % 4
    if pick == 0:
        q = f"q{j % 64}"
        sets: dict[str, Any] = {f"queries/{q}": {"name": q, "server": "s1", "base": "dc=example",
                                                 "filter": f"(uid={j})"}}
        section = "ldap"
    elif pick == 1:
        section, sets = "dns", {"servers": [f"10.{j % 250}.0.53"]}
    elif pick == 2:
        section, sets = "ntp", {"servers": [f"ntp{j % 9}.example"]}
    else:
        section, sets = "timezone", {"zone": ZONES[j % 3]}
    return {"mode": mode, "section": section, "op": "patch", "base": None, "set": sets,
            "unset": []}


def _sign_chain(author: int, seq: int, prev: str, commits: list[int], gid: str, out: str) -> str:
    """Sign one origin's commits into its own SQLite file (runs in a worker process)."""
    k = key(author)
    conn = sqlite3.connect(out)
    conn.execute(f"CREATE TABLE ev ({_COLS})")
    rows = []
    for j in commits:
        ev = _sign(k, seq, prev, T0 + 10 + j, "config.commit",
                   {"comment": f"bench {j}", "changes": [_change(j, author, gid)]},
                   user=("admin", "alice", "bob")[j % 3])
        rows.append((ev.id, ev.origin, ev.seq, ev.prev, ev.clock, ev.wall, ev.user, ev.kind,
                     ev.raw, ev.sig))
        seq, prev = seq + 1, ev.id
        if len(rows) == 5000:
            conn.executemany(f"INSERT INTO ev VALUES ({','.join('?' * 10)})", rows)
            rows.clear()
    conn.executemany(f"INSERT INTO ev VALUES ({','.join('?' * 10)})", rows)
    conn.commit()
    conn.close()
    return out


def _insert(conn: sqlite3.Connection, evs: list[Event]) -> None:
    conn.executemany(
        f"INSERT INTO events ({_COLS}, received_at) VALUES ({','.join('?' * 11)})",
        [(e.id, e.origin, e.seq, e.prev, e.clock, e.wall, e.user, e.kind, e.raw, e.sig, e.wall)
         for e in evs])


def _finish(conn: sqlite3.Connection) -> None:
    """Anchors, clock and node rows, as a node that applied these events would hold them."""
    conn.execute(
        "INSERT INTO anchors SELECT r.origin, r.lo, f.id, r.hi, l.id FROM (SELECT origin, "
        "MIN(seq) AS lo, MAX(seq) AS hi FROM events GROUP BY origin) AS r "
        "JOIN events AS f ON f.origin = r.origin AND f.seq = r.lo "
        "JOIN events AS l ON l.origin = r.origin AND l.seq = r.hi")
    conn.execute("UPDATE meta SET value = (SELECT MAX(clock) FROM events) WHERE key = 'hlc_hwm'")
    conn.executemany("INSERT INTO node (key, value) VALUES (?, ?)",
                     [("hostname", "r1"), ("serial", "BENCH0"), ("listen", "127.0.0.1:2200")])


def build(path: Path, n: int) -> None:
    """A signed log of ``n`` events in a database made by open_db."""
    first = genesis()
    gid = group_id_of(first[1].id)
    heads = {0: (6, first[4].id), 1: (2, first[5].id), 2: (2, first[6].id)}
    commits: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for j in range(max(0, n - len(first))):
        commits[j % 3].append(j)
    open_db(path).close()
    parts = [str(path.with_name(f"chain{a}.db")) for a in commits]
    with ProcessPoolExecutor(max_workers=min(3, os.cpu_count() or 1)) as pool:
        done = list(pool.map(_sign_chain, list(commits), [heads[a][0] for a in commits],
                             [heads[a][1] for a in commits], list(commits.values()),
                             [gid] * 3, parts))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    _insert(conn, first)
    for part in done:
        conn.execute("ATTACH DATABASE ? AS part", (part,))
        conn.execute(f"INSERT INTO events ({_COLS}, received_at) SELECT {_COLS}, wall FROM part.ev")
        conn.execute("DETACH DATABASE part")
        Path(part).unlink()
    _finish(conn)
    conn.close()


def _rate(path: Path, n: int, verify: bool) -> float:
    t0 = time.perf_counter()
    doc = forensics.replay(path, verify=verify)
    dt = time.perf_counter() - t0
    assert doc["events"] == n - 1 and doc["cluster"] == "bench", doc["events"]  # not its init
    return n / dt


def run(quick: bool, events_n: int | None = None, runs: int | None = None,
        verify_runs: int | None = None) -> list[Result]:
    n = events_n or (20_000 if quick else 1_000_000)
    reps = runs or 3
    vreps = verify_runs or (3 if quick else 1)
    with workdir("replay") as d:
        path = d / "evstore.db"
        t0 = time.perf_counter()
        build(path, n)
        log(f"signed and stored {n:,} events in {time.perf_counter() - t0:.0f} s "
            f"({path.stat().st_size / 1e6:.0f} MB)")
        plain = [_rate(path, n, False) for _ in range(reps)]
        log(f"replay: {', '.join(f'{r:,.0f}' for r in plain)} events/s")
        checked = [_rate(path, n, True) for _ in range(vreps)]
        log(f"replay --verify: {', '.join(f'{r:,.0f}' for r in checked)} events/s")
    return [
        Result(f"replay of {n:,} events", median(plain), "events/s", plain,
               target="none set (report)", note=f"{n / median(plain):.1f} s for the whole log"),
        Result(f"replay --verify of {n:,} events", median(checked), "events/s", checked,
               target="none set (report)",
               note=f"{n / median(checked):.1f} s: every signature, id, column and chain first"),
    ]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bench_replay", description=TITLE)
    p.add_argument("--events", type=int, default=1_000_000, help="events in the log")
    p.add_argument("--runs", type=int, default=3, help="timed replays (median)")
    p.add_argument("--verify-runs", type=int, default=3, help="timed replays with --verify")
    args = p.parse_args()
    for r in run(False, args.events, args.runs, args.verify_runs):
        print(f"{r.name:40} median {r.value:10,.0f} {r.unit}  ({r.note})")


if __name__ == "__main__":
    main()
