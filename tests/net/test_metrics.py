"""``/metrics`` of real ``evstore run --metrics`` processes on a 3-machine cluster, read with
prometheus_client's own parser; and the pieces (figures, the HTTP responder) on their own."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import trio
from prometheus_client.parser import text_string_to_metric_families

from evstore.net import metrics
from evstore.ops import cluster as cluster_ops
from evstore.ops.node import init_home, open_node
from tests.net.cluster_helpers import free_port
from tests.net.test_multiprocess import EVSTORE, PASS, Machine, evstore, partial_process, until

NAMES = ("evstore_peer_up", "evstore_events", "evstore_held_events", "evstore_pending_events",
         "evstore_forks", "evstore_invalid_events", "evstore_alerts",
         "evstore_apply_lag_seconds", "evstore_link_rtt_seconds")


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    """A plain HTTP/1.0 GET (blocking); the status and the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def port_in(log: Path) -> int:
    """The port of the metrics URL a serving process printed."""
    url = log.read_text().split("metrics at ", 1)[1].split()[0]
    return int(url.rsplit(":", 1)[1].split("/")[0])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def families(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text)}


def peer_up(port: int, peer: str) -> float | None:
    code, body = scrape(port)
    assert code == 200
    return samples(body).get(("evstore_peer_up", (("peer", peer),)))


async def test_metrics_of_a_three_process_cluster(tmp_path: Path) -> None:
    a, b, c = (Machine(tmp_path, n) for n in ("a", "b", "c"))
    ports: dict[str, int] = {}
    passfile = tmp_path / "pass.txt"
    passfile.write_text(PASS + "\n")
    for m in (a, b, c):
        await evstore(m, "init", "--hostname", m.name, "--listen", f"127.0.0.1:{m.port}",
                      "--admin-passphrase-file", str(passfile))
    async with trio.open_nursery() as nursery:
        try:
            for m in (a, b, c):
                log = open(m.log, "ab")  # noqa: SIM115 (the child holds it)
                m.proc = await nursery.start(partial_process(
                    [*EVSTORE, "--home", str(m.home), "run", "--ping-interval", "0.5",
                     "--metrics", "127.0.0.1:0"], log))
                log.close()
                await until(f"{m.name} serves", lambda m=m: b"metrics at" in m.log.read_bytes(),
                            15)
                ports[m.name] = port_in(m.log)
            await evstore(a, "clusterconfig", "create", "fleet")
            fp = (await evstore(a, "clusterconfig", "fingerprint", "--json"))["fingerprint"]
            for m in (b, c):
                await evstore(m, "clusterconfig", "join", f"127.0.0.1:{a.port}",
                              "--fingerprint", fp, "--yes", "--json")
            await until("a sees b and c up", lambda: peer_up(ports["a"], "b") == 1
                        and peer_up(ports["a"], "c") == 1, 20)
            code, body = await trio.to_thread.run_sync(scrape, ports["a"])
            assert code == 200
            assert set(NAMES) <= families(body)
            got = samples(body)
            assert got[("evstore_events", (("origin", "a"),))] >= 1
            assert got[("evstore_invalid_events", ())] == 0
            assert got[("evstore_forks", ())] == 0

            await evstore(a, "set", "ntp", 'servers=["pool.example"]', "--mode", "cluster")
            await evstore(a, "commit", "-m", "ntp")
            await until("b applied a's commit (the lag histogram counts it)", lambda: samples(
                scrape(ports["b"])[1]).get(("evstore_apply_lag_seconds_count", ()), 0) >= 1, 15)
            await until("rtt of a's link to b is known", lambda: (
                "evstore_link_rtt_seconds", (("peer", "b"),)) in samples(scrape(ports["a"])[1]),
                10)

            assert c.proc is not None
            c.proc.send_signal(signal.SIGKILL)
            await c.proc.wait()
            c.proc = None
            await until("a reports c down", lambda: peer_up(ports["a"], "c") == 0, 15)
            assert peer_up(ports["a"], "b") == 1
            await until("the peer_down alert counts", lambda: samples(scrape(ports["a"])[1]).get(
                ("evstore_alerts_total", (("kind", "peer_down"),)), 0) >= 1, 15)
        finally:
            for m in (a, b, c):  # only what this test started, by PID
                if m.proc is not None and m.proc.returncode is None:
                    m.proc.kill()
            nursery.cancel_scope.cancel()


def test_figures_of_a_home_without_a_node(tmp_path: Path) -> None:
    home = tmp_path / "solo"
    init_home(home, hostname="solo", passphrase=PASS, listen=f"127.0.0.1:{free_port()}")
    with open_node(home) as node:
        cluster_ops.create(node, "admin", "one")
        figures = metrics.read_figures(node)
    assert figures.events == {"solo": figures.events["solo"]} and figures.events["solo"] >= 2
    assert (figures.held, figures.pending, figures.forks, figures.invalid) == (0, 0, 0, 0)
    assert figures.peers == {}
    text = metrics.render(figures).decode()
    assert {"evstore_events", "evstore_held_events", "evstore_invalid_events"} <= families(text)


async def test_the_responder_answers_metrics_only(tmp_path: Path) -> None:
    home = tmp_path / "solo"
    init_home(home, hostname="solo", passphrase=PASS, listen=f"127.0.0.1:{free_port()}")
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(metrics.serve_metrics, "127.0.0.1", 0,
                                   metrics.home_source(home))
        assert len(urls) == 1 and urls[0].startswith("http://127.0.0.1:")
        port = int(urls[0].rsplit(":", 1)[1].split("/")[0])
        code, body = await trio.to_thread.run_sync(scrape, port)
        assert code == 200 and "evstore_events" in families(body)
        code, _ = await trio.to_thread.run_sync(scrape, port, "/other")
        assert code == 404
        nursery.cancel_scope.cancel()


async def test_gui_metrics(tmp_path: Path) -> None:
    home = tmp_path / "g"
    init_home(home, hostname="g", passphrase=PASS, listen=f"127.0.0.1:{free_port()}")
    log = tmp_path / "gui.log"
    async with trio.open_nursery() as nursery:
        with open(log, "ab") as out:
            proc = await nursery.start(partial_process(
                [*EVSTORE, "--home", str(home), "gui", "--listen", f"127.0.0.1:{free_port()}",
                 "--metrics", "127.0.0.1:0"], out))
        try:
            await until("gui serves", lambda: b"metrics at" in log.read_bytes(), 15)
            port = port_in(log)
            code, body = await trio.to_thread.run_sync(scrape, port)
            assert code == 200 and samples(body)[("evstore_events", (("origin", "g"),))] >= 1
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            with trio.fail_after(10):
                assert await proc.wait() == 0, log.read_text()
    assert os.path.exists(log)


def test_alert_totals_never_go_down() -> None:
    totals = metrics.AlertTotals()
    assert totals.update({"peer_down": 3}) == {"peer_down": 3}
    assert totals.update({"peer_down": 5, "fork": 1}) == {"peer_down": 5, "fork": 1}
    # old rows trimmed from the bounded table: the counter stays, then grows again
    assert totals.update({"peer_down": 2, "fork": 1}) == {"peer_down": 5, "fork": 1}
    assert totals.update({"peer_down": 4, "fork": 1}) == {"peer_down": 7, "fork": 1}
