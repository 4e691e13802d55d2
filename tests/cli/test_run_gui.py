"""`evstore run --gui`: the CLI composes the node and the web pages (evstore.net never
imports evstore.web), and both answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from evstore.ops.node import init_home
from tests.net.cluster_helpers import free_port


def test_run_gui_serves_the_pages_beside_the_node(tmp_path: Path) -> None:
    home = tmp_path / "h"
    init_home(home, hostname="g1", passphrase="pw", listen=f"127.0.0.1:{free_port()}")
    gui = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from evstore_cli.app import main; main()", "--home", str(home),
         "run", "--gui", gui, "--ping-interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while "web pages at" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "run exited before serving"
        assert f"web pages at http://{gui}" in line, line
        with urllib.request.urlopen(f"http://{gui}/login", timeout=10) as page:
            assert page.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
