"""The request shell every page goes through: session, login, CSRF, roles, rendering.

A page handler is an ``async def handler(ctx: Ctx) -> Response`` wrapped by :func:`page`. The
wrapper loads the signed session, refuses a POST whose form lacks the session's CSRF token
(403), sends a visitor without a login to ``/login``, and maps the library's errors to a page.
Database work goes through ``ctx.read`` / ``ctx.write``: one call of an ``evstore.ops``
function in a worker thread, after checking that the session's user still exists with the
same passphrase, and, for ``write``, that its role may change settings (``ops.users.require``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from evstore.core.errors import EvstoreError, InvalidInput
from evstore.core.modes import split
from evstore.ops import sessions as session_ops
from evstore.ops import settings as settings_ops
from evstore.ops import users as user_ops
from evstore.ops import web_support
from evstore.ops.node import Node
from evstore.web.db import Db
from evstore.web.session import Backoff, Sessions, csrf_ok, new_session, passphrase_mark

TEMPLATES = Path(__file__).parent / "templates"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class LoggedOut(Exception):
    """The session's user is gone or its passphrase changed: log in again."""


class Forbidden(Exception):
    """The user's role may not do this (403)."""


class NotFound(Exception):
    """No such mode, section or page (404)."""


class PageError(Exception):
    """A library error, with the navigation to render it in."""

    def __init__(self, nav: dict[str, Any], error: Exception) -> None:
        super().__init__(str(error))
        self.nav = nav
        self.error = error


@dataclass
class Web:
    """What every request shares: the home's database runner, sessions, backoff, templates."""

    db: Db
    sessions: Sessions
    backoff: Backoff
    env: jinja2.Environment


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False)
    env.globals["mode_url"] = mode_url
    return env


# ---------------------------------------------------------------------- modes in URLs


def mode_url(mode: str, section: str | None = None, action: str | None = None) -> str:
    """``cluster`` -> ``/cluster/``, ``group:N`` -> ``/group/N/``, then SECTION[/ACTION]."""
    level, name = split(mode)
    out = "/cluster/" if level == "cluster" else f"/{level}/{quote(name, safe='')}/"
    if section:
        out += quote(section, safe="")
        if action:
            out += "/" + action
    return out


def mode_of_path(params: dict[str, str]) -> str:
    """The mode a URL names (``/group/NAME/…`` -> ``group:NAME``); a serial works for HOST."""
    if "name" in params:
        return f"group:{params['name']}"
    if "host" in params:
        return f"machine:{params['host']}"
    return "cluster"


def mode_label(mode: str, cluster: str | None) -> str:
    level, name = split(mode) if mode != "default" else ("default", "")
    if level == "cluster":
        return f"Cluster: {cluster}" if cluster else "Cluster"
    if level == "default":
        return "Factory defaults"
    return f"{level.capitalize()}: {name}"


def safe_next(target: str | None) -> str | None:
    """Only a local path may be a redirect target (no ``//host`` or scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return None if target.startswith("/login") else target


# ---------------------------------------------------------------------- worker-thread calls


EMPTY_NAV: dict[str, Any] = {
    "modes": [], "login_mode": None, "host": None, "cluster": None, "role": None, "staged": 0,
    "can_change": False,
}


def nav_of(node: Node, user: str) -> dict[str, Any]:
    """What the frame of every page shows: modes, login host, role, staged count."""
    return {
        "modes": web_support.all_modes(node),
        "login_mode": web_support.login_mode(node),
        "host": node.identity().hostname,
        "cluster": node.structure().name,
        "role": user_ops.role_of(node, user),
        "staged": len(settings_ops.staged_rows(node, user)),
        "can_change": _may(node, user, "settings"),
    }


def _may(node: Node, user: str, what: str) -> bool:
    try:
        user_ops.require(node, user, what)
    except InvalidInput:
        return False
    return True


def _guarded(node: Node, user: str, mark: str, what: str | None,
             fn: Callable[..., Any], args: tuple[Any, ...],
             sid: str = "") -> tuple[dict[str, Any], Any]:
    entry = next((u for u in node.users() if u.get("name") == user), None)
    if entry is None or passphrase_mark(entry) != mark:
        raise LoggedOut()
    if not session_ops.valid(node, sid, user, mark):  # logged out, idle, role changed
        raise LoggedOut()
    if what is not None:
        try:
            user_ops.require(node, user, what)
        except InvalidInput as e:
            raise Forbidden(str(e)) from None
    try:
        result = fn(node, user, *args)
    except (EvstoreError, NotFound) as e:
        raise PageError(nav_of(node, user), e) from None
    return nav_of(node, user), result


# ---------------------------------------------------------------------- the request context


@dataclass
class Ctx:
    request: Request
    web: Web
    session: dict[str, Any]
    form: FormData | None

    @property
    def user(self) -> str:
        return str(self.session["user"])

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else default

    def param(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)

    async def read(self, fn: Callable[..., Any], *args: Any) -> tuple[dict[str, Any], Any]:
        """``fn(node, user, *args)`` in the worker thread; returns (nav, result)."""
        return await self._call(None, fn, args)

    async def write(self, fn: Callable[..., Any], *args: Any) -> tuple[dict[str, Any], Any]:
        """As ``read``, for a user whose role may change settings (else 403)."""
        return await self._call("settings", fn, args)

    async def admin(self, fn: Callable[..., Any], *args: Any) -> tuple[dict[str, Any], Any]:
        """As ``read``, for a user whose role may change users (the configuration file holds
        their passphrase hashes): else 403."""
        return await self._call("users", fn, args)

    async def _call(self, what: str | None, fn: Callable[..., Any],
                    args: tuple[Any, ...]) -> tuple[dict[str, Any], Any]:
        mark = str(self.session.get("mark", ""))
        sid = str(self.session.get("sid", ""))
        return await self.web.db.call(_guarded, self.user, mark, what, fn, args, sid)

    def flash(self, text: str, kind: str = "info") -> None:
        self.session["flash"] = {"text": text, "kind": kind}

    def render(self, template: str, nav: dict[str, Any] | None, status: int = 200,
               **values: Any) -> HTMLResponse:
        nav = {**EMPTY_NAV, **(nav or {})}
        cluster = nav["cluster"]
        ctx = {
            "nav": nav, "user": self.session.get("user"), "csrf": self.session["csrf"],
            "flash": self.session.pop("flash", None), "path": self.request.url.path,
            "label": lambda m: mode_label(m, cluster), "section": None, **values,
            "current_mode": self._current_mode(values.get("current_mode"), nav),
        }
        html = self.web.env.get_template(template).render(ctx)
        return HTMLResponse(html, status_code=status)

    def _current_mode(self, shown: str | None, nav: dict[str, Any]) -> str | None:
        """The mode a page is at; pages without one keep the last mode visited (or login's)."""
        if shown is not None and "user" in self.session:
            self.session["mode"] = shown
        return shown or self.session.get("mode") or nav["login_mode"]

    def redirect(self, url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)


Handler = Callable[[Ctx], Awaitable[Response]]


def page(*, login: bool = True, upload: bool = False
         ) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler with the session, CSRF, login and error handling described above.

    ``upload``: the page takes one uploaded file (a configuration file) and a larger form."""
    limits = ({"max_files": 1, "max_fields": 2000, "max_part_size": 8 * 1024 * 1024} if upload
              else {"max_files": 0, "max_fields": 50, "max_part_size": 256 * 1024})

    def wrap(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            web: Web = request.app.state.web
            session = web.sessions.load(request)
            form = None
            if request.method == "POST":
                form = await request.form(**limits)
                if not csrf_ok(session, form.get("csrf")):
                    return _refused(web, "this form is missing its security token (CSRF); "
                                    "reload the page and submit it again")
            ctx = Ctx(request, web, session, form)
            if login and "user" not in session:
                return _to_login(ctx)
            response = await _handled(fn, ctx)
            web.sessions.save(response, ctx.session)
            response.headers.update(SECURITY_HEADERS)
            return response

        return endpoint

    return wrap


async def _handled(fn: Handler, ctx: Ctx) -> Response:
    try:
        return await fn(ctx)
    except LoggedOut:
        ctx.session = new_session()
        return _to_login(ctx)
    except Forbidden as e:
        return ctx.render("error.html", None, 403, title="Not allowed", message=str(e))
    except NotFound as e:
        return ctx.render("error.html", None, 404, title="Not found", message=str(e))
    except PageError as e:
        status = 404 if isinstance(e.error, NotFound) else (
            400 if isinstance(e.error, InvalidInput) else 409)
        return ctx.render("error.html", e.nav, status, title="Could not do that",
                          message=str(e.error))
    except EvstoreError as e:
        status = 400 if isinstance(e, InvalidInput) else 409
        return ctx.render("error.html", None, status, title="Could not do that", message=str(e))


def _to_login(ctx: Ctx) -> Response:
    target = ctx.request.url.path
    if ctx.request.url.query:
        target += "?" + ctx.request.url.query
    response = ctx.redirect("/login?next=" + quote(target, safe="")
                            if ctx.request.method == "GET" and target != "/" else "/login")
    ctx.web.sessions.save(response, ctx.session)
    response.headers.update(SECURITY_HEADERS)
    return response


def _refused(web: Web, message: str) -> Response:
    html = web.env.get_template("refused.html").render(message=message)
    response = HTMLResponse(html, status_code=403)
    response.headers.update(SECURITY_HEADERS)
    return response


def read_page(template: str, read: Callable[..., Any]) -> Callable[[Request], Awaitable[Response]]:
    """A page that only reads: ``read(node, user)`` in the database thread, then ``template``."""

    async def handler(ctx: Ctx) -> Response:
        nav, data = await ctx.read(read)
        return ctx.render(template, nav, data=data)

    handler.__name__ = handler.__qualname__ = template.removesuffix(".html")
    return page()(handler)
