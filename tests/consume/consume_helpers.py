"""Helpers of the consumer tests: real homes, commits through the library, and the real
``evstore`` command in subprocesses (each started and stopped here, by PID)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from evstore.ops import settings
from evstore.ops.node import init_home, open_node

PASS = "consumer tests"
EVSTORE = [sys.executable, "-m", "evstore_cli.app"]


def make_home(root: Path, name: str) -> Path:
    home = root / name
    init_home(home, hostname=name, passphrase=PASS)
    return home


def commit(home: Path, section: str, *assignments: str) -> None:
    """One commit at this machine's mode, through the library (a real, durable commit)."""
    with open_node(home) as node:
        settings.commit_set(node, "admin", f"machine:{node.mid}", section, list(assignments))


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("EVSTORE_")}
    out["EVSTORE_PASSPHRASE"] = PASS
    return out


def run(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVSTORE, "--home", str(home), *args], capture_output=True,
                          text=True, env=env(), timeout=timeout, check=False)


class Lines:
    """A child's stdout, read line by line in a thread, waited on with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, pred: Callable[[list[str]], bool], timeout: float = 20.0,
                 what: str = "") -> list[str]:
        end = time.monotonic() + timeout
        with self.cond:
            while not pred(self.lines):
                left = end - time.monotonic()
                assert left > 0, f"{what or 'lines'} not within {timeout} s: {self.lines}"
                self.cond.wait(left)
            return list(self.lines)


class Child:
    """An ``evstore`` process of a test, stopped (by PID) when the test ends."""

    def __init__(self, home: Path, *args: str, **popen: Any) -> None:
        self.proc = subprocess.Popen(
            [*EVSTORE, "--home", str(home), *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env(), **popen)
        assert self.proc.stdout is not None
        self.out = Lines(self.proc.stdout)

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self, sig: int | None = None) -> int:
        if self.proc.returncode is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
        return self.proc.wait(20)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(20)


def until(pred: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"{what or 'condition'} not within {timeout} s"
        time.sleep(0.02)
