"""``evstore run`` under systemd's ``Type=notify``: READY=1 once its ports are bound, STOPPING=1
at SIGTERM, told through a datagram socket this test creates as ``NOTIFY_SOCKET`` (a path,
and an abstract name); and the unit files in contrib/systemd."""

from __future__ import annotations

import configparser
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evstore.ops import systemd
from evstore.ops.node import init_home
from tests.net.cluster_helpers import PASS, free_port

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "contrib" / "systemd"


def _receive(sock: socket.socket, timeout: float) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def _serve_and_stop(tmp_path: Path, address: str, bind_to: str) -> None:
    home = tmp_path / "n"
    init_home(home, hostname="n", passphrase=PASS, listen=f"127.0.0.1:{free_port()}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(bind_to)
        out = (tmp_path / "run.log").open("wb")
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "evstore_cli.app", "--home", str(home), "run"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "NOTIFY_SOCKET": address})
        try:
            assert _receive(sock, 30) == "READY=1"
            assert b"serving" in (tmp_path / "run.log").read_bytes()  # ports bound before
            proc.send_signal(signal.SIGTERM)
            assert _receive(sock, 15) == "STOPPING=1"
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()


def test_ready_and_stopping_on_a_socket_path(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    _serve_and_stop(tmp_path, path, path)


def test_ready_and_stopping_on_an_abstract_socket(tmp_path: Path) -> None:
    name = f"evstore-test-notify-{os.getpid()}-{time.monotonic_ns()}"
    _serve_and_stop(tmp_path, "@" + name, "\0" + name)


def test_no_notify_socket_sends_nothing_and_a_dead_one_is_not_fatal(tmp_path: Path) -> None:
    assert systemd.notify("READY=1", {}) is False
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "absent")}) is False
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": "relative/path"}) is False


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


@pytest.mark.parametrize("name", ["evstore.service", "evstore-gui.service",
                                  "evstore-render@.service"])
def test_units_are_hardened(name: str) -> None:
    unit = _unit(name)
    svc = unit["Service"]
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert svc["ProtectHome"] in ("yes", "read-only", "tmpfs")
    assert svc["PrivateTmp"] == "yes"
    assert "/var/lib/evstore" in svc["ReadWritePaths"]
    assert svc["User"] == "evstore"
    assert svc["ExecStart"].startswith("/usr/local/bin/evstore ")


def test_the_node_unit_is_type_notify() -> None:
    svc = _unit("evstore.service")["Service"]
    assert svc["Type"] == "notify"
    assert " run" in svc["ExecStart"]
    assert _unit("evstore-gui.service")["Service"]["Type"] == "notify"
    assert "render" in _unit("evstore-render@.service")["Service"]["ExecStart"]
