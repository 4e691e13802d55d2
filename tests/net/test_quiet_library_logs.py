"""The network layer's log lines reach a terminal only where a program asks for them
(`evstore run` configures logging); a command such as `join` says what went wrong in its own
one line, and Python's last-resort handler prints nothing beside it (issue 17, item 20)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import logging, sys
import evstore.net.transport
logging.getLogger("evstore.net.transport").warning("closing link: handshake failed: x")
if sys.argv[1:] == ["configured"]:
    from evstore.ops.logs import setup
    setup()
    logging.getLogger("evstore.net.transport").warning("shown when configured")
"""


def test_no_log_line_on_stderr_unless_logging_is_configured() -> None:
    quiet = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                           check=True, timeout=60)
    assert quiet.stderr == ""
    loud = subprocess.run([sys.executable, "-c", SCRIPT, "configured"], capture_output=True,
                          text=True, check=True, timeout=60)
    assert "handshake failed" not in loud.stderr and "shown when configured" in loud.stderr
