"""Append events to one database until killed, printing each seq after ``append`` returned.

Usage: ``python crash_writer.py DBFILE NAME``. NAME picks a deterministic signing key, so a
restarted writer continues the same origin's chain. test_crash.py kills this process with
SIGKILL at random moments; every seq it printed must survive. Payload sizes vary (up to a few
pages) so some commits span several database pages.
"""

from __future__ import annotations

import hashlib
import sys
import time

import nacl.signing

from evstore.storage.connect import open_db
from evstore.storage.log import EventLog


def main(db_file: str, name: str) -> None:
    key = nacl.signing.SigningKey(hashlib.sha256(f"crash/{name}".encode()).digest())
    log = EventLog(open_db(db_file))
    started = log.first_seq(key.verify_key.encode().hex()) is not None
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        kind = "config.commit" if started else "node.init"
        n = log.count()
        event = log.append(
            key, user="crash", kind=kind, payload={"n": n, "pad": "x" * ((n * 7919) % 9000)},
            now_ms=time.time_ns() // 1_000_000,
        )
        started = True
        sys.stdout.write(f"{event.seq}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
