"""Issue 4: the cluster network on loopback, with real ``evstore run`` processes.

* **commit-to-applied-everywhere latency** for 3, 10, 20 and 50 nodes (full mesh, pings every
  600 s): ``evstore set`` + ``evstore commit`` on one node (each its own process, as typed),
  then every node's database polled (read-only) until it holds the commit. Latency is counted
  from the commit event's own time stamp to the poll that found it, per node; the figure per
  commit is the slowest node's. p50 and p99 over the commits (p99 of 20-30 commits is about
  their maximum). Each node's own ``received_at`` stamp is reported as a cross-check. The
  set-up time of each cluster is reported too. No target (report).
* **catch-up** of a node that missed 100,000 commits: two nodes join, both stop, the first
  gets 100,000 commits, it serves again, then the second starts; the time from starting the
  second's process until it holds every event, against the raw time of 100,000
  ``VerifyKey.verify`` calls on the same events, measured just before. Target: at most 2x.
  The commits change no setting (see ``netbench_support.empty_commit``): the views' cost of
  commits that do is measured apart (below), because it grows with the log and would swamp
  everything else.
* **views' cost of real commits**: in-process ingest of commits that all edit one field, the
  first and the last batch, to show that the cost per event grows with earlier writes.
* **bytes per anti-entropy round** between two nodes in sync, in-process with two
  ``core.sync.Session`` objects over two copies of one real log: the hello, and one periodic
  round (a ``vv`` each way), for 1,000 and 100,000 events of 3 origins, and for 1 to 30
  origins. Target: independent of the log's size (within 5% for a 100x longer log: only the
  digits of the seq numbers grow).
* **resident memory per node** (VmRSS): an idle 3-node cluster, the same after 10,000 commits
  reached every node, and idle at each cluster size.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nacl.signing

import evstore
from bench import netbench_support as nb
from bench.common import Result, log, median, seconds, workdir
from evstore.core import events
from evstore.core.noise import TAGLEN
from evstore.core.sync import NeedRanges, Session
from evstore.net.gossip import cluster_vector
from evstore.net.transport import MAX_CHUNK
from evstore.ops import cluster as cluster_ops
from evstore.ops import settings
from evstore.ops.node import DB_NAME, Node, init_home, now_ms, open_node
from evstore.storage.connect import open_db
from evstore.storage.log import EventLog
from evstore.storage.transactions import transaction

TITLE = "Cluster network: latency, catch-up, anti-entropy bytes, memory (issue 4)"

CATCHUP_TARGET = 2.0  # catch-up takes at most this many times the raw signature checks
AE_TARGET = 1.05  # a round for a 100x longer log is at most this much bigger
INGEST_BATCH = 500  # what one gossip message carries at most (core.sync.MAX_ITEMS)


def run(quick: bool) -> list[Result]:
    if os.environ.get("EVSTORE_BENCH_NET") == "peers":  # only issue 16's side-by-side figures
        return peers_results(quick)
    if os.environ.get("EVSTORE_BENCH_NET") == "catchup1":  # issue 16, item 5 only
        return bench_catchup(5_000 if quick else 100_000, one_core=True)
    if os.environ.get("EVSTORE_BENCH_NET") == "idle":  # issue 16, item 1 only
        return idle_results(quick)
    out: list[Result] = peers_results(quick)
    out += bench_catchup(5_000 if quick else 100_000, one_core=True)
    for size in nb.sizes(quick):
        out += latency_results(nb.cluster_run(size, quick, nb.plan_for(size, quick)))
    out += memory_results(quick)
    out += bench_catchup(5_000 if quick else 100_000)
    out += bench_views(200 if quick else 1_000, 100 if quick else INGEST_BATCH)
    out += bench_antientropy(5_000 if quick else 100_000)
    return out


# ---------------------------------------------------------------------- idle cost (issue 16)

IDLE_PER_NODE_WINDOW = 30.0  # s; /proc/PID/stat counts in 10 ms ticks


def idle_results(quick: bool) -> list[Result]:
    """Idle CPU per node (utime + stime over 30 s, after 5 s of quiet) at several sizes:
    full mesh at 3, 10, 20 machines and fan-out 4 at 50. Target: a 50-machine cluster under
    0.1 core in all, i.e. 2 ms of CPU a second per node."""
    out = []
    for size, fanout in ((3, None), (10, None)) if quick else ((3, None), (10, None),
                                                                 (20, None), (50, 4)):
        mode = "full mesh" if fanout is None else f"fan-out {fanout}"
        log(f"  idle CPU, {size} machines ({mode})")
        with nb.running_cluster(f"idle{size}", size, fanout=fanout) as cluster:
            time.sleep(5.0)
            per = cluster.cpu_per_node(IDLE_PER_NODE_WINDOW)
            links = [m.db().links_up() for m in cluster.machines]
        ms = [x * 1000 for x in per]
        out.append(Result(
            f"idle CPU per node, {size} machines ({mode})", median(ms), "ms/s", ms,
            target="< 2 ms/s (0.1 core for 50)" if size == 50 else "report",
            passed=(sum(per) < 0.1) if size == 50 else None,
            note=f"all nodes {sum(per):.3f} cores; {sum(links) / len(links):.1f} links a "
            f"node; set-up {cluster.setup.total:.1f} s ({cluster.setup.describe()})"))
    return out


# ---------------------------------------------------------------------- latency and set-up


def latency_results(f: nb.ClusterFigures) -> list[Result]:
    n = f.size
    if f.error or f.setup is None:
        return [Result(f"commit to applied everywhere, {n} nodes", float("nan"), "ms",
                       note=f"FAILED: {f.error}")]
    ms = [c.everywhere * 1000 for c in f.commits]
    stamped = [c.everywhere_stamped * 1000 for c in f.commits]
    per_node = [v * 1000 for c in f.commits for k, v in c.seen.items() if k != "n00"]
    common = (f"{len(ms)} commits; median arrival over every (commit, node) pair "
              f"{median(per_node):.0f} ms; slowest node per commit by the nodes' own "
              f"received_at stamps: p50 {median(stamped):.0f} ms, p99 "
              f"{nb.percentile(stamped, 99):.0f} ms")
    return [
        Result(f"cluster set-up, {n} nodes", f.setup.total, "s", [f.setup.total],
               target="report", note=f.setup.describe()),
        Result(f"commit to applied everywhere, {n} nodes: p50", median(ms), "ms", ms,
               target="report", note=common),
        Result(f"commit to applied everywhere, {n} nodes: p99", nb.percentile(ms, 99), "ms",
               ms, target="report"),
        Result(f"CPU use of the idle {n}-node cluster, all nodes together", f.idle_cpu,
               "cores", [f.idle_cpu], target="report",
               note=f"over {nb.IDLE_WINDOW:.0f} s after set-up, of the machine's "
               f"{os.cpu_count()} cores; periodic anti-entropy every 10 s per link, pings "
               f"every {nb.PING_INTERVAL:.0f} s"),
    ]


# ---------------------------------------------------------------------- memory


def memory_results(quick: bool) -> list[Result]:
    out: list[Result] = []
    for size in nb.sizes(quick):
        f = nb.cluster_run(size, quick, nb.plan_for(size, quick))
        if f.error or not f.rss_idle_kib:
            continue
        idle = [k / 1024 for k in f.rss_idle_kib]
        out.append(Result(f"RSS per node, idle {size}-node cluster", median(idle), "MiB", idle,
                          target="report", note=f"max {max(idle):.1f} MiB; full mesh, "
                          f"{size - 1} links per node"))
        if f.rss_after_kib:
            after = [k / 1024 for k in f.rss_after_kib]
            out.append(Result(
                f"RSS per node, {size}-node cluster after {f.events_written:,} events",
                median(after), "MiB", after, target="report",
                note=f"max {max(after):.1f} MiB; the events were written on one node while it "
                f"served and reached the others in {f.events_spread_s:.1f} s"))
    return out


# ---------------------------------------------------------------------- catch-up


def raw_verify(home: Path, origin: str, after_seq: int) -> tuple[float, int]:
    """Seconds to verify every event of ``origin`` past ``after_seq``, and how many."""
    conn = sqlite3.connect(f"file:{home / DB_NAME}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT raw, sig FROM events WHERE origin=? AND seq>? ORDER BY seq",
                            (origin, after_seq)).fetchall()
    finally:
        conn.close()
    vk = nacl.signing.VerifyKey(bytes.fromhex(origin))
    msgs = [(events.SIGNING_CONTEXT + bytes(raw), bytes(sig)) for raw, sig in rows]

    def verify() -> None:
        for msg, sig in msgs:
            vk.verify(msg, sig)

    return seconds(verify), len(msgs)


def copy_home(src: Path, dst: Path) -> None:
    """A copy of a stopped node's home; the database through SQLite's backup API."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(f"{DB_NAME}*", "run.pid"))
    s, d = sqlite3.connect(src / DB_NAME), sqlite3.connect(dst / DB_NAME)
    try:
        s.backup(d)
    finally:
        s.close()
        d.close()


def ingest_alone(copy: Path, source: Path, origin: str, after_seq: int, count: int) -> float:
    """Microseconds per event of ``EventLog.ingest`` of ``count`` of the events (read from
    ``source``), in-process on ``copy``, a copy of the lagging node made before it caught up:
    the same verification, membership checks and views, without the network."""
    src = sqlite3.connect(f"file:{source / DB_NAME}?mode=ro", uri=True)
    try:
        rows = src.execute("SELECT raw, sig FROM events WHERE origin=? AND seq>? ORDER BY seq "
                           "LIMIT ?", (origin, after_seq, count)).fetchall()
    finally:
        src.close()
    items = [(bytes(r), bytes(s)) for r, s in rows]
    with open_node(copy) as node:
        t0 = time.perf_counter()
        for i in range(0, len(items), INGEST_BATCH):
            part = items[i : i + INGEST_BATCH]
            res = node.log.ingest(part, now_ms=now_ms())
            if len(res.applied) != len(part):
                raise RuntimeError(f"in-process ingest did not apply everything: {res.counts()}")
        return (time.perf_counter() - t0) / len(items) * 1e6


def bench_catchup(count: int, *, one_core: bool = False) -> list[Result]:
    """With ``one_core`` (issue 16): the lagging node runs on core 0 only (``taskset``), the
    sending node and a busy loop share core 1, and the raw verify is one thread, so the
    figure holds whatever the other core does."""
    log(f"catch-up: 2 nodes join and stop; {count:,} commits on the first; the second starts"
        + (" on one core, the other busy" if one_core else ""))
    with workdir("catchup") as root:
        cluster = nb.Cluster(root, 2)
        try:
            cluster.build()
            nb.stop_processes(cluster.machines)
            return _catchup(cluster, root, count, one_core)
        finally:
            cluster.close()


def _busy_core(cpu: int) -> subprocess.Popen[bytes]:
    """A process that keeps core ``cpu`` busy until it is killed (by PID)."""
    return subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", "while True: pass"])


def _catchup(cluster: nb.Cluster, root: Path, count: int, one_core: bool = False
             ) -> list[Result]:
    if one_core and ((os.cpu_count() or 1) < 2 or not nb.have("taskset")):
        log("  skipped: one core against a busy other needs two cores and taskset")
        return []
    a, b = cluster.machines
    origin = a.origin
    before = a.db().head(origin)
    copy_home(b.home, root / "lagging-copy")
    made = seconds(lambda: nb.write_commits(a.home, count, nb.empty_commit))
    log(f"  {count:,} commits made in {made:.1f} s; raw verify of them")
    if one_core:  # the same core, beside the same busy loop, as the lagging node below
        cores = os.sched_getaffinity(0)
        burner = _busy_core(1)
        os.sched_setaffinity(0, {0})
        try:
            cpu0 = time.thread_time()
            t_verify, verified = raw_verify(a.home, origin, before)
            verify_cpu = time.thread_time() - cpu0
        finally:
            os.sched_setaffinity(0, cores)
            burner.kill()
            burner.wait()
    else:
        t_verify, verified = raw_verify(a.home, origin, before)
        verify_cpu = float("nan")
    a.start(nb.PING_INTERVAL, cpus="1" if one_core else None)
    a.wait_serving()
    assert a.proc is not None
    cpu_a = nb.cpu_seconds(a.proc.pid)
    log("  the lagging node starts")
    busy = _busy_core(1) if one_core else None
    try:
        t0 = time.perf_counter()
        b.start(nb.PING_INTERVAL, cpus="0" if one_core else None)
        b.wait_serving()
        t_serving = time.perf_counter() - t0
        target = before + count
        nb.wait_until("the lagging node to catch up", lambda: b.db().head(origin) >= target,
                      3600, 0.05)
        took = time.perf_counter() - t0
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    assert b.proc is not None
    cpu_b = nb.cpu_seconds(b.proc.pid)
    cpu_a = nb.cpu_seconds(a.proc.pid) - cpu_a
    log(f"  caught up in {took:.1f} s; in-process ingest of a part for comparison")
    alone_us = ingest_alone(root / "lagging-copy", a.home, origin, before, min(count, 10_000))
    out = _catchup_results(count, verified, t_verify, took, t_serving, cpu_a, cpu_b, alone_us)
    if one_core:
        for r in out:
            r.name += ", lagging node on one core, the other busy"
        out[-1].note += (f"; CPU time: the lagging node {cpu_b:.1f} s against the raw verify's "
                         f"{verify_cpu:.1f} s = {cpu_b / verify_cpu:.2f}x (on a machine shared "
                         "with other work, the wall-clock ratio also measures how much of its "
                         "core each got)")
    return out


def _catchup_results(count: int, verified: int, t_verify: float, took: float,
                     t_serving: float, cpu_a: float, cpu_b: float,
                     alone_us: float) -> list[Result]:
    ratio = took / t_verify
    return [
        Result(f"raw Ed25519 verify of {verified:,} events (baseline)", t_verify, "s",
               [t_verify], note=f"{t_verify / verified * 1e6:.0f} us per signature; "
               "VerifyKey.verify, key built once"),
        Result(f"catch-up of a node that missed {count:,} commits", took, "s", [took],
               target=f"<= {CATCHUP_TARGET:.0f}x raw verify",
               baseline=f"raw verify {t_verify:.1f} s", ratio=ratio, ratio_unit="x time",
               passed=ratio <= CATCHUP_TARGET,
               note=f"from starting its `evstore run` process ({t_serving:.1f} s until it "
               f"served) until its database held all; {count / took:,.0f} events/s; CPU "
               f"used meanwhile: lagging node {cpu_b:.0f} s (from its start), sending node "
               f"{cpu_a:.0f} s; EventLog.ingest alone (in-process, batches of {INGEST_BATCH}) "
               f"costs {alone_us:.0f} us per event = {alone_us * count / 1e6 / t_verify:.1f}x "
               "the raw verify time; one run"),
    ]


# ---------------------------------------------------------------------- views of real commits


def _presign_one_field(node: Node, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` commits of this node's key, continuing its chain, each editing dns/servers."""
    settings.stage(node, "admin", node.to_internal("cluster"), "dns", {"servers": ["10.255.0.1"]})
    settings.commit(node, "admin", "bench: first")
    _value, base = settings.current(node, "cluster", "dns")
    seq, prev, clock = node.conn.execute(
        "SELECT seq, id, clock FROM events WHERE origin=? ORDER BY seq DESC LIMIT 1",
        (node.origin,)).fetchone()
    wall = now_ms()
    items: list[tuple[bytes, bytes]] = []
    for i in range(count):
        ev = events.create(node.signing_key, seq=seq + 1 + i, prev=prev, clock=clock + 1 + i,
                           wall=wall, user="admin", kind="config.commit",
                           payload=nb.one_field_commit(i, base))
        items.append((ev.raw, ev.sig))
        prev, base = ev.id, ev.order_key
    return items


def _ms_per_event(node: Node, items: list[tuple[bytes, bytes]]) -> float:
    """Milliseconds per event of one ``EventLog.ingest`` call, which must apply them all."""
    t0 = time.perf_counter()
    res = node.log.ingest(items, now_ms=now_ms())
    took = time.perf_counter() - t0
    if len(res.applied) != len(items):
        raise RuntimeError(f"the one-field commits were not all applied: {res.counts()}")
    return took / len(items) * 1000


def bench_views(count: int, batch: int) -> list[Result]:
    log(f"views: in-process ingest of {count} commits that all edit one field, batches of {batch}")
    with workdir("views") as root:
        init_home(root / "v", hostname="v", passphrase=nb.PASS, listen="127.0.0.1:1")
        with open_node(root / "v") as node:
            cluster_ops.create(node, "admin", "bench")
            items = _presign_one_field(node, count)
            per_batch = [_ms_per_event(node, items[i : i + batch])
                         for i in range(0, count, batch)]
            if settings.current(node, "cluster", "dns")[0] is None:
                raise RuntimeError("the one-field commits were not applied")
    first, last = per_batch[0], per_batch[-1]
    return [Result(f"ingest of commits editing one field: events {count - batch + 1}-{count}",
                   last, "ms/event", per_batch, target="report",
                   baseline=f"events 1-{batch}: {first:.1f} ms/event", ratio=last / first,
                   ratio_unit="x time",
                   note="per batch: " + ", ".join(f"{x:.1f}" for x in per_batch) + " ms/event; "
                   "each event's new winner is the greater of the stored winner and its write, "
                   "and only the writes between that winner's base and itself are read back "
                   "(views.writes_between), so the cost does not grow with the edits to one "
                   "field")]


# ---------------------------------------------------------------------- anti-entropy bytes


def make_log(path: Path | str, count: int, origins: int) -> sqlite3.Connection:
    """A log of ``count`` events by ``origins`` keys, taking turns (no views)."""
    conn = open_db(path)
    evlog = EventLog(conn)
    keys = [nacl.signing.SigningKey(f"bench-net-origin-{k:04d}".encode().ljust(32, b"."))
            for k in range(origins)]
    for start in range(0, count, 1000):
        with transaction(conn):
            for i in range(start, min(count, start + 1000)):
                evlog.append(keys[i % origins], user="admin", kind="config.commit",
                             payload=nb.empty_commit(i), now_ms=now_ms())
    return conn


def wire_bytes(message: bytes) -> int:
    """A message's size on the link: frames of a 2-byte length, a record type byte, the
    chunk and the 16-byte Noise tag (TCP/IP headers not counted)."""
    chunks = max(1, -(-len(message) // MAX_CHUNK))
    return len(message) + chunks * (2 + 1 + TAGLEN)


def one_round(conn_a: sqlite3.Connection, conn_b: sqlite3.Connection) -> tuple[int, int, int]:
    """(hello bytes, periodic-round bytes, periodic-round wire bytes) between two in-sync logs."""
    log_a, log_b = EventLog(conn_a), EventLog(conn_b)
    version = evstore.__version__
    sa = Session(node="aa" * 32, version=version, vv=cluster_vector(log_a))
    sb = Session(node="bb" * 32, version=version, vv=cluster_vector(log_b))
    ha, hb = sa.start()[0], sb.start()[0]
    for session, msg in ((sb, ha), (sa, hb)):
        if any(isinstance(x, NeedRanges) for x in session.receive(msg, now_ms())):
            raise RuntimeError("logs not in sync: the hello asked for events")
    msgs: list[bytes] = []
    for session, log_ in ((sa, log_a), (sb, log_b)):
        if session.local_changed(cluster_vector(log_)):  # the shell's push check first
            raise RuntimeError("logs not in sync: the push check found events to send")
        msgs += session.resync()
    for session, msg in ((sb, msgs[0]), (sa, msgs[1])):
        if session.receive(msg, now_ms()):
            raise RuntimeError("logs not in sync: the vv asked for events")
    return len(ha) + len(hb), sum(map(len, msgs)), sum(map(wire_bytes, msgs))


def pair(root: Path, name: str, count: int, origins: int) -> tuple[int, int, int]:
    """Two copies of one log (the second by the backup API): one round between them."""
    a = make_log(root / f"{name}-a.db", count, origins)
    b = sqlite3.connect(root / f"{name}-b.db")
    a.backup(b)
    b.close()
    b = open_db(root / f"{name}-b.db")
    try:
        return one_round(a, b)
    finally:
        a.close()
        b.close()


def bench_antientropy(big: int) -> list[Result]:
    small = 1_000
    log(f"anti-entropy bytes: in-process sessions over logs of {small:,} and {big:,} events")
    with workdir("ae") as root:
        sizes = {n: pair(root, f"e{n}", n, 3) for n in (small, big)}
        by_origins = {k: pair(root, f"o{k}", small, k) for k in (1, 3, 10, 30)}
    h_small, r_small, w_small = sizes[small]
    h_big, r_big, w_big = sizes[big]
    ratio = r_big / r_small
    per_origin = (by_origins[30][1] - by_origins[1][1]) / 29
    out = [
        Result(f"anti-entropy round in sync, {small:,} events, 3 origins", r_small, "bytes",
               [r_small], target="report",
               note=f"a vv message each way; {w_small} bytes framed on the link; hello "
               f"exchange {h_small} bytes"),
        Result(f"anti-entropy round in sync, {big:,} events, 3 origins", r_big, "bytes",
               [r_big], target=f"independent of log size (<= {AE_TARGET:.2f}x)",
               baseline=f"{small:,} events: {r_small} bytes", ratio=ratio, ratio_unit="x",
               passed=ratio <= AE_TARGET,
               note=f"{w_big} bytes framed; hello exchange {h_big} bytes; only the seq "
               "numbers' digits grow with the log"),
    ]
    for k, (hello, rnd, wire) in by_origins.items():
        out.append(Result(f"anti-entropy round in sync, {small:,} events, {k} origin(s)", rnd,
                          "bytes", [rnd], target="report",
                          note=f"{wire} bytes framed; hello exchange {hello} bytes"))
    out[-1].note += f"; about {per_origin:.0f} bytes per origin per round (both directions)"
    return out


# ---------------------------------------------------------------------- beside etcd (issue 16)

LATENCY_P50_TARGET_MS = 5.0
LATENCY_P99_TARGET_MS = 10.0
COST_TARGET = 1.5  # a one-change commit through the library, against the bare append
FROZEN_TARGET_S = 5.0


def peers_results(quick: bool) -> list[Result]:
    """Issue 16: latency and commit cost beside etcd (when installed), a frozen peer."""
    out: list[Result] = []
    with workdir("peers") as root:
        etcd: nb.Etcd | None = None
        skip = ""
        if nb.have("etcd"):
            etcd = nb.Etcd(root / "etcd").__enter__()
        else:
            skip = "etcd is not installed (Debian: etcd-server etcd-client): no etcd figures"
            log(skip)
        try:
            out += _latency_vs_etcd(root, 8 if quick else 40, etcd, skip)
            out += _cost_vs_etcd(root, 3 if quick else 8, 20 if quick else 50, etcd, skip)
        finally:
            if etcd is not None:
                etcd.__exit__(None, None, None)
    out += _frozen(quick)
    for size in (3,) if quick else (10, 30):
        out += scale_vs_serf(size, 5 if quick else 20)
    return out


def scale_vs_serf(size: int, rounds: int, fanout: int | None = None) -> list[Result]:
    """Commit to applied on all ``size`` machines (library commit on the first, every
    database polled), beside a Serf user event to all ``size`` agents (handlers stamping the
    time they ran), one after the other on the same machine."""
    mode = "full mesh" if fanout is None else f"fan-out {fanout}"
    log(f"  {size} machines ({mode}): {rounds} commits; then Serf, {size} agents")
    with workdir(f"scale{size}") as root:
        cluster = nb.Cluster(root, size, fanout=fanout)
        try:
            setup = cluster.build()
            time.sleep(3.0)
            idle = cluster.cpu_rate(nb.IDLE_WINDOW)
            lat = nb.library_commit_latency(cluster, rounds, None, root)
        finally:
            cluster.close()
        serf: list[float] = []
        serf_missing = "Serf not installed"
        if nb.have("serf"):
            try:
                with nb.Serf(root / "serf", size) as agents:
                    serf = [agents.event_to_all(i) * 1000 for i in range(rounds)]
            except (TimeoutError, RuntimeError, OSError, subprocess.SubprocessError) as e:
                serf_missing = f"Serf failed ({e}); evstore's figures stand alone"
                log(f"  {serf_missing}")
    ms = lat.evstore_ms
    out = []
    for p in (50, 99):
        theirs = nb.percentile(serf, p) if serf else float("nan")
        out.append(Result(
            f"commit to applied on all, {size} machines ({mode}): p{p}", nb.percentile(ms, p),
            "ms", ms, target="report" if size != 30 or p != 99 else "<= Serf's p99",
            baseline=f"Serf user event {theirs:.0f} ms" if serf else serf_missing,
            ratio=nb.percentile(ms, p) / theirs if serf else None,
            passed=(nb.percentile(ms, p) <= theirs) if (serf and size == 30 and p == 99)
            else None,
            note="" if p == 99 else f"set-up {setup.total:.1f} s ({setup.describe()}); idle "
            f"CPU of all nodes {idle:.3f} cores; Serf: `serf event -coalesce=false` on agent "
            "0, until every agent's handler had run"))
    return out


def _latency_vs_etcd(root: Path, rounds: int, etcd: nb.Etcd | None, skip: str) -> list[Result]:
    log(f"  commit start to visible on the other two, 3 nodes, {rounds} rounds beside etcd")
    with nb.running_cluster("lat3", 3) as cluster:
        time.sleep(2.0)
        idle = cluster.cpu_rate(nb.IDLE_WINDOW)
        lat = nb.library_commit_latency(cluster, rounds, etcd, root)
    ev, er, ec = lat.evstore_ms, lat.evstore_return_ms, lat.evstore_commit_ms
    floor = 2 * median(lat.raw_ms)
    note = (f"{rounds} rounds, each: a raw durable insert, an evstore commit "
            "(settings.commit_set in-process, announced to `evstore run`), an etcd put on a "
            f"follower; the commit call itself p50 {median(ec):.1f} ms; raw durable insert "
            f"in the same rounds p50 {median(lat.raw_ms):.2f} ms, p99 "
            f"{nb.percentile(lat.raw_ms, 99):.1f} ms: a commit is visible on a peer after two "
            f"durable commits in turn (ours, then the peer's), a floor of about "
            f"{floor:.1f} ms here")
    def vs(mine: list[float], theirs: list[float], p: float) -> tuple[str, float | None]:
        if not theirs:
            return skip, None
        t = nb.percentile(theirs, p)
        return f"etcd {t:.1f} ms", nb.percentile(mine, p) / t
    out = []
    for p, target in ((50, LATENCY_P50_TARGET_MS), (99, LATENCY_P99_TARGET_MS)):
        base, ratio = vs(ev, lat.etcd_ms, p)
        value = nb.percentile(ev, p)
        out.append(Result(f"commit start to visible on the other two, 3 nodes: p{p}", value,
                          "ms", ev, target=f"< {target:.0f} ms", baseline=base, ratio=ratio,
                          passed=value < target, note=note if p == 50 else ""))
    base, ratio = vs(er, lat.etcd_return_ms, 50)
    out.append(Result("commit return to visible on the other two, 3 nodes: p50", median(er),
                      "ms", er, target="report", baseline=base, ratio=ratio))
    out.append(Result("CPU use of the idle 3-node cluster with keepalives", idle, "cores",
                      [idle], target="report", note="keepalive pings every second on each "
                      "quiet link; anti-entropy every 10 s per link"))
    return out


def _cost_vs_etcd(root: Path, rounds: int, per_round: int, etcd: nb.Etcd | None,
                  skip: str) -> list[Result]:
    log(f"  one-change commit cost: {rounds} rounds of {per_round} per contender, in turn")
    c = nb.commit_cost(root, rounds, per_round, etcd)
    per = [lib / bare for lib, bare in zip(c.library, c.bare, strict=True)]
    staged = [st / bare for st, bare in zip(c.staged, c.bare, strict=True)]
    ratio = median(per)
    out = [Result("one-change commit through the library (commit_set), sequential",
                  median(c.library), "ms", c.library, target=f"<= {COST_TARGET}x the bare append",
                  baseline=f"bare EventLog.append {median(c.bare):.2f} ms", ratio=ratio,
                  passed=ratio <= COST_TARGET,
                  note=f"per round, in turn with the bare append, stage+commit (two durable "
                  f"transactions: {median(staged):.2f}x the append), the raw durable insert "
                  f"({median(c.raw):.2f} ms){'' if etcd is None else ' and etcd puts'}")]
    if c.etcd:
        e = [lib / put for lib, put in zip(c.library, c.etcd, strict=True)]
        out.append(Result("the same commit against etcd's sequential put (3 members)",
                          median(c.library), "ms", c.library, target="report",
                          baseline=f"etcd put {median(c.etcd):.2f} ms", ratio=median(e)))
    elif skip:
        out.append(Result("the same commit against etcd's sequential put", float("nan"), "ms",
                          note=skip))
    return out


def _frozen(quick: bool) -> list[Result]:
    log("  a frozen peer (SIGSTOP) on a 3-node cluster, seed ping interval 600 s")
    with nb.running_cluster("frozen", 3) as cluster:
        time.sleep(2.0)
        downs, back = nb.frozen_peer(cluster)
    serf = float("nan")
    if nb.have("serf"):
        with workdir("serf-frozen") as root, nb.Serf(root, 3) as agents:
            serf = agents.frozen()
    return [Result("a frozen peer (SIGSTOP), reported down by every other node", max(downs),
                   "s", downs, target=f"< {FROZEN_TARGET_S:.0f} s",
                   baseline=f"Serf {serf:.1f} s" if serf == serf else "Serf not installed",
                   ratio=max(downs) / serf if serf == serf else None,
                   passed=max(downs) < FROZEN_TARGET_S,
                   note=f"each node's link row (what `status --json` shows) polled every 20 "
                   f"ms; back up {back:.1f} s after SIGCONT; keepalives every 1 s, a link "
                   "silent for 3 s is dropped")]
