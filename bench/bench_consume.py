"""Issue 14: what a consumer of the configuration waits for.

* **Start-up**: the whole process of ``evstore --home H get dns`` and of ``evstore
  --version`` (the console script, as services and scripts call it), side by side with
  ``python -c pass`` of the same interpreter: each repetition runs the command then the
  baseline, and the ratio is taken per pair (a machine shared with other work slows both).
  Targets: ``get`` at most 5x; ``--version``, ``--help``, ``status`` and ``show`` (text and
  JSON, output piped as a script's is) at most 8x (medians).
* **Watch latency**: ``evstore watch dns --json`` runs as its own process on a home; this
  committer process commits a change to ``dns`` (``ops.settings.commit_set``, one durable
  transaction on a connection kept open) and the clock runs from the log's COMMIT returning (the change is
  applied and its feed row durable; the time is taken where the log announces it) to the
  watcher's line arriving on its stdout pipe. One commit at a time, each after the previous line arrived. Three conditions: nothing
  serves the home (the committer announces on the home's change signal), ``evstore run``
  serves it (the same, with a node running beside), and no signal at all (the watcher falls
  back to looking every 50 ms: ``HOME/.notify`` made unusable). Targets: p50 under 5 ms and
  p99 under 20 ms while ``run`` serves the home, under 100 ms when nothing serves it.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import netbench_support as nb
from bench.common import Result, log, median, workdir
from evstore.ops.node import init_home

TITLE = "Consumers: start-up of get, --version, --help, status and show; watch latency (issue 14)"

SCRIPT = str(Path(sys.executable).with_name("evstore"))
TIMEOUT_S = 30.0


def run(quick: bool) -> list[Result]:
    with workdir("consume") as root:
        home = root / "alpha"
        port = nb.free_port()
        init_home(home, hostname="alpha", passphrase=nb.PASS, listen=f"127.0.0.1:{port}")
        out = _startup(home, 10 if quick else 30)
        reps = 30 if quick else 200
        out += _latency("nothing serves the home", home, reps, target_p50=100, target_p99=100)
        with _serving(home, root / "run.log"):
            out += _latency("evstore run serves the home", home, reps, target_p50=5,
                            target_p99=20)
        with _no_signal(home):
            out += _latency("no signal (polling every 50 ms)", home, max(20, reps // 4))
    return out


# ---------------------------------------------------------------------- start-up


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def _startup(home: Path, reps: int) -> list[Result]:
    base = [sys.executable, "-c", "pass"]
    out = []
    at = [SCRIPT, "--home", str(home)]
    for label, cmd, limit in (("evstore get", [*at, "get", "dns"], 5.0),
                              ("evstore --version", [SCRIPT, "--version"], 8.0),
                              ("evstore --help", [SCRIPT, "--help"], 8.0),
                              ("evstore status", [*at, "status"], 8.0),
                              ("evstore status --json", [*at, "status", "--json"], 8.0),
                              ("evstore show dns", [*at, "show", "dns"], 8.0),
                              ("evstore show dns --json", [*at, "show", "dns", "--json"], 8.0)):
        _wall(cmd), _wall(base)  # warm the page cache
        ratios, walls, bases = [], [], []
        for _ in range(reps):
            a, b = _wall(cmd), _wall(base)
            ratios.append(a / b)
            walls.append(a * 1000)
            bases.append(b * 1000)
        ratio = median(ratios)
        log(f"consume: {label} {median(walls):.1f} ms, python -c pass {median(bases):.1f} ms, "
            f"ratio {ratio:.2f}")
        out.append(Result(
            f"{label}: whole process", median(walls), "ms", walls,
            target=f"<= {limit:g}x python -c pass", baseline=f"python -c pass "
            f"{median(bases):.1f} ms", ratio=ratio, passed=ratio <= limit,
            note=f"{reps} pairs run back to back; the ratio is the median of the pairs'"))
    return out


# ---------------------------------------------------------------------- watch latency


def _latency(condition: str, home: Path, reps: int, *, target_p50: float | None = None,
             target_p99: float | None = None) -> list[Result]:
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    proc = subprocess.Popen([SCRIPT, "--home", str(home), "watch", "dns", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env={**os.environ})
    threading.Thread(target=_pump, args=(proc, lines), daemon=True).start()
    try:
        lines.get(timeout=TIMEOUT_S)  # the current settings
        ms = _measure(home, lines, reps)
    finally:
        nb.stop_procs([proc])
    p50, p99 = median(ms), nb.percentile(ms, 99)
    log(f"consume: watch, {condition}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    note = (f"{reps} commits one at a time; from the log's COMMIT returning to the watcher's "
            "line on its stdout pipe")
    return [
        Result(f"watch latency, {condition}: p50", p50, "ms", ms,
               target="report" if target_p50 is None else f"< {target_p50:g} ms",
               passed=None if target_p50 is None else p50 < target_p50, note=note),
        Result(f"watch latency, {condition}: p99", p99, "ms", ms,
               target="report" if target_p99 is None else f"< {target_p99:g} ms",
               passed=None if target_p99 is None else p99 < target_p99),
    ]


def _pump(proc: subprocess.Popen[bytes], lines: queue.Queue[tuple[float, str]]) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        lines.put((time.perf_counter(), raw.decode()))


# The committer runs in its own process, so that its work after COMMIT (the commit's summary)
# never holds this process's GIL while the watcher's line is timed. Both read CLOCK_MONOTONIC
# (time.perf_counter on Linux), which all processes share.
COMMITTER = """
import sys, time
from pathlib import Path
from evstore.ops import settings
from evstore.ops.node import open_node
with open_node(Path(sys.argv[1])) as node:
    mode = "machine:" + node.mid
    stamps = []
    announce = node.log._announce  # called by the log right after its COMMIT returned
    def stamped(changed):
        stamps.append(time.perf_counter())
        announce(changed)
    node.log._announce = stamped
    for line in sys.stdin:
        server = line.strip()
        settings.commit_set(node, "admin", mode, "dns", ['servers=["%s"]' % server])
        print(repr(stamps[-1]), flush=True)
"""


def _measure(home: Path, lines: queue.Queue[tuple[float, str]], reps: int) -> list[float]:
    ms = []
    committer = subprocess.Popen([sys.executable, "-c", COMMITTER, str(home)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert committer.stdin is not None and committer.stdout is not None
    try:
        for i in range(reps):
            server = f"10.8.{i // 250}.{i % 250}"
            committer.stdin.write(server + "\n")
            committer.stdin.flush()
            while True:
                at, line = lines.get(timeout=TIMEOUT_S)
                if json.loads(line)["settings"] == {"servers": [server]}:
                    break
            done = float(committer.stdout.readline())
            ms.append((at - done) * 1000)
            time.sleep(0.01)
    finally:
        committer.stdin.close()
        committer.wait(timeout=30)
    return ms


@contextmanager
def _serving(home: Path, log_path: Path) -> Iterator[None]:
    with open(log_path, "ab") as f:
        proc = subprocess.Popen([SCRIPT, "--home", str(home), "run"], stdout=f,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "EVSTORE_PASSPHRASE": nb.PASS})
    try:
        nb.wait_until("the node serves", lambda: b"serving" in log_path.read_bytes(), 60, 0.1)
        yield
    finally:
        nb.stop_procs([proc])


@contextmanager
def _no_signal(home: Path) -> Iterator[None]:
    """Listeners cannot register (their folder is a file): every watcher polls."""
    folder = home / ".notify"
    for entry in folder.iterdir() if folder.is_dir() else []:
        entry.unlink()
    if folder.is_dir():
        folder.rmdir()
    folder.write_text("")
    try:
        yield
    finally:
        folder.unlink()
