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
import signal
import subprocess
import time
from pathlib import Path

from bench import netbench_support as nb
from bench.common import Result, log, median
from evstore.ops import settings
from evstore.ops.node import Node, open_node

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
            total, commit_only = _measure(a.home, out, reps)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    ms = [x * 1000 for x in total]
    cm = [x * 1000 for x in commit_only]
    note = (f"{reps} commits, one at a time; the commit call alone (sign, store, apply, "
            f"announce on A): p50 {median(cm):.1f} ms, p99 {nb.percentile(cm, 99):.1f} ms; "
            "FILE read every 2 ms")
    return [
        Result("commit on A to re-rendered file on B, 3 machines: p50", median(ms), "ms", ms,
               target="report", note=note),
        Result("commit on A to re-rendered file on B, 3 machines: p99",
               nb.percentile(ms, 99), "ms", ms, target="report"),
    ]


def _commit(node: Node, server: str) -> float:
    """Stage the change, then time the commit call alone (returned)."""
    settings.stage(node, "admin", node.to_internal("cluster"), "dns", {"servers": [server]})
    t0 = time.perf_counter()
    settings.commit(node, "admin", f"bench render {server}")
    return time.perf_counter() - t0


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


def _measure(home: Path, out: Path, reps: int) -> tuple[list[float], list[float]]:
    total: list[float] = []
    commit_only: list[float] = []
    with open_node(home) as node:
        for i in range(reps):
            server = f"10.7.{i // 250}.{i % 250}"
            t0 = time.perf_counter()
            took = _commit(node, server)  # staging happens before its own clock starts
            while not _holds(out, server):
                if time.perf_counter() - t0 > TIMEOUT_S:
                    raise RuntimeError(f"commit {i} did not reach B's file in {TIMEOUT_S} s")
                time.sleep(POLL_S)
            total.append(time.perf_counter() - t0)
            commit_only.append(took)
            time.sleep(0.05)
    log(f"render: {reps} commits, p50 {median(total) * 1000:.1f} ms")
    return total, commit_only
