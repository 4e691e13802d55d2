"""Login and logout: the cluster's users and their argon2id passphrases (``Node.authenticate``).

A wrong passphrase is recorded by ``Node.authenticate`` (an alert in ``status``) and slowed
down here per (user, client address) by :class:`evstore.web.session.Backoff`.
"""

from __future__ import annotations

from typing import Any

import trio
from starlette.responses import Response

from evstore.core.errors import InvalidInput
from evstore.ops import web_support
from evstore.ops.node import Node
from evstore.web.session import new_session, passphrase_mark
from evstore.web.shell import Ctx, mode_url, page, safe_next

FAILURE_DELAY_S = 0.25


def _login(node: Node, user: str, passphrase: str) -> dict[str, Any]:
    entry = node.authenticate(user, passphrase)
    return {"mark": passphrase_mark(entry), "home": web_support.login_mode(node)}


def _host(node: Node) -> str:
    return node.identity().hostname


@page(login=False)
async def login_form(ctx: Ctx) -> Response:
    if "user" in ctx.session:
        return ctx.redirect(safe_next(ctx.param("next")) or "/")
    host = await ctx.web.db.call(_host)
    return ctx.render("login.html", None, host=host, next=safe_next(ctx.param("next")) or "",
                      error=None, username="")


@page(login=False)
async def login_submit(ctx: Ctx) -> Response:
    user = ctx.field("username").strip()
    key = (user, ctx.request.client.host if ctx.request.client else "")
    wait = ctx.web.backoff.wait_for(key)
    if wait > 0:
        return await _login_failed(ctx, user, 429, f"too many wrong passphrases for {user!r}: "
                                   f"wait {int(wait) + 1} s and try again")
    try:
        done = await ctx.web.db.call(_login, user, ctx.field("passphrase"))
    except InvalidInput as e:
        ctx.web.backoff.failed(key)
        await trio.sleep(FAILURE_DELAY_S)
        return await _login_failed(ctx, user, 401, str(e))
    ctx.web.backoff.succeeded(key)
    ctx.session = new_session(user, done["mark"])
    return ctx.redirect(safe_next(ctx.field("next")) or mode_url(done["home"]))


async def _login_failed(ctx: Ctx, user: str, status: int, message: str) -> Response:
    host = await ctx.web.db.call(_host)
    return ctx.render("login.html", None, status, host=host, error=message, username=user,
                      next=safe_next(ctx.field("next")) or "")


@page()
async def logout(ctx: Ctx) -> Response:
    ctx.session = new_session()
    ctx.flash("logged out")
    return ctx.redirect("/login")
