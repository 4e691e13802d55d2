"""The ASGI application and its routes, and serving it under trio with Hypercorn.

URLs carry the mode, as the seed's pages do: ``/cluster/SECTION``, ``/group/NAME/SECTION``,
``/machine/HOST/SECTION`` (a machine's serial number works in place of its hostname); a mode's
own page lists its sections. POSTs to ``…/SECTION/ACTION`` stage changes; ``/changes`` reviews,
previews and commits them. ``/commits/COMMIT`` details one commit; POSTs to
``/clustercheck/resolve`` and ``/clustercheck/ignore`` act on superseded changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

import evstore.web.auth_pages as auth_pages
import evstore.web.changes_pages as changes_pages
import evstore.web.cluster_pages as cluster_pages
import evstore.web.config_pages as config_pages
import evstore.web.settings_pages as settings_pages
from evstore.core.errors import OperationalError
from evstore.web.db import Db
from evstore.web.session import Backoff, Sessions, session_key
from evstore.web.shell import Web, make_env

STATIC = Path(__file__).parent / "static"
MODE_PREFIXES = ("/cluster", "/group/{name}", "/machine/{host}")


def _mode_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for prefix in MODE_PREFIXES:
        routes += [
            Route(prefix + "/", settings_pages.mode_page, methods=["GET"]),
            Route(prefix + "/{section}", settings_pages.section_view, methods=["GET"]),
            Route(prefix + "/{section}/{action}", settings_pages.section_action,
                  methods=["POST"]),
        ]
    return routes


def routes() -> list[BaseRoute]:
    return [
        Route("/", settings_pages.root, methods=["GET"]),
        Route("/login", auth_pages.login_form, methods=["GET"]),
        Route("/login", auth_pages.login_submit, methods=["POST"]),
        Route("/logout", auth_pages.logout, methods=["POST"]),
        Route("/go", settings_pages.change_mode, methods=["GET"]),
        *_mode_routes(),
        Route("/changes", changes_pages.changes, methods=["GET"]),
        Route("/changes/preview", changes_pages.preview, methods=["GET"]),
        Route("/changes/commit", changes_pages.commit, methods=["POST"]),
        Route("/changes/clear", changes_pages.clear, methods=["POST"]),
        Route("/members", cluster_pages.members, methods=["GET"]),
        Route("/status", cluster_pages.status, methods=["GET"]),
        Route("/audit", cluster_pages.audit, methods=["GET"]),
        Route("/blame", cluster_pages.blame, methods=["GET"]),
        Route("/commits", cluster_pages.commitdetail, methods=["GET"]),
        Route("/commits/{commit}", cluster_pages.commit_view, methods=["GET"]),
        Route("/clustercheck", cluster_pages.clustercheck, methods=["GET"]),
        Route("/clustercheck/{action}", cluster_pages.clustercheck_action, methods=["POST"]),
        Route("/config", config_pages.config_page, methods=["GET"]),
        Route("/config/save", config_pages.save, methods=["GET"]),
        Route("/config/load", config_pages.load, methods=["POST"]),
        Route("/config/confirm", config_pages.confirm, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
        Route("/{rest:path}", settings_pages.not_found, methods=["GET", "POST"]),
    ]


def create_app(home: Path, *, backoff: Backoff | None = None, secure: bool = False
               ) -> Starlette:
    """The pages of one home (its session key is made in the home on first use); ``secure``:
    served over TLS, so the session cookie is marked Secure."""
    app = Starlette(routes=routes())
    app.state.web = Web(
        db=Db(home), sessions=Sessions(session_key(home), secure=secure),
        backoff=backoff or Backoff(),
        env=make_env(),
    )
    return app


def _check_tls(config: Config, tls: tuple[Path, Path]) -> None:
    """Refuse a certificate or key that cannot be used, naming the files, before binding."""
    import ssl

    try:
        config.create_ssl_context()
    except (OSError, ssl.SSLError) as e:
        raise OperationalError(f"cannot serve TLS with certificate {tls[0]} and key {tls[1]}: "
                               f"{getattr(e, 'strerror', None) or e}; give a PEM certificate "
                               "and its private key") from None


def bind_of(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_gui(home: Path, host: str, port: int, *, tls: tuple[Path, Path] | None = None,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the pages of ``home`` on HOST:PORT until cancelled; over TLS with ``tls``
    (certificate file, key file, PEM), and then with a Secure session cookie.

    ``task_status.started`` receives the bound URLs (port 0 picks a free port), so a caller
    can ``await nursery.start(serve_gui, home, host, port)`` and then print where it listens.
    """
    config = Config()
    config.bind = [bind_of(host, port)]
    config.accesslog = None
    config.include_server_header = False
    if tls is not None:
        config.certfile, config.keyfile = str(tls[0]), str(tls[1])
        _check_tls(config, tls)
    app: Any = create_app(home, secure=tls is not None)  # hypercorn types ASGI apps narrowly
    try:
        await serve(app, config, task_status=task_status)
    except BaseExceptionGroup as group:
        err = first_leaf(group, OSError)
        if err is None:
            raise
        raise OperationalError(f"cannot serve the pages on {config.bind[0]}: "
                               f"{err.strerror or err}; choose another --listen") from None


E = TypeVar("E", bound=BaseException)


def first_leaf(group: BaseExceptionGroup[Any], kind: type[E]) -> E | None:
    """The first exception of type ``kind`` inside nested exception groups (trio's nurseries
    wrap every error in one)."""
    for exc in group.exceptions:
        found = first_leaf(exc, kind) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(found, kind):
            return found
    return None
