"""A connection flood, as one hostile process makes it (run by tests/net/test_flood.py).

    python flooder.py COUNT SOURCE[,SOURCE...] HOST:PORT [HOST:PORT...]

Holds COUNT idle TCP connections open to each target, spread over the given source addresses
(127.x.y.z: the client side is bound to each in turn), and opens a new one whenever the
target closes one, so the count is kept up for as long as the flooder runs. It never sends a
byte. After the first full round it prints ``ready`` (and the number it holds every second)
on stdout. Stopped by SIGTERM (the test signals it by PID).
"""

from __future__ import annotations

import selectors
import signal
import socket
import sys
import time


def _connect(target: tuple[str, int], source: str) -> socket.socket | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.bind((source, 0))
        s.connect(target)
    except OSError:
        s.close()
        return None
    s.setblocking(False)
    return s


def main(argv: list[str]) -> int:
    count = int(argv[0])
    sources = argv[1].split(",")
    targets = []
    for t in argv[2:]:
        host, port = t.rsplit(":", 1)
        targets.append((host, int(port)))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel = selectors.DefaultSelector()
    slots: list[tuple[int, int]] = [(t, i) for t in range(len(targets)) for i in range(count)]
    held: dict[tuple[int, int], socket.socket] = {}
    turn = 0
    ready = False
    last_report = 0.0
    while True:
        for slot in slots:
            if slot not in held:
                s = _connect(targets[slot[0]], sources[turn % len(sources)])
                turn += 1
                if s is not None:
                    held[slot] = s
                    sel.register(s, selectors.EVENT_READ, slot)
        if not ready:
            print("ready", flush=True)
            ready = True
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:  # closed by the target: open another one
                sel.unregister(s)
                s.close()
                held.pop(key.data, None)
        now = time.monotonic()
        if now - last_report > 1.0:
            print(f"holding {len(held)}", flush=True)
            last_report = now


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
