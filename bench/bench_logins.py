"""Issue 15, item 3: an authenticated page while 16 clients spray logins. Target: at most 2x
its latency when idle.

    python -m bench.bench_logins [--quick]       # this module alone
    python -m bench --only logins [--quick]      # with the others' machinery

One home (``init`` with an admin passphrase, a cluster created), served by ``evstore gui`` in
its own process on a free loopback port. One logged-in client reads ``/status`` (the page
that does the most database work per request) over and over, first alone, then while 16
threads post logins with a new user name and a wrong passphrase each time, each thread from
its own loopback address (127.0.0.10 ...), as a small botnet would. The figure is the median
latency of the page in each phase; the ratio is spray over idle. How many of the spray's
attempts were checked (401) and how many refused unchecked by the backoff (429) is noted.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from bench.common import Result, log, median, workdir

TITLE = "web pages under a login spray (issue 15)"
EVSTORE = [sys.executable, "-m", "evstore_cli.app"]
PASS = "bench passphrase"
SPRAYERS = 16
PAGE = "/status"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    if m is None:
        raise RuntimeError("no CSRF token on the login page")
    return m.group(1)


def _login(client: httpx.Client, user: str, passphrase: str) -> int:
    token = _csrf(client.get("/login").text)
    res = client.post("/login", data={"csrf": token, "username": user,
                                      "passphrase": passphrase, "next": ""})
    return res.status_code


def _page_latencies(client: httpx.Client, seconds: float) -> list[float]:
    out: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        res = client.get(PAGE)
        if res.status_code != 200:
            raise RuntimeError(f"{PAGE} answered {res.status_code}")
        out.append(time.perf_counter() - t0)
    return out


def _spray(base: str, index: int, stop: threading.Event, counts: dict[int, int]) -> None:
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{10 + index}")
    with httpx.Client(base_url=base, transport=transport, timeout=30) as client:
        n = 0
        while not stop.is_set():
            try:
                code = _login(client, f"guess-{index}-{n}", "wrong")
            except httpx.HTTPError:
                code = -1
            counts[code] = counts.get(code, 0) + 1
            n += 1


def measure(home: Path, seconds: float) -> tuple[list[float], list[float], dict[int, int]]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([*EVSTORE, "--home", str(home), "gui", "--listen",
                               f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/login", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("evstore gui did not start") from None
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=30) as me:
            if _login(me, "admin", PASS) != 303:
                raise RuntimeError("could not log in")
            _page_latencies(me, 1.0)  # warm up
            idle = _page_latencies(me, seconds)
            # the sprayers run in a process of their own, so they do not share this one's GIL
            spray = subprocess.Popen([sys.executable, "-m", "bench.bench_logins", "--spray",
                                      base, "--seconds", str(seconds + 2)],
                                     stdout=subprocess.PIPE, text=True)
            time.sleep(2.0)  # the spray is under way
            sprayed = _page_latencies(me, seconds)
            out, _ = spray.communicate(timeout=120)
            counts = {int(k): int(v) for k, v in
                      (pair.split("=") for pair in out.split())}
        return idle, sprayed, counts
    finally:
        server.terminate()
        server.wait(30)


def run(quick: bool) -> list[Result]:
    seconds = 3.0 if quick else 15.0
    with workdir("logins") as tmp:
        home = tmp / "home"
        env = {**os.environ, "EVSTORE_PASSPHRASE": PASS}
        subprocess.run([*EVSTORE, "--home", str(home), "init", "--hostname", "bench1"],
                       check=True, env=env, capture_output=True)
        subprocess.run([*EVSTORE, "--home", str(home), "clusterconfig", "create", "benchco"],
                       check=True, env=env, capture_output=True)
        log(f"{PAGE} alone, then under a spray of {SPRAYERS} login clients, {seconds} s each")
        idle, sprayed, counts = measure(home, seconds)
    ratio = median(sprayed) / median(idle)
    attempts = sum(counts.values())
    note = (f"{len(idle)} requests idle, {len(sprayed)} under the spray; the spray made "
            f"{attempts} login attempts from {SPRAYERS} addresses: {counts.get(401, 0)} "
            f"checked and refused (401), {counts.get(429, 0)} refused unchecked by the "
            f"backoff (429), {counts.get(-1, 0)} errors")
    return [
        Result(f"{PAGE} latency, idle", median(idle) * 1000, "ms", [x * 1000 for x in idle],
               target="reference"),
        Result(f"{PAGE} latency, 16 clients spraying logins", median(sprayed) * 1000, "ms",
               [x * 1000 for x in sprayed], target="at most 2x idle",
               baseline=f"idle {median(idle) * 1000:.1f} ms", ratio=ratio,
               ratio_unit="x idle", passed=ratio <= 2.0, note=note),
    ]


def spray(base: str, seconds: float) -> None:
    """The sprayers (``--spray``): prints ``CODE=COUNT`` pairs when done."""
    stop = threading.Event()
    counts: dict[int, int] = {}
    threads = [threading.Thread(target=_spray, args=(base, i, stop, counts))
               for i in range(SPRAYERS)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(60)
    print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--spray", metavar="BASE_URL")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.spray:
        spray(args.spray, args.seconds)
        return
    for r in run(args.quick):
        print(f"{r.name}: {r.value:.1f} {r.unit}"
              + (f" ({r.ratio:.2f} {r.ratio_unit})" if r.ratio is not None else "")
              + (f" — {r.note}" if r.note else ""))


if __name__ == "__main__":
    main()
