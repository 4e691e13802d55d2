"""Issue 14: a commit on machine A, to the file ``evstore render --watch`` keeps on machine B.

Three real ``evstore run`` processes on loopback (netbench_support.Cluster, pings every
600 s). On the second machine, ``evstore render TEMPLATE --out FILE --watch`` runs as its own
process (a template that prints the cluster's DNS servers). On the first machine, the change
is staged, then the clock starts, the commit is made (``ops.settings.commit`` in this process,
on a connection kept open: the figure is the store's, not a command's start-up, which the
``get`` benchmark covers) and FILE on B is read every 2 ms until it holds the new value. Each
commit waits for the previous one to reach the file. p50 and p99 over the commits; also the
commit call alone. No target: report.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import netbench_support as nb
from bench.common import Result, log, median
from evstore.ops import settings
from evstore.ops.node import Node, now_ms, open_node

TITLE = "Render: commit on machine A to a re-rendered file on machine B, 3 machines (issue 14)"

TEMPLATE = """# rendered by evstore on {{ machine }} (cluster {{ cluster }})
{% for s in settings.dns.servers %}nameserver {{ s }}
{% endfor %}"""
POLL_S = 0.002
TIMEOUT_S = 60.0


def run(quick: bool) -> list[Result]:
    reps = 20 if quick else 100
    with nb.running_cluster("render", 3) as cluster:
        a, b = cluster.machines[0], cluster.machines[1]
        tpl = cluster.root / "resolv.conf.j2"
        tpl.write_text(TEMPLATE)
        out = cluster.root / "resolv.conf"
        with open_node(a.home) as node:
            _commit(node, "10.7.255.255")
        proc = _start_render(b.home, tpl, out, cluster.root / "render.log")
        try:
            nb.wait_until("B's first render", lambda: _holds(out, "10.7.255.255"), 120, 0.05)
            figs = _measure(a.home, b, out, reps)
        finally:
            nb.stop_procs([proc])
    ms = [x * 1000 for x in figs.total]
    cm = [x * 1000 for x in figs.commit_only]
    on_b = [x * 1000 for x in figs.on_b]
    note = (f"{reps} commits, one at a time; the commit call alone (sign, store, apply, "
            f"announce on A): p50 {median(cm):.1f} ms, p99 {nb.percentile(cm, 99):.1f} ms; "
            f"to the event's received_at stamp on B (ms clock): p50 {median(on_b):.0f} ms, "
            f"p99 {nb.percentile(on_b, 99):.0f} ms; the rest is B's watcher waking, reading "
            "the feed, rendering and replacing the file (two fsyncs); FILE read every 2 ms")
    return [
        Result("commit on A to re-rendered file on B, 3 machines: p50", median(ms), "ms", ms,
               target="report", note=note),
        Result("commit on A to re-rendered file on B, 3 machines: p99",
               nb.percentile(ms, 99), "ms", ms, target="report"),
    ]


def _commit(node: Node, server: str) -> tuple[float, str]:
    """Stage the change, then time the commit call alone; (its seconds, the event's id)."""
    settings.stage(node, "admin", node.to_internal("cluster"), "dns", {"servers": [server]})
    t0 = time.perf_counter()
    done = settings.commit(node, "admin", f"bench render {server}")
    return time.perf_counter() - t0, str(done["commit"])


def _start_render(home: Path, tpl: Path, out: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as f:
        return subprocess.Popen([*nb.EVSTORE, "--home", str(home), "render", str(tpl), "--out",
                                 str(out), "--watch"], stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ})


def _holds(out: Path, server: str) -> bool:
    try:
        return f"nameserver {server}\n" in out.read_text()
    except FileNotFoundError:
        return False


@dataclass
class Figures:
    total: list[float] = field(default_factory=list)  # commit call to B's file, seconds
    commit_only: list[float] = field(default_factory=list)  # the commit call alone
    on_b: list[float] = field(default_factory=list)  # commit call to B's received_at stamp


def _measure(a_home: Path, b: nb.Machine, out: Path, reps: int) -> Figures:
    f = Figures()
    with open_node(a_home) as node:
        for i in range(reps):
            server = f"10.7.{i // 250}.{i % 250}"
            t0 = time.perf_counter()
            wall0 = now_ms()
            took, event = _commit(node, server)  # staging happens before its clock starts
            while not _holds(out, server):
                if time.perf_counter() - t0 > TIMEOUT_S:
                    raise RuntimeError(f"commit {i} did not reach B's file in {TIMEOUT_S} s")
                time.sleep(POLL_S)
            f.total.append(time.perf_counter() - t0)
            f.commit_only.append(took)
            stamp = b.db().received_at(event)
            if stamp is not None:
                f.on_b.append(max(0, stamp - wall0) / 1000)
            time.sleep(0.05)
    log(f"render: {reps} commits, p50 {median(f.total) * 1000:.1f} ms")
    return f
