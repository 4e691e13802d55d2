"""Real ``evstore run`` clusters on loopback for the network benchmarks (bench_net, bench_check).

Each node is its own ``evstore run`` process with its own home and a free 127.0.0.1 port.
Homes are made in this process (``init_home``, the library call behind ``evstore init``), the
first node creates the cluster, and the others join through the library call behind
``clusterconfig join`` (``client.join``), eight at a time in worker threads, each through a
member picked at random (seeded) among those already serving, and each starts serving as soon
as it has joined (``join="spread"``, the default; ``join="first"``: all through the first
node, four at a time, before any other serves, then every process at once).

The nodes are observed without disturbing them: read-only SQLite connections to their
databases, ``/proc/PID/status`` for memory. Every process started here is stopped by its PID
(SIGTERM, then SIGKILL after a deadline), in a ``finally``, also when a benchmark fails.

One cluster of each size serves several benchmarks (commit latency, idle memory, clustercheck
time); :func:`cluster_run` measures all of them once and keeps the figures for the module that
asks second, so ``python -m bench`` builds each cluster once. Only figures are kept between
modules, never processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import log, workdir
from evstore.net import client
from evstore.ops import cluster as cluster_ops
from evstore.ops.node import DB_NAME, init_home, now_ms, open_node
from evstore.storage.transactions import transaction

PASS = "bench passphrase"
EVSTORE = [sys.executable, "-m", "evstore_cli.app"]
PING_INTERVAL = 600.0  # seconds: keeps pings (and the liveness watchdog) out of the way
JOIN_WORKERS = 4  # joins in flight at once (a member takes four; two cores take little more)
SPREAD_WORKERS = 8  # joins in flight at once when each goes through a random serving member
SERVE_TIMEOUT = 60.0
JOIN_TIMEOUT = 120.0
MESH_TIMEOUT = 600.0
COMMIT_TIMEOUT = 120.0
IDLE_WINDOW = 10.0  # seconds over which an idle cluster's CPU use is measured


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from ``/proc/PID/status`` (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for PID {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(xs: list[float], p: float) -> float:
    """The p-th percentile, linear between closest ranks (p99 of 30 samples is near the max)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """One ``evstore`` command on ``home``, its own process, as an operator runs it."""
    done = subprocess.run([*EVSTORE, "--home", str(home), *args], capture_output=True,
                          env={**os.environ, "EVSTORE_PASSPHRASE": PASS}, timeout=300,
                          check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"evstore {' '.join(args)} failed ({done.returncode}): "
                           f"{done.stderr.decode(errors='replace').strip()[-500:]}")
    return done


# ---------------------------------------------------------------------- reading a node


class Reader:
    """A read-only connection to a node's database (WAL: it never blocks the node)."""

    def __init__(self, home: Path) -> None:
        self.conn = sqlite3.connect(f"file:{home / DB_NAME}?mode=ro", uri=True,
                                    isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout = 5000")

    def close(self) -> None:
        self.conn.close()

    def event_at(self, origin: str, seq: int) -> tuple[str, int, int] | None:
        """(id, wall, received_at) of ``origin``'s event ``seq``, if this node holds it."""
        row = self.conn.execute("SELECT id, wall, received_at FROM events WHERE origin=? AND "
                                "seq=? AND status='applied'", (origin, seq)).fetchone()
        return None if row is None else (str(row[0]), int(row[1]), int(row[2]))

    def received_at(self, event_id: str) -> int | None:
        row = self.conn.execute("SELECT received_at FROM events WHERE id=?",
                                (event_id,)).fetchone()
        return None if row is None else int(row[0])

    def head(self, origin: str) -> int:
        row = self.conn.execute("SELECT max(seq) FROM events WHERE origin=?", (origin,)).fetchone()
        return int(row[0] or 0)

    def vector(self) -> dict[str, int]:
        return {str(o): int(s) for o, s in self.conn.execute(
            "SELECT origin, max(seq) FROM events WHERE status='applied' GROUP BY origin")}

    def links_up(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM links WHERE state='up'").fetchone()[0])


# ---------------------------------------------------------------------- one node


@dataclass
class Machine:
    """One node: its home, its port, and its ``evstore run`` process while it serves."""

    name: str
    home: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    reader: Reader | None = None
    _log_from: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"{self.name}.log"

    @property
    def origin(self) -> str:
        return (self.home / "host.pub").read_text().strip()

    def db(self) -> Reader:
        if self.reader is None:
            self.reader = Reader(self.home)
        return self.reader

    def start(self, ping_interval: float, fanout: int | None = None,
              cpus: str | None = None) -> None:
        """``evstore run``; with ``cpus`` (e.g. "0") under ``taskset -c``: those cores only,
        every thread included."""
        cmd = [*EVSTORE, "--home", str(self.home), "run", "--ping-interval", str(ping_interval)]
        if cpus is not None:
            cmd = ["taskset", "-c", cpus, *cmd]
        if fanout is not None:
            cmd += ["--fanout", str(fanout)]
        with open(self.log_path, "ab") as out:
            self._log_from = out.tell()  # a restarted node says "serving" again below this
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def serving(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name}'s node exited with {self.proc.returncode}: "
                               f"{self.log_tail()}")
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_from)
                return b"serving" in f.read(4096)  # the node's first line
        except FileNotFoundError:
            return False

    def wait_serving(self, timeout: float = SERVE_TIMEOUT) -> None:
        wait_until(f"{self.name} serves", self.serving, timeout, 0.1)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_bytes()[-800:].decode(errors="replace")
        except OSError:
            return ""

    def rss_kib(self) -> int:
        assert self.proc is not None
        return rss_kib(self.proc.pid)


def wait_until(what: str, pred: Callable[[], bool], timeout: float, every: float) -> float:
    """Poll ``pred`` until it holds; the seconds it took. A TimeoutError names ``what``."""
    t0 = time.perf_counter()
    while not pred():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)
    return time.perf_counter() - t0


def stop_procs(procs: list[subprocess.Popen[Any]], grace: float = 20.0, *,
               resume: bool = False) -> None:
    """SIGTERM each started process by PID (SIGCONT first with ``resume``: a stopped one would
    never see it), wait up to ``grace`` seconds in all, SIGKILL (by PID) what still runs."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            if resume:
                p.send_signal(signal.SIGCONT)
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in live:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"PID {p.pid} ignored SIGTERM: SIGKILL")
            p.kill()
            p.wait()


def stop_processes(machines: list[Machine], grace: float = 20.0) -> None:
    """SIGTERM every started node by PID, wait, SIGKILL (by PID) what is still running."""
    stop_procs([m.proc for m in machines if m.proc is not None], grace)


# ---------------------------------------------------------------------- a cluster


@dataclass
class SetupTimes:
    """Seconds each phase of building a cluster took."""

    homes: float = 0.0
    first: float = 0.0  # create, start the first node, wait until it serves
    joins: float = 0.0  # every join done, every process started and serving
    mesh: float = 0.0  # from then until every link is up and every log the same
    total: float = 0.0
    join_each: list[float] = field(default_factory=list)

    how: str = "first"  # "first": every join through the first node; "spread": see _join_spread
    start_each: list[float] = field(default_factory=list)  # a joined node's start to serving

    def describe(self) -> str:
        each = statistics.median(self.join_each or [0.0])
        if self.how == "spread":
            start = statistics.median(self.start_each or [0.0])
            how = (f"each through a random serving member, {SPREAD_WORKERS} at a time, each "
                   f"join {each:.2f} s median, then its process started and serving in "
                   f"{start:.2f} s median")
        else:
            how = (f"all through the first node, {JOIN_WORKERS} at a time, each {each:.2f} s "
                   f"median; then every process started")
        return (f"homes {self.homes:.1f} s, create + first node {self.first:.1f} s, joins "
                f"{self.joins:.1f} s ({how}), links + same logs {self.mesh:.1f} s")


class Cluster:
    """``size`` real nodes on loopback; a context manager that stops them all on exit."""

    def __init__(self, root: Path, size: int, *, ping_interval: float = PING_INTERVAL,
                 fanout: int | None = None, join: str = "spread") -> None:
        self.root = root
        self.join = join
        self.size = size
        self.ping_interval = ping_interval
        self.fanout = fanout
        self.machines = [Machine(f"n{i:02d}", root / f"n{i:02d}", free_port())
                         for i in range(size)]
        self.setup = SetupTimes(how=join)
        self._lock = threading.Lock()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            stop_processes(self.machines)
        finally:
            for m in self.machines:
                if m.reader is not None:
                    m.reader.close()
                    m.reader = None

    @property
    def first(self) -> Machine:
        return self.machines[0]

    # ------------------------------------------------------------------ building

    def build(self) -> SetupTimes:
        t0 = time.perf_counter()
        self._homes()
        self.setup.homes = time.perf_counter() - t0
        t1 = time.perf_counter()
        with open_node(self.first.home) as node:
            cluster_ops.create(node, "admin", "bench")
        self.first.start(self.ping_interval, self.fanout)
        self.first.wait_serving()
        self.setup.first = time.perf_counter() - t1
        t2 = time.perf_counter()
        if self.join == "spread":
            self._join_spread()
        else:
            self._join_all()
        self.setup.joins = time.perf_counter() - t2
        t3 = time.perf_counter()
        self.wait_mesh()
        self.setup.mesh = time.perf_counter() - t3
        self.setup.total = time.perf_counter() - t0
        return self.setup

    def _homes(self) -> None:
        def one(m: Machine) -> None:
            init_home(m.home, hostname=m.name, passphrase=PASS, listen=m.address)

        with ThreadPoolExecutor(max_workers=2) as pool:  # argon2id hashing releases the GIL
            list(pool.map(one, self.machines))

    def _join_all(self) -> None:
        """Every other node joins through the first, four at a time, before any of them
        serves; then all their processes start at once and the mesh forms in one go.

        Joining a serving mesh one node at a time costs every serving node a membership
        refresh and a new link per join (with 50 nodes on two cores that took over eight
        minutes and did not finish); this way each link is made once.
        """
        def one(m: Machine) -> None:
            t0 = time.perf_counter()
            self._join_through(m, self.first)
            with self._lock:
                self.setup.join_each.append(time.perf_counter() - t0)

        with ThreadPoolExecutor(max_workers=JOIN_WORKERS) as pool:
            list(pool.map(one, self.machines[1:]))
        for m in self.machines[1:]:
            m.start(self.ping_interval, self.fanout)
        for m in self.machines:
            m.wait_serving()

    def _join_spread(self) -> None:
        """Joins through different members at once: ``SPREAD_WORKERS`` at a time, each new
        machine through a member chosen at random (seeded) among those already serving,
        and started as soon as it has joined, so it serves the joins after it. The first
        node is no bottleneck, and each joined node links up while the others join."""
        rng = random.Random(self.size)
        serving = [self.first]
        todo = list(self.machines[1:])

        def worker() -> None:
            while True:
                with self._lock:
                    if not todo:
                        return
                    m = todo.pop(0)
                    via = rng.choice(serving)
                t0 = time.perf_counter()
                self._join_through(m, via)
                t1 = time.perf_counter()
                m.start(self.ping_interval, self.fanout)
                m.wait_serving()
                with self._lock:
                    self.setup.join_each.append(t1 - t0)
                    self.setup.start_each.append(time.perf_counter() - t1)
                    serving.append(m)

        with ThreadPoolExecutor(max_workers=SPREAD_WORKERS) as pool:
            for f in [pool.submit(worker) for _ in range(SPREAD_WORKERS)]:
                f.result()

    def _join_through(self, m: Machine, via: Machine) -> None:
        fp = _fingerprint(via.home)
        opts = client.JoinOptions(address=via.address, passphrase=PASS, fingerprint=fp)
        questions = client.JoinQuestions(trust_key=lambda fp, addr: False,
                                         confirm=lambda info: True,
                                         before_change=lambda info: None)
        deadline = time.monotonic() + JOIN_TIMEOUT
        while True:
            try:
                with open_node(m.home) as node:
                    client.join(node, "admin", opts, questions)
                return
            except Exception as e:  # "busy with other joins: try again" is worth a retry
                if "busy" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def links_complete(self) -> bool:
        want = self.size - 1 if self.fanout is None else 1
        return all(m.db().links_up() >= want for m in self.machines)

    def same_logs(self) -> bool:
        return len({json.dumps(m.db().vector(), sort_keys=True) for m in self.machines}) == 1

    def wait_mesh(self, timeout: float = MESH_TIMEOUT) -> float:
        """Until every node has all its links up (full mesh) and every log is the same."""
        return wait_until(f"the {self.size}-node mesh to form",
                          lambda: self.links_complete() and self.same_logs(), timeout, 0.25)

    def rss_kib(self) -> list[int]:
        return [m.rss_kib() for m in self.machines]

    def cpu_per_node(self, window: float) -> list[float]:
        """CPU seconds per second of each node over ``window`` seconds, in machine order."""
        pids = [m.proc.pid for m in self.machines if m.proc is not None]
        before = [cpu_seconds(p) for p in pids]
        t0 = time.perf_counter()
        time.sleep(window)
        took = time.perf_counter() - t0
        return [(cpu_seconds(p) - b) / took for p, b in zip(pids, before, strict=True)]

    def cpu_rate(self, window: float) -> float:
        """CPU seconds per second that all the nodes together use over ``window`` seconds."""
        pids = [m.proc.pid for m in self.machines if m.proc is not None]
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(window)
        return (sum(cpu_seconds(p) for p in pids) - before) / window


def _fingerprint(home: Path) -> str:
    with open_node(home) as node:
        return str(node.fingerprint())


@contextlib.contextmanager
def running_cluster(prefix: str, size: int, **kw: Any) -> Iterator[Cluster]:
    """A built cluster in a fresh directory; every node stopped (by PID) and removed after."""
    with workdir(prefix) as root:
        cluster = Cluster(root, size, **kw)
        try:
            cluster.build()
            yield cluster
        finally:
            cluster.close()


# ---------------------------------------------------------------------- making events fast


def write_commits(home: Path, count: int, payload: Callable[[int], dict[str, Any]],
                  batch: int = 1000) -> None:
    """``count`` signed ``config.commit`` events by this home's key, in large transactions.

    ``payload(i)`` gives each commit's payload. One transaction per ``batch`` (not one flush
    per commit) keeps 100,000 commits to about a minute.
    """
    with open_node(home) as node:
        done = 0
        while done < count:
            with transaction(node.conn):
                for i in range(done, min(count, done + batch)):
                    node.log.append(node.signing_key, user="admin", kind="config.commit",
                                    payload=payload(i), now_ms=now_ms())
            done = min(count, done + batch)


def empty_commit(i: int) -> dict[str, Any]:
    """A commit that changes no setting, padded to the size of a real one (about 600 bytes).

    The views' cost of a commit that does change a setting grows with the number of earlier
    writes to that setting (bench_net measures it separately), which would swamp what these
    benchmarks are about: moving, checking and storing the events.
    """
    return {"comment": f"bench commit {i}: " + "routine change, no setting touched. " * 8,
            "changes": []}


def one_field_commit(i: int, base: tuple[int, str, str] | None) -> dict[str, Any]:
    """The commit ``evstore set dns servers=[...]`` + ``commit`` makes, its base the one before."""
    server = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    return {"comment": f"bench commit {i}", "changes": [{
        "mode": "cluster", "section": "dns", "op": "patch",
        "base": list(base) if base else None, "set": {"servers": [server]}, "unset": [],
    }]}


# ---------------------------------------------------------------------- commit latency


@dataclass
class CommitTiming:
    """One commit made by ``evstore commit`` on the first node, and when each node had it."""

    event: str
    wall_ms: int  # the commit event's own time stamp (made by the committing process)
    seen: dict[str, float]  # node -> seconds after wall_ms when a poll first found it
    stamped: dict[str, float]  # node -> seconds after wall_ms of its received_at stamp

    @property
    def everywhere(self) -> float:
        return max(self.seen.values())

    @property
    def everywhere_stamped(self) -> float:
        return max(self.stamped.values())


def commit_and_time(cluster: Cluster, i: int, timeout: float = COMMIT_TIMEOUT) -> CommitTiming:
    """``evstore set`` + ``evstore commit`` on the first node (two processes, as an operator
    types them), then poll every node's database for the new event.

    The first node is polled for the origin's next seq from before the commit starts, every
    2 ms; the others once it is there (2 ms between rounds, 5 ms above 10 nodes, to leave
    the two cores to the nodes). A node's ``received_at`` stamp is kept as a cross-check.
    """
    first = cluster.first
    origin = first.origin
    seq = first.db().head(origin) + 1
    cli(first.home, "set", "dns", f'servers=["10.9.{i // 250}.{i % 250}"]', "--mode", "cluster")
    proc = subprocess.Popen([*EVSTORE, "--home", str(first.home), "commit", "-m",
                             f"bench latency {i}", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "EVSTORE_PASSPHRASE": PASS})
    try:
        found = _poll_first(first, origin, seq, proc, timeout)
        timing = _poll_rest(cluster, found, timeout)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or json.loads(out)["commit"] != timing.event:
        raise RuntimeError(f"commit {i}: {proc.returncode} {err.decode(errors='replace')[-300:]}")
    return timing


def _poll_first(m: Machine, origin: str, seq: int, proc: subprocess.Popen[bytes],
                timeout: float) -> tuple[str, int, float, int]:
    deadline = time.monotonic() + timeout
    while True:
        hit = m.db().event_at(origin, seq)
        if hit is not None:
            return hit[0], hit[1], time.time(), hit[2]
        if proc.poll() not in (None, 0) or time.monotonic() > deadline:
            raise RuntimeError(f"the commit never appeared on {m.name} (exit {proc.poll()})")
        time.sleep(0.002)


def _poll_rest(cluster: Cluster, found: tuple[str, int, float, int],
               timeout: float) -> CommitTiming:
    event, wall, seen_first, stamp_first = found
    timing = CommitTiming(event, wall, {cluster.first.name: seen_first - wall / 1000},
                          {cluster.first.name: (stamp_first - wall) / 1000})
    pending = list(cluster.machines[1:])
    pause = 0.002 if cluster.size <= 10 else 0.005
    deadline = time.monotonic() + timeout
    while pending:
        for m in list(pending):
            stamp = m.db().received_at(event)
            if stamp is not None:
                timing.seen[m.name] = time.time() - wall / 1000
                timing.stamped[m.name] = (stamp - wall) / 1000
                pending.remove(m)
        if time.monotonic() > deadline:
            raise TimeoutError(f"commit {event[:12]} missing on {[m.name for m in pending]} "
                               f"after {timeout:.0f} s")
        time.sleep(pause)
    return timing


# ---------------------------------------------------------------------- one run per size


@dataclass
class ClusterFigures:
    """Everything measured on one cluster of ``size`` nodes (see :func:`cluster_run`)."""

    size: int
    setup: SetupTimes | None = None
    rss_idle_kib: list[int] = field(default_factory=list)
    idle_cpu: float = float("nan")  # CPU seconds per second, all nodes together, when idle
    commits: list[CommitTiming] = field(default_factory=list)
    check_s: list[float] = field(default_factory=list)
    check_baseline_s: list[float] = field(default_factory=list)
    check_note: str = ""
    events_written: int = 0
    events_spread_s: float = 0.0
    rss_after_kib: list[int] = field(default_factory=list)
    error: str = ""


@dataclass
class Plan:
    """What :func:`cluster_run` measures on a cluster of one size."""

    commits: int
    check_reps: int = 0  # clustercheck repetitions (0: none)
    events: int = 0  # events to write for the memory figure (0: none)


_RUNS: dict[tuple[int, bool], ClusterFigures] = {}


def cluster_run(size: int, quick: bool, plan: Plan) -> ClusterFigures:
    """Build a cluster of ``size`` nodes once per process and measure ``plan`` on it."""
    key = (size, quick)
    if key not in _RUNS:
        _RUNS[key] = _measure(size, plan)
    return _RUNS[key]


def _measure(size: int, plan: Plan) -> ClusterFigures:
    figs = ClusterFigures(size)
    log(f"cluster of {size} real nodes: building (homes, create, joins {JOIN_WORKERS} at a "
        "time, full mesh)")
    try:
        with workdir(f"net{size}") as root:
            cluster = Cluster(root, size)
            try:
                figs.setup = cluster.build()
                log(f"  set up in {figs.setup.total:.1f} s: {figs.setup.describe()}")
                _on_cluster(cluster, figs, plan)
            finally:
                cluster.close()
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as e:
        figs.error = f"{type(e).__name__}: {e}"
        log(f"  FAILED: {figs.error}")
    return figs


def _on_cluster(cluster: Cluster, figs: ClusterFigures, plan: Plan) -> None:
    time.sleep(2.0)  # let the last link rows and pushes settle
    figs.rss_idle_kib = cluster.rss_kib()
    figs.idle_cpu = cluster.cpu_rate(IDLE_WINDOW)
    log(f"  {plan.commits} commits by `evstore commit` on {cluster.first.name}")
    for i in range(plan.commits):
        figs.commits.append(commit_and_time(cluster, i))
    if plan.check_reps:
        _clustercheck(cluster, figs, plan.check_reps)
    if plan.events:
        _spread_events(cluster, figs, plan.events)


def _clustercheck(cluster: Cluster, figs: ClusterFigures, reps: int) -> None:
    log(f"  `evstore clustercheck --json` on {cluster.first.name} x {reps}")
    home = cluster.first.home
    for _ in range(reps):
        t0 = time.perf_counter()
        cli(home, "clusterconfig", "fingerprint", "--json")
        figs.check_baseline_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        done = cli(home, "clustercheck", "--json", check=False)
        figs.check_s.append(time.perf_counter() - t0)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"clustercheck failed ({done.returncode}): "
                               f"{done.stderr.decode(errors='replace')[-300:]}")
        report = json.loads(done.stdout)
        figs.check_note = (f"checked {len(report.get('checked', []))} machines, consistent: "
                           f"{report.get('consistent')}, unreachable: "
                           f"{len(report.get('unreachable', []))}")


def _spread_events(cluster: Cluster, figs: ClusterFigures, count: int) -> None:
    """Write ``count`` commits on the first node while it serves; wait until all hold them."""
    log(f"  {count} commits written on {cluster.first.name} while it serves")
    origin = cluster.first.origin
    target = cluster.first.db().head(origin) + count
    t0 = time.perf_counter()
    write_commits(cluster.first.home, count, empty_commit)
    wait_until(f"{count} events to reach every node",
               lambda: all(m.db().head(origin) >= target for m in cluster.machines), 900, 0.25)
    figs.events_spread_s = time.perf_counter() - t0
    figs.events_written = count
    time.sleep(3.0)  # the relays' duplicate pushes and the writers' rows settle
    figs.rss_after_kib = cluster.rss_kib()


def sizes(quick: bool) -> tuple[int, ...]:
    """The cluster sizes of the latency benchmark."""
    return (3,) if quick else (3, 10, 20, 50)


def check_sizes(quick: bool) -> tuple[int, ...]:
    """The cluster sizes clustercheck is timed on."""
    return (3,) if quick else (20, 50)


def plan_for(size: int, quick: bool) -> Plan:
    """One plan per size, whichever module asks first (bench_check or bench_net)."""
    commits = 5 if quick else (20 if size >= 50 else 30)
    reps = (3 if size >= 50 else 5) if size in check_sizes(quick) else 0
    events = (1_000 if quick else 10_000) if size == 3 else 0
    return Plan(commits=commits, check_reps=reps, events=events)


# ---------------------------------------------------------------------- the peers (issue 16)
#
# etcd (Debian ``etcd-server``/``etcd-client``, 3.4) and Serf are started here when they are
# installed, on free loopback ports, each in a fresh directory, and stopped by PID. etcd is
# driven through its JSON gateway (``/v3/kv/put``, ``/v3/kv/range``) over kept-alive HTTP
# connections, so no process start is timed.


def have(program: str) -> bool:
    import shutil

    return shutil.which(program) is not None


class Etcd:
    """A 3-member etcd cluster on loopback (``with Etcd(root) as e:``)."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.size = size
        self.client_ports = [free_port() for _ in range(size)]
        self.peer_ports = [free_port() for _ in range(size)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self._conns: dict[int, Any] = {}

    def __enter__(self) -> Etcd:
        initial = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer_ports))
        for i in range(self.size):
            d = self.root / f"etcd{i}"
            d.mkdir(parents=True, exist_ok=True)
            cmd = ["etcd", "--name", f"e{i}", "--data-dir", str(d / "data"),
                   "--listen-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                   "--advertise-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                   "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                   "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                   "--initial-cluster", initial, "--initial-cluster-state", "new",
                   "--initial-cluster-token", "bench"]
            with open(d / "log", "ab") as out:
                self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL))
        wait_until("etcd to elect a leader", self._healthy, 60, 0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        for c in self._conns.values():
            c.close()
        stop_procs(self.procs)

    def _call(self, i: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import http.client

        conn = self._conns.get(i)
        if conn is None:
            conn = self._conns[i] = http.client.HTTPConnection("127.0.0.1", self.client_ports[i],
                                                               timeout=30)
        try:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            del self._conns[i]
            raise
        if resp.status != 200:
            raise RuntimeError(f"etcd {path}: {resp.status} {data[:200]!r}")
        out: dict[str, Any] = json.loads(data)
        return out

    def _healthy(self) -> bool:
        try:
            return all(self.status(i).get("leader") for i in range(self.size))
        except (OSError, RuntimeError, ValueError):
            return False

    def status(self, i: int) -> dict[str, Any]:
        return self._call(i, "/v3/maintenance/status", {})

    def followers(self) -> list[int]:
        out = []
        for i in range(self.size):
            st = self.status(i)
            if st["header"]["member_id"] != st["leader"]:
                out.append(i)
        return out

    def put(self, i: int, key: str, value: str) -> None:
        import base64

        self._call(i, "/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                                     "value": base64.b64encode(value.encode()).decode()})

    def has(self, i: int, key: str, value: str) -> bool:
        """A local (serializable) read on member ``i``: what that member has applied."""
        import base64

        got = self._call(i, "/v3/kv/range", {"key": base64.b64encode(key.encode()).decode(),
                                             "serializable": True})
        kvs = got.get("kvs") or []
        return bool(kvs) and base64.b64decode(kvs[0]["value"]).decode() == value


def raw_durable_insert(path: Path, count: int) -> list[float]:
    """Milliseconds of ``count`` one-row durable transactions (WAL, synchronous=FULL), each
    about an event's size: the floor under every durable commit on this disk."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, b BLOB)")
    out = []
    blob = b"x" * 700
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (b) VALUES (?)", (blob,))
            conn.execute("COMMIT")
            out.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    return out


@dataclass
class PeerLatency:
    """Commit start to visible on the other two machines, evstore and etcd, side by side."""

    evstore_ms: list[float] = field(default_factory=list)
    evstore_return_ms: list[float] = field(default_factory=list)  # from the commit's return
    evstore_commit_ms: list[float] = field(default_factory=list)  # the commit call itself
    etcd_ms: list[float] = field(default_factory=list)
    etcd_return_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)  # raw durable insert, same rounds
    note: str = ""


def library_commit_latency(cluster: Cluster, rounds: int, etcd: Etcd | None,
                           scratch: Path) -> PeerLatency:
    """Rounds of: one raw durable insert, one evstore commit (``settings.commit_set`` in this
    process, as the web pages save: one durable transaction, announced to the serving node),
    one etcd put on a follower; each commit timed from its start until the other two
    machines show it (their databases polled read-only every 0.2 ms; etcd: serializable
    reads on the other two members, the leader and the other follower)."""
    from evstore.ops import settings

    out = PeerLatency()
    others = cluster.machines[1:]
    follower = etcd.followers()[0] if etcd is not None else None
    readers = [] if etcd is None else [j for j in range(etcd.size) if j != follower]
    with open_node(cluster.first.home) as node:
        for i in range(rounds):
            out.raw_ms.append(median_of(raw_durable_insert(scratch / "raw.db", 3)))
            t0 = time.perf_counter()
            done = settings.commit_set(node, "admin", "cluster", "dns",
                                       [f'servers=["10.7.{i // 250}.{i % 250}"]'])
            t1 = time.perf_counter()
            event = str(done["commit"])
            pending = list(others)
            while pending:
                pending = [m for m in pending if m.db().received_at(event) is None]
                if pending:
                    time.sleep(0.0002)
            t2 = time.perf_counter()
            out.evstore_ms.append((t2 - t0) * 1000)
            out.evstore_return_ms.append((t2 - t1) * 1000)
            out.evstore_commit_ms.append((t1 - t0) * 1000)
            if etcd is not None and follower is not None:
                key, value = "bench", f"v{i}"
                t0 = time.perf_counter()
                etcd.put(follower, key, value)
                t1 = time.perf_counter()
                waiting = list(readers)
                while waiting:
                    waiting = [j for j in waiting if not etcd.has(j, key, value)]
                    if waiting:
                        time.sleep(0.0002)
                t2 = time.perf_counter()
                out.etcd_ms.append((t2 - t0) * 1000)
                out.etcd_return_ms.append((t2 - t1) * 1000)
            time.sleep(0.02)
    return out


def median_of(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@dataclass
class CommitCost:
    """Milliseconds per one-change commit, per round, each contender in turn (A B A B)."""

    bare: list[float] = field(default_factory=list)  # EventLog.append of the same change
    library: list[float] = field(default_factory=list)  # settings.commit_set
    staged: list[float] = field(default_factory=list)  # settings.stage_set + settings.commit
    raw: list[float] = field(default_factory=list)  # raw durable one-row insert
    etcd: list[float] = field(default_factory=list)  # sequential etcd puts (3 members)


def commit_cost(root: Path, rounds: int, per_round: int, etcd: Etcd | None) -> CommitCost:
    """A standalone home (``init_home``), warmed up; then ``rounds`` rounds of
    ``per_round`` commits by each contender in turn. The bare append writes the payload the
    library call would (a patch of one field, with its base)."""
    from evstore.ops import settings

    home = root / "cost"
    init_home(home, hostname="cost", passphrase=PASS)
    out = CommitCost()
    with open_node(home) as node:
        me = f"machine:{node.mid}"
        n = [0]

        def server() -> str:
            n[0] += 1
            return f'servers=["10.6.{n[0] // 250 % 250}.{n[0] % 250}"]'

        def bare() -> None:
            _, base = settings.current(node, me, "dns")
            change = {"mode": me, "section": "dns", "op": "patch",
                      "base": list(base) if base else None,
                      "set": {"servers": [server().split('"')[1]]}, "unset": []}
            node.log.append(node.signing_key, user="admin", kind="config.commit",
                            payload={"comment": "", "changes": [change]}, now_ms=now_ms())

        def library() -> None:
            settings.commit_set(node, "admin", me, "dns", [server()])

        def staged() -> None:
            settings.stage_set(node, "admin", me, "dns", [server()])
            settings.commit(node, "admin")

        def put() -> None:
            assert etcd is not None
            n[0] += 1
            etcd.put(0, "cost", f"v{n[0]}")

        contenders: list[tuple[list[float], Callable[[], None]]] = [
            (out.bare, bare), (out.library, library), (out.staged, staged)]
        if etcd is not None:
            contenders.append((out.etcd, put))
        library()  # the section defined once, so every later commit is a patch
        for _, fn in contenders:
            for _ in range(per_round):
                fn()
        for _ in range(rounds):
            out.raw.append(statistics.fmean(raw_durable_insert(root / "raw.db", per_round)))
            for runs, fn in contenders:
                t0 = time.perf_counter()
                for _ in range(per_round):
                    fn()
                runs.append((time.perf_counter() - t0) / per_round * 1000)
    return out


def links_state(m: Machine, peer_mid: str) -> str | None:
    """The state of ``m``'s link row for the machine ``peer_mid`` (what status shows)."""
    row = m.db().conn.execute("SELECT state FROM links WHERE machine=?", (peer_mid,)).fetchone()
    return None if row is None else str(row[0])


def frozen_peer(cluster: Cluster, timeout: float = 120.0) -> tuple[list[float], float]:
    """SIGSTOP the last node (its sockets stay open), time until every other node's link row
    to it says down; SIGCONT, time until they all say up again."""
    victim = cluster.machines[-1]
    assert victim.proc is not None
    mid = victim.origin  # its machine id: the key it joined with
    others = cluster.machines[:-1]
    t0 = time.perf_counter()
    victim.proc.send_signal(signal.SIGSTOP)
    try:
        downs: dict[str, float] = {}
        while len(downs) < len(others):
            for m in others:
                if m.name not in downs and links_state(m, mid) == "down":
                    downs[m.name] = time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"a frozen peer was not reported down within {timeout:.0f} s")
            time.sleep(0.02)
    finally:
        victim.proc.send_signal(signal.SIGCONT)
    t1 = time.perf_counter()
    wait_until("the thawed peer to come back", lambda: all(
        links_state(m, mid) == "up" for m in others), timeout, 0.05)
    return sorted(downs.values()), time.perf_counter() - t1


class Serf:
    """``size`` Serf agents (LAN profile) on loopback, each with a user-event handler that
    appends the time it ran to a file; joined into one cluster. ``with Serf(root, n) as s:``"""

    def __init__(self, root: Path, size: int) -> None:
        self.root = root
        self.size = size
        ports: list[int] = []
        while len(ports) < 2 * size:  # distinct: a port handed out twice kills an agent
            port = free_port()
            if port not in ports:
                ports.append(port)
        self.bind, self.rpc = ports[:size], ports[size:]
        self.procs: list[subprocess.Popen[bytes]] = []

    def seen_file(self, i: int) -> Path:
        return self.root / f"serf{i}.seen"

    def __enter__(self) -> Serf:
        self.root.mkdir(parents=True, exist_ok=True)
        for i in range(self.size):
            handler = self.root / f"handler{i}.sh"
            handler.write_text(f"#!/bin/sh\ndate +%s.%N >> {self.seen_file(i)}\n")
            handler.chmod(0o755)
            cmd = ["serf", "agent", f"-node=s{i}", f"-bind=127.0.0.1:{self.bind[i]}",
                   f"-rpc-addr=127.0.0.1:{self.rpc[i]}", "-profile=lan",
                   f"-event-handler=user:bench={handler}"]
            with open(self.root / f"serf{i}.log", "ab") as out:
                self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL))
        try:
            wait_until("serf agents to answer", self._all_answer, 60, 0.2)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        for i in range(1, self.size):  # each joins through the one before it
            self._cli(i, "join", f"127.0.0.1:{self.bind[i - 1]}")
        wait_until("serf to see every member alive", lambda: all(
            self.alive(i) == self.size for i in (0, self.size - 1)), 120, 0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_procs(self.procs, resume=True)

    def _all_answer(self) -> bool:
        """Does every agent answer? An agent that has exited fails at once, with its log."""
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                tail = (self.root / f"serf{i}.log").read_text(errors="replace")[-400:]
                raise RuntimeError(f"serf agent {i} exited ({proc.returncode}): {tail}")
        return all(self._cli(i, "members", check=False).returncode == 0
                   for i in range(self.size))

    def _cli(self, i: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(["serf", args[0], f"-rpc-addr=127.0.0.1:{self.rpc[i]}", *args[1:]],
                              capture_output=True, timeout=60, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"serf {' '.join(args)}: {done.stderr[-300:]!r}")
        return done

    def members(self, i: int) -> dict[str, str]:
        out = json.loads(self._cli(i, "members", "-format=json").stdout)
        return {m["name"]: m["status"] for m in out.get("members", [])}

    def alive(self, i: int) -> int:
        return sum(1 for s in self.members(i).values() if s == "alive")

    def event_to_all(self, n: int) -> float:
        """Send user event ``bench`` from agent 0; seconds until every handler has run."""
        counts = [self._lines(i) for i in range(self.size)]
        t0 = time.time()
        self._cli(0, "event", "-coalesce=false", "bench", f"e{n}")
        deadline = time.monotonic() + 60
        while True:
            if all(self._lines(i) > counts[i] for i in range(self.size)):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("a serf event did not reach every agent within 60 s")
            time.sleep(0.005)
        last = max(float(self.seen_file(i).read_text().split()[-1]) for i in range(self.size))
        return last - t0

    def _lines(self, i: int) -> int:
        try:
            return len(self.seen_file(i).read_text().split())
        except FileNotFoundError:
            return 0

    def frozen(self, timeout: float = 120.0) -> float:
        """SIGSTOP the last agent; seconds until the first two report it failed."""
        victim = self.procs[-1]
        name = f"s{self.size - 1}"
        t0 = time.perf_counter()
        victim.send_signal(signal.SIGSTOP)
        try:
            wait_until("serf to report a frozen agent failed", lambda: all(
                self.members(i).get(name) == "failed" for i in (0, 1)), timeout, 0.1)
        finally:
            victim.send_signal(signal.SIGCONT)
        return time.perf_counter() - t0
