"""``evstore demo``: a real 3-node cluster on loopback, walked through and stopped.

Run as an operator runs it (its own process); its last lines say the cluster converged and
show the digest, and no process it started is left running.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_runs_a_real_cluster_and_leaves_nothing_running() -> None:
    env = {k: v for k, v in os.environ.items() if k != "EVSTORE_HOME"}
    done = subprocess.run([sys.executable, "-m", "evstore_cli.app", "demo"], capture_output=True,
                          text=True, timeout=180, env=env, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == "The cluster converged: all three machines hold the same configuration."
    assert re.fullmatch(r"state digest: [0-9a-f]{64}", lines[-1])
    pids = [int(p) for p in re.findall(r"`evstore run` for \w+ \(PID (\d+)", done.stdout)]
    assert len(pids) == 3
    assert not [pid for pid in pids if _alive(pid)]
    assert "No inconsistencies found." in done.stdout
    shown = [shlex.split(ln) for ln in lines if ln.startswith("evstore --home ")]
    west = next(a[3:] for a in shown if "group:West" in a and "set" in a)
    assert west == ["set", "dns", 'servers=["10.2.2.2"]', "--mode", "group:West"]
    assert "export EVSTORE_PASSPHRASE='demo passphrase'" in done.stdout
    for step in ("clusterconfig create", "clusterconfig join", "addgroup", "--mode group:West",
                 "clusterconfig disconnect", "clusterconfig reconnect", "clustercheck"):
        assert step in done.stdout
