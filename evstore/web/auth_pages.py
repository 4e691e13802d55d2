"""Login and logout: the cluster's users and their argon2id passphrases.

The stored hash is read in the database thread, but checked in a thread of its own under a
small limiter (``Backoff.hash_check``), so a spray of logins cannot hold up the pages. Wrong
passphrases are slowed down per client address, whatever user name it tries, and overall
(:class:`evstore.web.session.Backoff`); each is recorded as a ``login_failed`` alert, at most one
per address per 10 s (the rest are counted in the next one).
"""

from __future__ import annotations

import contextlib
from typing import Any

import trio
from starlette.responses import Response

from evstore.core.errors import EvstoreError, InvalidInput
from evstore.ops import access, logins, secrets, sessions, web_support
from evstore.ops.node import Node
from evstore.web.session import new_session, passphrase_mark
from evstore.web.shell import Ctx, mode_url, page, safe_next

FAILURE_DELAY_S = 0.25


def _login(node: Node, user: str) -> dict[str, Any]:
    entry = logins.user_entry(node, user)
    if entry is None:  # deleted while its passphrase was being checked
        raise InvalidInput(f"wrong user or passphrase for {user!r}: check the passphrase and "
                           "retry")
    mark = passphrase_mark(entry)
    return {"mark": mark, "home": web_support.login_mode(node),
            "sid": sessions.start(node, user, mark)}


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
    closed = await ctx.web.db.call(access.refusal, "gui")
    if closed is not None:  # turned off while these pages were served
        return await _login_failed(ctx, user, 403, closed)
    source = ctx.request.client.host if ctx.request.client else ""
    guard = ctx.web.backoff
    verdict = guard.check(source)
    if verdict.why == "source":
        return await _login_failed(ctx, user, 429, "too many wrong passphrases from this "
                                   f"address: wait {int(verdict.wait) + 1} s and try again")
    if verdict.why == "overall":
        return await _login_failed(ctx, user, 429, "too many wrong passphrases on this "
                                   "machine just now: wait a few seconds and try again")
    if verdict.wait > 0:
        await trio.sleep(verdict.wait)
    stored, exists = await ctx.web.db.call(logins.stored_hash, user)
    ok = await guard.hash_check(stored, ctx.field("passphrase")) and exists
    done = None
    if ok and secrets.needs_rehash(stored):  # the parameters rose since it was made
        fresh = await guard.hashing.run(secrets.hash_passphrase, ctx.field("passphrase"))
        with contextlib.suppress(EvstoreError):  # a read-only home, say: log in all the same
            await ctx.web.db.call(logins.rehash, user, stored, fresh)
    if ok:
        try:
            done = await ctx.web.db.call(_login, user)
        except InvalidInput:
            done = None
    if done is None:
        guard.failed(source)
        held = guard.alert(source)
        if held is not None:
            await ctx.web.db.call(logins.record_failure, "login_failed",
                                  f"wrong passphrase for user {user!r} from {source}", held)
        await trio.sleep(FAILURE_DELAY_S)
        return await _login_failed(ctx, user, 401, f"wrong user or passphrase for {user!r}: "
                                   "check the passphrase and retry")
    guard.succeeded(source)
    ctx.session = new_session(user, done["mark"], done["sid"])
    return ctx.redirect(safe_next(ctx.field("next")) or mode_url(done["home"]))


async def _login_failed(ctx: Ctx, user: str, status: int, message: str) -> Response:
    host = await ctx.web.db.call(_host)
    return ctx.render("login.html", None, status, host=host, error=message, username=user,
                      next=safe_next(ctx.field("next")) or "")


@page()
async def logout(ctx: Ctx) -> Response:
    sid = ctx.session.get("sid")
    if isinstance(sid, str) and sid:
        await ctx.web.db.call(sessions.end, sid)  # every copy of the cookie stops working
    ctx.session = new_session()
    ctx.flash("logged out")
    return ctx.redirect("/login")
