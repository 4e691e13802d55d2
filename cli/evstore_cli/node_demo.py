"""``evstore demo``: the seed's walk-through on a real 3-node cluster on loopback.

Each node is its own ``evstore run`` process with its own home in a temporary folder and its
own free port, inheriting the demo's environment. The administrator's commands run in this
process, exactly as the ``evstore`` command runs them, and are shown as typed. Everything
started is stopped by its PID, and the demo waits for every node to exit.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import typer

from evstore.core.errors import OperationalError
from evstore.ops.node import open_node
from evstore_cli import output

PASSPHRASE = "demo passphrase"
HOSTS = ("newyork", "losangeles", "chicago")
DEADLINE_S = 20.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], deadline_s: float = DEADLINE_S) -> float:
    """Poll ``check`` until it holds; the seconds it took. Gives up with a clear error."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > deadline_s:
            raise OperationalError(f"demo: {what} did not happen within {deadline_s:.0f} s")
        time.sleep(0.05)  # the demo polls real processes
    return time.monotonic() - start


class Demo:
    """One run of the walk-through (see the module docstring)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="evstore-demo-"))
        self.passfile = self.root / "passphrase.txt"
        self.homes = {h: self.root / h for h in HOSTS}
        self.ports = {h: free_port() for h in HOSTS}
        self.ccs_port = free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started = time.monotonic()

    # ------------------------------------------------------------------ plumbing

    def say(self, text: str = "") -> None:
        output.say(text)
        sys.stdout.flush()

    def cmd(self, host: str, *args: str, show: bool = True) -> int:
        """Run one ``evstore`` command on ``host``'s home, shown as it would be typed in bash
        (quoted: it works when pasted into another shell while the demo runs)."""
        from evstore_cli.app import app

        if show:
            self.say(self.shown(host, *args))
        full = ["--home", str(self.homes[host]), "--passphrase-file", str(self.passfile), *args]
        try:
            code = typer.main.get_command(app).main(full, prog_name="evstore",
                                                    standalone_mode=False)
        except click.ClickException as e:
            e.show()
            code = e.exit_code
        sys.stdout.flush()
        return int(code or 0)

    def shown(self, host: str, *args: str) -> str:
        return shlex.join(["evstore", "--home", str(self.homes[host]), *args])

    def must(self, host: str, *args: str) -> None:
        code = self.cmd(host, *args)
        if code != 0:
            raise OperationalError(f"demo: `evstore {' '.join(args)}` on {host} failed "
                                   f"(exit {code}); the nodes' logs are in {self.root}")

    def digest(self, host: str) -> str:
        with open_node(self.homes[host]) as node:
            return node.state_digest()

    def converged(self) -> bool:
        return len({self.digest(h) for h in HOSTS}) == 1

    # ------------------------------------------------------------------ nodes

    def start_node(self, host: str) -> None:
        log = open(self.root / f"{host}.log", "wb")  # noqa: SIM115 (closed by the child's end)
        proc = subprocess.Popen(
            [sys.executable, "-m", "evstore_cli.app", "--home", str(self.homes[host]), "run",
             "--ping-interval", "5"],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        log.close()
        self.procs[host] = proc
        wait_for(f"{host}'s node to listen", lambda: b"serving" in (
            self.root / f"{host}.log").read_bytes() or proc.poll() is not None)
        if proc.poll() is not None:
            raise OperationalError(f"demo: {host}'s node exited; see {self.root}/{host}.log")
        self.say(f"  started `evstore run` for {host} (PID {proc.pid}, port "
                 f"{self.ports[host]})")

    def stop_nodes(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for host, proc in self.procs.items():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.say(f"  {host}'s node (PID {proc.pid}) stopped")

    # ------------------------------------------------------------------ the walk-through

    def run(self) -> None:
        os.environ.pop("EVSTORE_HOME", None)
        self.passfile.write_text(PASSPHRASE + "\n")
        try:
            self.walk()
        finally:
            self.stop_nodes()
            shutil.rmtree(self.root, ignore_errors=True)
        digest = self.final_digest
        self.say(f"demo took {time.monotonic() - self.started:.1f} s; all nodes stopped.")
        self.say("The cluster converged: all three machines hold the same configuration.")
        self.say(f"state digest: {digest}")

    def walk(self) -> None:
        self.machines()
        self.create_and_join()
        self.groups()
        self.offline_change()
        self.final_digest = self.digest("newyork")

    def machines(self) -> None:
        self.say(f"== Three standalone machines, each with its own home under {self.root}")
        for host in HOSTS:
            extra = ["--ccs", f"127.0.0.1:{self.ccs_port}"] if host == "newyork" else []
            self.cmd(host, "init", "--hostname", host, "--serial", f"SN-{host.upper()}",
                     "--listen", f"127.0.0.1:{self.ports[host]}", "--admin-passphrase-file",
                     str(self.passfile), *extra, show=False)
            self.say(f"  {host}: admin port 127.0.0.1:{self.ports[host]}"
                     + (f", cluster-only port 127.0.0.1:{self.ccs_port}" if extra else ""))
        self.say("  each command below works when pasted into another shell while the demo runs, "
                 f"after: export EVSTORE_PASSPHRASE={shlex.quote(PASSPHRASE)}")
        self.say("== Each machine runs its node (`evstore run`), its own process")
        for host in HOSTS:
            self.start_node(host)

    def create_and_join(self) -> None:
        self.say("\n== Creating a cluster on newyork (takes effect at once, no commit)")
        self.must("newyork", "clusterconfig", "create", "americas")
        self.must("newyork", "clusterconfig", "fingerprint")
        with open_node(self.homes["newyork"]) as node:
            fp = node.fingerprint()
        self.say("\n== losangeles joins over newyork's admin port, checking its host key "
                 "fingerprint before sending the passphrase")
        t = time.monotonic()
        self.must("losangeles", "clusterconfig", "join", f"127.0.0.1:{self.ports['newyork']}",
                  "--fingerprint", fp, "--cluster-passphrase-file", str(self.passfile), "--yes")
        self.say(f"  (join took {time.monotonic() - t:.2f} s)")
        self.say("\n== chicago joins over the cluster-only port with a pre-shared key")
        with open_node(self.homes["chicago"]) as node:
            key, serial = node.origin, node.identity().serial
        self.must("chicago", "clusterconfig", "prepjoin", "print")
        self.must("newyork", "clusterconfig", "prepjoin", "new", "chicago", serial, key)
        self.must("newyork", "commit", "-m", "expect chicago")
        self.must("chicago", "clusterconfig", "join", f"127.0.0.1:{self.ccs_port}", "--ccs",
                  "--fingerprint", fp, "--yes")
        took = wait_for("the three machines to agree", self.converged)
        self.say(f"  all three machines hold the same state ({took:.2f} s after the join)")
        self.must("newyork", "clusterconfig", "list")

    def groups(self) -> None:
        self.say("\n== A group for the west coast, and a group override of DNS")
        self.must("newyork", "clusterconfig", "addgroup", "West")
        self.must("newyork", "clusterconfig", "setgroup", "losangeles", "West")
        self.must("newyork", "set", "dns", 'servers=["10.1.1.1"]', "--mode", "cluster")
        self.must("newyork", "set", "dns", 'servers=["10.2.2.2"]', "--mode", "group:West")
        t = time.monotonic()
        self.must("newyork", "commit", "-m", "DNS: cluster default, West override")
        took = wait_for("the commit to reach every machine", self.converged)
        self.say(f"  the commit reached every machine in {time.monotonic() - t:.2f} s "
                 f"({took:.2f} s after the command returned)")
        self.must("losangeles", "show", "dns", "--effective", "--machine", "losangeles")
        self.must("newyork", "commitdetail")

    def offline_change(self) -> None:
        self.say("\n== chicago is disconnected (as for an upgrade); both sides change settings")
        self.must("newyork", "clusterconfig", "disconnect", "chicago")
        self.must("newyork", "set", "ntp", 'servers=["ntp.newyork.example"]', "--mode", "cluster")
        self.must("newyork", "commit", "-m", "NTP while chicago is away")
        self.must("chicago", "set", "timezone", "zone=America/Chicago", "--mode", "cluster")
        self.must("chicago", "commit", "-m", "timezone, made on the detached machine")
        same = self.digest("newyork") == self.digest("chicago")
        self.say(f"  newyork and chicago now differ: {not same}")
        self.say("\n== chicago is reconnected: anti-entropy merges both sides")
        t = time.monotonic()
        self.must("newyork", "clusterconfig", "reconnect", "chicago")
        wait_for("the cluster to converge", self.converged, 10.0)
        self.say(f"  converged {time.monotonic() - t:.2f} s after reconnect")
        self.must("newyork", "clustercheck")
        self.must("chicago", "status")


