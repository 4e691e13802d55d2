"""``/metrics`` in the Prometheus text format (``evstore run --metrics``, ``evstore gui --metrics``).

Theory of operation
-------------------
Nothing is sampled in the background. A scrape reads a snapshot of the home (``read_figures``,
in a worker thread: through the serving node's own database limiter when a node serves, on a
fresh connection of its own for ``gui``), adds what only the node knows in memory (which links
are up, their round-trip times, the apply-lag histogram it keeps), and hands the lot to a
``prometheus_client`` collector that exists for that one scrape. ``generate_latest`` of the
library writes the text, so the format is the library's, not ours.

The HTTP side is a tiny HTTP/1.0 responder on a trio listener bound to the host given (never
every interface unless asked): ``GET /metrics`` answers, anything else is a 404, and each
connection closes after one answer. A request must arrive within a few seconds and fit in a
few kilobytes.

Metric names are the contract's (docs/production.md lists them with their meaning).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from evstore.core.errors import OperationalError
from evstore.core.events import Event
from evstore.ops.node import DB_NAME, Node, now_ms
from evstore.storage import figures as counts
from evstore.storage import views
from evstore.storage.connect import open_db

__all__ = ["AlertTotals", "ApplyLag", "Figures", "home_source", "node_source", "read_figures", "render",
           "serve_metrics"]

log = logging.getLogger("evstore.metrics")

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
               300.0)
MAX_REQUEST = 8192
REQUEST_TIMEOUT = 5.0


@dataclass
class Figures:
    """One scrape's reading of the home (and of the node's memory, when a node serves)."""

    events: dict[str, int] = field(default_factory=dict)  # origin (hostname) -> events held
    held: int = 0
    pending: int = 0
    forks: int = 0
    invalid: int = 0
    alerts: dict[str, int] = field(default_factory=dict)  # kind -> alerts raised so far
    peers: dict[str, bool] = field(default_factory=dict)  # peer hostname -> link up
    rtt: dict[str, float] = field(default_factory=dict)  # peer hostname -> seconds


class ApplyLag:
    """From an event's commit time (its wall clock) to its being applied on this node."""

    def __init__(self) -> None:
        self.histogram = Histogram("evstore_apply_lag_seconds",
                                   "Seconds from a commit on its origin to its being applied here",
                                   buckets=LAG_BUCKETS, registry=None)

    def observe(self, applied: Sequence[Event], at_ms: int | None = None) -> None:
        now = now_ms() if at_ms is None else at_ms
        for ev in applied:
            self.histogram.observe(max(0, now - ev.wall) / 1000)


class AlertTotals:
    """Alerts raised so far per kind, never going down within this process.

    The ``alerts`` table keeps only the newest rows (storage/alerts.py), so a count per kind
    may shrink when old rows are trimmed: a counter must not. Each scrape adds what a kind's
    count grew by since the last scrape (a trim that removes rows of a kind while new ones
    arrive under-counts; the figure never goes back)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.totals: dict[str, int] = {}

    def update(self, counts: dict[str, int]) -> dict[str, int]:
        for kind, n in counts.items():
            before = self.last.get(kind)
            grown = n if before is None else max(0, n - before)
            self.totals[kind] = self.totals.get(kind, 0) + grown
        self.last = dict(counts)
        return dict(self.totals)


def read_figures(node: Node) -> Figures:
    """The figures the database holds (run it in the thread that owns ``node.conn``)."""
    conn = node.conn
    st = node.structure()
    names: dict[str, str] = {}
    for m in st.machines.values():
        for key in (m.mid, m.key):
            if key:
                names[key] = m.hostname
    names.setdefault(node.origin, node.identity().hostname)
    events: Counter[str] = Counter()
    for origin, n in counts.events_per_origin(conn).items():
        events[names.get(origin, origin[:16])] += n
    # inadmissible events, kept and applied nowhere (storage.views.invalid_count, schema 9)
    invalid = getattr(views, "invalid_count", None)
    return Figures(
        events=dict(events),
        held=counts.held_count(conn),
        pending=node.log.pending_count(),
        forks=counts.forks_count(conn),
        invalid=int(invalid(conn)) if callable(invalid) else 0,
        alerts=counts.alerts_per_kind(conn),
        peers={p["hostname"]: p["state"] == "up" for p in node.peers(st)},
    )


class _Snapshot(Collector):
    """Yields one scrape's figures as metric families."""

    def __init__(self, figures: Figures, lag: ApplyLag | None) -> None:
        self.figures = figures
        self.lag = lag

    def collect(self) -> Iterable[Any]:
        f = self.figures
        up = GaugeMetricFamily("evstore_peer_up", "1 while the link to this peer is up",
                               labels=["peer"])
        for peer, is_up in sorted(f.peers.items()):
            up.add_metric([peer], 1.0 if is_up else 0.0)
        yield up
        events = GaugeMetricFamily("evstore_events", "Events held here, per origin",
                                   labels=["origin"])
        for origin, n in sorted(f.events.items()):
            events.add_metric([origin], n)
        yield events
        yield GaugeMetricFamily("evstore_held_events",
                                "Events held back until local time reaches their clock",
                                value=f.held)
        yield GaugeMetricFamily("evstore_pending_events",
                                "Events waiting for a predecessor", value=f.pending)
        yield GaugeMetricFamily("evstore_forks", "Forks (two events at one origin and seq) found",
                                value=f.forks)
        yield GaugeMetricFamily("evstore_invalid_events",
                                "Validly signed events kept as evidence and applied nowhere",
                                value=f.invalid)
        alerts = CounterMetricFamily("evstore_alerts", "Alerts raised on this home, per kind",
                                     labels=["kind"])
        for kind, n in sorted(f.alerts.items()):
            alerts.add_metric([kind], n)
        yield alerts
        rtt = GaugeMetricFamily("evstore_link_rtt_seconds",
                                "Round-trip time of the last ping on each link", labels=["peer"])
        for peer, seconds in sorted(f.rtt.items()):
            rtt.add_metric([peer], seconds)
        yield rtt
        if self.lag is not None:
            yield from self.lag.histogram.collect()


def render(figures: Figures, lag: ApplyLag | None = None) -> bytes:
    """The Prometheus text of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(figures, lag))
    return generate_latest(registry)


# ---------------------------------------------------------------------- sources of a scrape

Source = Callable[[], Awaitable[bytes]]


def node_source(handle: Any, lag: ApplyLag) -> Source:
    """Scrapes of a serving node (``handle`` is its ``NodeHandle``): the database through the
    node's limiter, the links from its memory."""

    alerts = AlertTotals()

    async def scrape() -> bytes:
        rt = handle.runtime
        if rt is None:
            raise OperationalError("the node is not serving yet")
        figures = await rt.db(read_figures, rt.node)
        figures.alerts = alerts.update(figures.alerts)
        members = rt.view.members
        for mid, state in list(rt.mesh.links.items()):
            m = members.get(mid)
            if m is None:
                continue
            figures.peers[m.hostname] = bool(state.up)
            if state.up and state.rtt_ms is not None:
                figures.rtt[m.hostname] = state.rtt_ms / 1000
        for m in members.values():  # a member with no link yet is down
            if not m.detached:
                figures.peers.setdefault(m.hostname, False)
        return render(figures, lag)

    return scrape


def home_source(home: Path) -> Source:
    """Scrapes of a home that this process does not serve (``evstore gui``): a connection of
    its own per scrape, in a worker thread; link states as the serving node last wrote them."""
    limiter = trio.CapacityLimiter(1)
    alerts = AlertTotals()

    def read() -> Figures:
        conn = open_db(home / DB_NAME)
        try:
            return read_figures(Node(home, conn))
        finally:
            conn.close()

    async def scrape() -> bytes:
        figures = await trio.to_thread.run_sync(read, limiter=limiter)
        figures.alerts = alerts.update(figures.alerts)
        return render(figures)

    return scrape


# ---------------------------------------------------------------------- HTTP


async def serve_metrics(host: str, port: int, source: Source,
                        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                        ) -> None:
    """Answer ``GET /metrics`` on ``host:port`` until cancelled; ``started`` gets the URLs."""
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as e:
        raise OperationalError(f"cannot serve metrics on {host}:{port}: {e.strerror or e}; is "
                               "another program using that port?") from None
    urls = []
    for lst in listeners:
        h, p = lst.socket.getsockname()[:2]
        urls.append(f"http://{f'[{h}]' if ':' in h else h}:{p}/metrics")
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, _handler(source), listeners)
        task_status.started(urls)


def _handler(source: Source) -> Callable[[trio.SocketStream], Awaitable[None]]:
    async def handle(stream: trio.SocketStream) -> None:
        try:
            async with stream:
                with trio.move_on_after(REQUEST_TIMEOUT):
                    await _answer(stream, source)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    return handle


async def _answer(stream: trio.SocketStream, source: Source) -> None:
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            return
        data += chunk
        if len(data) > MAX_REQUEST:
            await _send(stream, 431, "text/plain", b"request too large\n")
            return
    parts = data.split(b"\r\n", 1)[0].split(b"\n", 1)[0].split()
    if len(parts) < 2 or parts[0] not in (b"GET", b"HEAD"):
        await _send(stream, 405, "text/plain", b"only GET /metrics\n")
        return
    if parts[1].split(b"?", 1)[0] not in (b"/metrics", b"/metrics/"):
        await _send(stream, 404, "text/plain", b"not found: try /metrics\n")
        return
    try:
        body = await source()
    except Exception as exc:  # a scrape must never stop the node; the reason goes to the log
        log.warning("metrics scrape failed: %s", exc)
        await _send(stream, 503, "text/plain", b"metrics unavailable\n")
        return
    await _send(stream, 200, CONTENT_TYPE_LATEST, b"" if parts[0] == b"HEAD" else body,
                length=len(body))


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}


async def _send(stream: trio.SocketStream, code: int, ctype: str, body: bytes,
                length: int | None = None) -> None:
    head = (f"HTTP/1.0 {code} {_REASONS[code]}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n"
            "Connection: close\r\n\r\n").encode()
    await stream.send_all(head + body)
