"""``evstore gui``: serve the web administration pages of a home."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from evstore.core.errors import EvstoreError
from evstore_cli import output
from evstore_cli.common import HomeOpt, need
from evstore_cli.global_options import GLOBAL
from evstore_cli.output import handled

DEFAULT_LISTEN = "127.0.0.1:8080"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(name="gui")(gui)


@handled
def gui(
    listen: Annotated[str, typer.Option(
        "--listen", help="HOST:PORT to serve on (port 0: any free port). Never all interfaces "
        "unless you ask, e.g. 0.0.0.0:8080.")] = DEFAULT_LISTEN,
    metrics: Annotated[str | None, typer.Option(
        "--metrics", help="Also serve /metrics (Prometheus text format) on HOST:PORT.",
        show_default=False)] = None,
    tls_cert: Annotated[Path | None, typer.Option(
        "--tls-cert", help="Serve over HTTPS with this PEM certificate (with --tls-key); the "
        "session cookie is then Secure.", show_default=False)] = None,
    tls_key: Annotated[Path | None, typer.Option(
        "--tls-key", help="The certificate's PEM private key (with --tls-cert).",
        show_default=False)] = None,
    home: HomeOpt = None,
) -> None:
    """Serve the web pages for this home until interrupted (SIGINT or SIGTERM)."""
    if (tls_cert is None) != (tls_key is None):
        from evstore.core.errors import InvalidInput

        raise InvalidInput("--tls-cert and --tls-key go together: give both (or neither)")
    tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    need("gui", "evstore gui")
    if metrics:
        need("metrics", "--metrics")
    import trio

    from evstore.ops.node import open_node, resolve_home

    where = resolve_home(home or GLOBAL.home)
    host, port = _listen(listen)
    metrics_at = _listen(metrics) if metrics else None
    with open_node(where) as node:  # refuse a folder that is not a home before binding
        from evstore.ops import access

        access.require(node, "gui")  # the seed's secondary box serves no pages
    from evstore.web.app import first_leaf

    try:
        trio.run(_serve, where, host, port, metrics_at, tls)
    except BaseExceptionGroup as group:
        err = first_leaf(group, EvstoreError)
        if err is None:
            raise
        raise err from None


def _listen(text: str) -> tuple[str, int]:
    """HOST:PORT as everywhere else, and HOST:0 for any free port (printed once bound)."""
    from evstore.ops.node import parse_hostport

    if text.endswith(":0"):
        return parse_hostport(text[:-2] + ":1")[0], 0
    return parse_hostport(text)


async def _serve(home: Path, host: str, port: int,
                 metrics: tuple[str, int] | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
    from functools import partial

    import trio

    from evstore.ops import systemd
    from evstore.web import serve_gui

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(partial(serve_gui, home, host, port, tls=tls))
            extra = ""
            if metrics is not None:
                from evstore.net.metrics import home_source, serve_metrics

                scrape = await nursery.start(serve_metrics, *metrics, home_source(home))
                extra = f"; metrics at {', '.join(scrape)}"
            output.say(f"serving the pages of {home} at {', '.join(urls)}{extra} (Ctrl-C to stop)")
            sys.stdout.flush()
            systemd.notify("READY=1")
            async for _ in signals:
                break
            systemd.notify("STOPPING=1")
            nursery.cancel_scope.cancel()
    output.say("stopped")
