"""``evstore run`` under systemd's ``Type=notify``: READY=1 once its ports are bound, STOPPING=1
at SIGTERM, told through a datagram socket this test creates as ``NOTIFY_SOCKET`` (a path,
and an abstract name); and the unit files in contrib/systemd."""

from __future__ import annotations

import configparser
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evstore.ops import logs, systemd
from evstore.ops.node import init_home
from tests.net.cluster_helpers import PASS, free_port

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "contrib" / "systemd"


def _receive(sock: socket.socket, timeout: float) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def _serve_and_stop(tmp_path: Path, address: str, bind_to: str, *extra: str) -> None:
    home = tmp_path / "n"
    init_home(home, hostname="n", passphrase=PASS, listen=f"127.0.0.1:{free_port()}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(bind_to)
        out = (tmp_path / "run.log").open("wb")
        err = (tmp_path / "run.err").open("wb")
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "evstore_cli.app", "--home", str(home), "run", *extra],
            stdout=out, stderr=err, env={**os.environ, "NOTIFY_SOCKET": address})
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
            err.close()


def test_ready_and_stopping_on_a_socket_path(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    _serve_and_stop(tmp_path, path, path)


def test_ready_and_stopping_on_an_abstract_socket_with_json_logs(tmp_path: Path) -> None:
    name = f"evstore-test-notify-{os.getpid()}-{time.monotonic_ns()}"
    _serve_and_stop(tmp_path, "@" + name, "\0" + name, "--log-format", "json")
    lines = (tmp_path / "run.err").read_text().splitlines()
    assert lines, "the node logs the signal it stopped on"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for r in records:
        assert {"time", "level", "logger", "message"} <= set(r)
    assert any("signal" in r["message"] and r["level"] == "warning" for r in records)


def test_json_log_lines_carry_fields_and_hide_secrets() -> None:
    stream = io.StringIO()
    logs.setup("json", logging.INFO, stream)
    try:
        logging.getLogger("evstore.test").warning(
            "link to %s failed", "b", extra={"peer": "b", "passphrase": "hunter2",
                                            "session_token": "abc"})
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("evstore.test").exception("it broke")
    finally:
        logs.setup("text", logging.WARNING, sys.stderr)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "link to b failed" and first["level"] == "warning"
    assert first["logger"] == "evstore.test" and first["peer"] == "b"
    assert first["time"].endswith("Z")
    assert first["passphrase"] == "[redacted]" and first["session_token"] == "[redacted]"
    assert "hunter2" not in stream.getvalue()
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]


def test_bad_log_format_is_bad_usage(tmp_path: Path) -> None:
    home = tmp_path / "n"
    init_home(home, hostname="n", passphrase=PASS, listen=f"127.0.0.1:{free_port()}")
    done = subprocess.run([sys.executable, "-m", "evstore_cli.app", "--home", str(home), "run",
                           "--log-format", "xml"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2 and "text or json" in done.stderr


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


def test_gui_says_ready_and_stopping(tmp_path: Path) -> None:
    home = tmp_path / "g"
    init_home(home, hostname="g", passphrase=PASS, listen=f"127.0.0.1:{free_port()}")
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "evstore_cli.app", "--home", str(home), "gui", "--listen",
             f"127.0.0.1:{free_port()}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "NOTIFY_SOCKET": path})
        try:
            assert _receive(sock, 30) == "READY=1"
            proc.send_signal(signal.SIGTERM)
            assert _receive(sock, 15) == "STOPPING=1"
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
