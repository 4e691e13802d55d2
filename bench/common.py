"""What every benchmark module shares: the Result record, timing helpers, machine details.

A benchmark module exposes ``run(quick: bool) -> list[Result]``. Each Result is the *median*
of several runs (``runs`` keeps them all, for the spread), optionally with the raw limit it is
compared with (``baseline``) and the ratio to it, the target as text and whether it was met.
Ratios are computed per repetition from a measurement and its baseline taken back to back, so
that a machine shared with other work skews both sides alike; the reported ratio is the median
of those per-repetition ratios.

Databases go to a temporary directory under ``$EVSTORE_BENCH_DIR`` (default: the system temp
dir), so the disk that is measured can be chosen; ``machine_info`` says which one it was.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nacl

_START = time.perf_counter()


@dataclass
class Result:
    """One benchmark figure: the median of ``runs``, with its target and verdict."""

    name: str
    value: float
    unit: str
    runs: list[float] = field(default_factory=list)
    target: str = ""
    baseline: str = ""
    ratio: float | None = None
    ratio_unit: str = "x"
    passed: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: ""}[self.passed]


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def spread(xs: list[float]) -> str:
    """``min-max`` of the runs, in the same unit as the median."""
    if len(xs) < 2:
        return ""
    return f"{fmt(min(xs))}-{fmt(max(xs))}"


def fmt(x: float) -> str:
    """A number with about three significant digits, no exponent."""
    if x != x:  # NaN
        return "n/a"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call of ``fn``, in seconds."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def repeat(fn: Callable[[], float], times: int) -> list[float]:
    """Run ``fn`` (which returns one measurement) ``times`` times."""
    return [fn() for _ in range(times)]


def log(msg: str) -> None:
    """Progress on stderr, stamped with the time since start (stdout holds the results)."""
    print(f"[{time.perf_counter() - _START:7.1f}s] {msg}", file=sys.stderr, flush=True)


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A fresh directory for benchmark databases, removed afterwards."""
    base = os.environ.get("EVSTORE_BENCH_DIR") or None
    with tempfile.TemporaryDirectory(prefix=f"evstore-bench-{prefix}-", dir=base) as d:
        yield Path(d)


# ---------------------------------------------------------------------- the machine


def _cpuinfo_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_mhz() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return f"{float(line.split(':', 1)[1]):.0f} MHz"
    except (OSError, ValueError):
        pass
    return ""


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _mount_of(path: Path) -> tuple[str, str, str]:
    """(device, mount point, filesystem) holding ``path``, from /proc/mounts."""
    best = ("unknown", "/", "unknown")
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return best
    target = str(path.resolve())
    for line in lines:
        dev, mnt, fs = line.split()[:3]
        inside = target == mnt or target.startswith(mnt.rstrip("/") + "/")
        if inside and len(mnt) >= len(best[1]):
            best = (dev, mnt, fs)
    return best


def _rotational(dev: str) -> str:
    name = Path(dev).name
    flag = Path(f"/sys/block/{name}/queue/rotational")
    if not flag.exists():
        return ""
    return "rotational" if flag.read_text().strip() == "1" else "non-rotational"


def disk_info() -> str:
    """Where the benchmark databases live: device, filesystem, and what the kernel says of it."""
    where = Path(os.environ.get("EVSTORE_BENCH_DIR") or tempfile.gettempdir())
    dev, mnt, fs = _mount_of(where)
    kind = _rotational(dev)
    virtual = " (virtio: a virtual disk)" if Path(dev).name.startswith("vd") else ""
    flags = f", kernel reports {kind}" if kind else ""
    return f"{where} on {dev} ({fs}, mounted at {mnt}){virtual}{flags}"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was besides us."""
    if not hasattr(os, "getloadavg"):
        return "unknown"
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info() -> dict[str, str]:
    """The facts a reader needs to compare these figures with their own."""
    physical = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = physical
    return {
        "cpu": f"{_cpuinfo_model()} {_cpu_mhz()}".strip(),
        "cores": f"{physical} logical, {usable} usable by this process",
        "ram": _ram(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": f"{sqlite3.sqlite_version} (Python sqlite3 module)",
        "pynacl": f"{nacl.__version__} (bundled libsodium)",
        "disk": disk_info(),
        "load average at start (1, 5, 15 min)": load_average(),
    }
