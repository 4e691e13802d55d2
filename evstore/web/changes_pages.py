"""The logged-in user's staged changes: list, per-machine preview, commit, clear.

As ``evstore changes``, ``commit --dry-run``, ``commit`` and ``clearchanges``: the same
functions of ``evstore.ops.settings``, with the logged-in user as the acting user. A commit
that meets conflicting changes shows both versions and offers to discard or force.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from evstore.core.errors import InvalidInput
from evstore.ops import settings as ops
from evstore.ops.node import Node
from evstore.web.shell import Ctx, page, read_page

HOW = ("", "discard", "force")


def _changes(node: Node, user: str) -> dict[str, Any]:
    return ops.changes_list(node, user, diff=True)


def _preview(node: Node, user: str) -> dict[str, Any]:
    return ops.dry_run(node, user)


def _commit(node: Node, user: str, comment: str, how: str) -> dict[str, Any]:
    try:
        done = ops.commit(node, user, comment, discard=how == "discard", force=how == "force")
    except ops.Conflict as c:
        return {"committed": False, "conflicts": c.conflicts}
    done["disconnected"] = [p["hostname"] for p in node.peers() if p["state"] == "disconnected"]
    return done


def _clear(node: Node, user: str) -> int:
    return ops.clear(node, user)


changes = read_page("changes.html", _changes)


preview = read_page("preview.html", _preview)


@page()
async def commit(ctx: Ctx) -> Response:
    how = ctx.field("how")
    if how not in HOW:
        raise InvalidInput("how must be empty, discard or force")
    comment = ctx.field("comment").strip()
    nav, done = await ctx.write(_commit, comment, how)
    if "conflicts" in done:
        return ctx.render("conflicts.html", nav, 409, conflicts=done["conflicts"],
                          comment=comment)
    ctx.flash(_commit_message(done), "warning" if done.get("disconnected") else "info")
    return ctx.redirect("/changes")


def _commit_message(done: dict[str, Any]) -> str:
    if not done["committed"]:
        return "nothing to commit"
    text = f"committed {done['commit']} ({len(done['changes'])} change(s))"
    if done.get("discarded"):
        text += f"; discarded {len(done['discarded'])} conflicting change(s)"
    if done.get("disconnected"):
        text += ("; these machines are disconnected and get it only on reconnect: "
                 + ", ".join(done["disconnected"]))
    return text


@page()
async def clear(ctx: Ctx) -> Response:
    _, n = await ctx.write(_clear)
    ctx.flash(f"discarded {n} staged change(s)")
    return ctx.redirect("/changes")
