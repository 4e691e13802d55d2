"""Cluster pages: members and link states, status and alerts, audit log, blame, commit
detail and the cluster check.

Creating and joining a cluster are not offered here, as in the seed. The audit and blame pages
use ``evstore.ops.forensics`` when it is installed and say so when it is not.

Commit detail and the cluster check reach the other machines through
``evstore.net.client`` (the same functions as ``evstore commitdetail`` and ``evstore
clustercheck``). That module is imported by name when a page needs it: ``net`` serves these
pages, so ``web`` does not import it statically (tests/test_layering.py), and a build without
it still checks this machine alone. Those calls wait on other machines, so they run in a
worker thread of their own, over their own connection to the home, rather than holding the
pages' one database limiter (``evstore.web.db``) while they wait; the login and role checks
go through ``ctx.read`` first, as for every page.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import quote

import trio
from starlette.responses import Response

from evstore.core import catalog
from evstore.core.errors import EvstoreError, InvalidInput
from evstore.core.state import SETTINGS_KINDS
from evstore.ops import check
from evstore.ops import cluster as cluster_ops
from evstore.ops import users as user_ops
from evstore.ops.node import Node, open_node
from evstore.web.shell import Ctx, Forbidden, NotFound, page, read_page

T = TypeVar("T")
AUDIT_FILTERS = ("since", "until", "user", "section", "mode", "origin", "kind")


def forensics() -> ModuleType | None:
    """``evstore.ops.forensics`` if this build has it (imported lazily), else None."""
    try:
        return importlib.import_module("evstore.ops.forensics")
    except ImportError:
        return None


def _members(node: Node, user: str) -> dict[str, Any]:
    listing = cluster_ops.list_cluster(node, detail=True)
    peers = {p["hostname"]: p for p in node.peers()}
    me = node.identity().hostname
    for group in listing["groups"]:
        for m in group["machines"]:
            m["link"] = {"state": "this machine"} if m["hostname"] == me else peers.get(
                m["hostname"], {"state": "down"})
    return {**listing, "me": me, "standalone": listing["cluster"] is None}


def _status(node: Node, user: str) -> dict[str, Any]:
    return node.status(user)


def _audit(node: Node, user: str, filters: dict[str, str]) -> dict[str, Any]:
    fx = forensics()
    if fx is None:
        return {"available": False, "rows": []}
    rows = fx.audit(node, **{k: v for k, v in filters.items() if v})
    return {"available": True, "rows": list(rows)}


def _blame(node: Node, user: str, section: str, machine: str) -> dict[str, Any]:
    fx = forensics()
    choices = {
        "sections": sorted(catalog.SECTIONS),
        "machines": [m["hostname"] for g in cluster_ops.list_cluster(node)["groups"]
                     for m in g["machines"]] or [node.identity().hostname],
    }
    if fx is None:
        return {"available": False, **choices}
    result = fx.blame(node, section, machine) if section and machine else None
    return {"available": True, "result": result, **choices}


members = read_page("members.html", _members)


status = read_page("status.html", _status)


@page()
async def audit(ctx: Ctx) -> Response:
    filters = {k: ctx.param(k).strip() for k in AUDIT_FILTERS}
    nav, data = await ctx.read(_audit, filters)
    return ctx.render("audit.html", nav, data=data, filters=filters)


@page()
async def blame(ctx: Ctx) -> Response:
    section, machine = ctx.param("section").strip(), ctx.param("machine").strip()
    nav, data = await ctx.read(_blame, section, machine)
    return ctx.render("blame.html", nav, data=data, chosen={"section": section,
                                                           "machine": machine})


# ---------------------------------------------------------------------- the other machines

COMMITS_SHOWN = 50
CHECK_ACTIONS = ("resolve", "ignore")


def net_client() -> ModuleType | None:
    """``evstore.net.client`` if this build has it (imported by name: see the docstring)."""
    try:
        return importlib.import_module("evstore.net.client")
    except ImportError:
        return None


def _on_home(home: Path, fn: Callable[..., T], *args: Any) -> T:
    with open_node(home) as node:
        return fn(node, *args)


async def _away(ctx: Ctx, fn: Callable[..., T], *args: Any) -> T:
    """``fn(node, *args)`` in a worker thread of its own, over its own connection: it waits on
    other machines (the client functions run their own ``trio.run`` in that thread), so the
    pages' database limiter stays free for the other pages meanwhile."""
    return await trio.to_thread.run_sync(partial(_on_home, ctx.web.db.home, fn, *args))


def _nothing(node: Node, user: str) -> None:
    """A read that only checks the session (the nav comes with it)."""
    return None


def _may_administer(node: Node, user: str) -> bool:
    try:
        user_ops.require(node, user, "cluster")
    except InvalidInput:
        return False
    return True


# ---------------------------------------------------------------------- commit detail


def _commit_list(node: Node, user: str) -> dict[str, Any]:
    """The newest commits (every kind ``commitdetail`` takes), newest first, from the audit."""
    fx = forensics()
    if fx is None:
        return {"available": False, "commits": []}
    rows: list[dict[str, Any]] = []
    for kind in sorted(SETTINGS_KINDS):
        rows += fx.audit(node, kind=kind, limit=COMMITS_SHOWN * 4)
    commits: dict[str, dict[str, Any]] = {}
    for r in rows:
        if not r.get("commit"):
            continue
        c = commits.setdefault(r["commit"], {
            "commit": r["commit"], "time": r.get("time"), "user": r.get("user"),
            "origin": r.get("origin"), "kind": r.get("kind"), "changes": []})
        c["changes"].append({"section": r.get("section"), "mode": r.get("mode"),
                             "summary": r.get("summary", "")})
    newest = sorted(commits.values(), key=lambda c: (str(c["time"]), c["commit"]), reverse=True)
    return {"available": True, "commits": newest[:COMMITS_SHOWN]}


def _commit_detail(node: Node, ref: str) -> dict[str, Any]:
    """``evstore commitdetail REF``: ``evstore.net.client.commit_detail``, as the CLI calls it."""
    client = net_client()
    detail = getattr(client, "commit_detail", None) if client is not None else None
    if detail is None:
        return {"available": False}
    doc, unreachable = detail(node, ref)
    return {"available": True, "doc": doc,
            "unreachable": [{"hostname": h, "error": e} for h, e in sorted(unreachable.items())]}


@page()
async def commitdetail(ctx: Ctx) -> Response:
    """The newest commits, each linking to its detail; a form to look one up by id."""
    wanted = ctx.param("commit").strip()
    if wanted:
        return ctx.redirect("/commits/" + quote(wanted, safe=""))
    nav, data = await ctx.read(_commit_list)
    return ctx.render("commits.html", nav, data=data)


@page()
async def commit_view(ctx: Ctx) -> Response:
    """What one commit changed and, per machine, whether and when it arrived."""
    ref = ctx.request.path_params["commit"]
    nav, _ = await ctx.read(_nothing)
    try:
        data = await _away(ctx, _commit_detail, ref)
    except InvalidInput as e:
        return ctx.render("error.html", nav, 404, title="No such commit", message=str(e))
    except EvstoreError as e:
        return ctx.render("error.html", nav, 409, title="Could not do that", message=str(e))
    return ctx.render("commit.html", nav, data=data, ref=ref)


# ---------------------------------------------------------------------- cluster check


def _check_here(node: Node, user: str) -> dict[str, Any]:
    """What this machine alone knows: the superseded changes, grouped by the setting that
    ``resolve`` and ``ignore`` act on, and whether this user may act on them."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in check.superseded(node):
        key = (row["section"], row["mode"])
        g = groups.setdefault(key, {"section": row["section"], "mode": row["mode"], "rows": [],
                                    "losers": [], "winners": []})
        g["rows"].append(row)
        for side, names in (("loser", g["losers"]), ("winner", g["winners"])):
            if row[side]["machine"] not in names:
                names.append(row[side]["machine"])
    return {"superseded": list(groups.values()), "can_act": _may_administer(node, user),
            "standalone": not node.in_cluster(), "me": node.identity().hostname}


def _gather(node: Node) -> dict[str, Any]:
    """Every reachable machine's report at one point of the log (``clustercheck``), or this
    machine's alone in a build without the network."""
    client = net_client()
    gather = getattr(client, "clustercheck_reports", None) if client is not None else None
    if gather is None:
        return {**check.local_check(node), "network": False}
    reports, unreachable = gather(node)
    return {**check.summarize(reports, unreachable), "network": True}


def _act(node: Node, user: str, action: str, target: str) -> dict[str, Any]:
    """``clustercheck --resolve`` or ``--ignore``, for a user whose role may administer."""
    try:
        user_ops.require(node, user, "cluster")
    except InvalidInput as e:
        raise Forbidden(str(e)) from None
    if action == "resolve":
        return check.resolve(node, user, target)
    return check.ignore(node, user, target)


@page()
async def clustercheck(ctx: Ctx) -> Response:
    """Compare the machines at one point of the log; superseded changes, to resolve or ignore."""
    nav, here = await ctx.read(_check_here)
    try:
        result, error = await _away(ctx, _gather), None
    except EvstoreError as e:
        result, error = None, str(e)
    return ctx.render("clustercheck.html", nav, result=result, error=error, **here)


@page()
async def clustercheck_action(ctx: Ctx) -> Response:
    action = ctx.request.path_params["action"]
    if action not in CHECK_ACTIONS:
        raise NotFound(f"no action {action!r} on the cluster check")
    section, mode = ctx.field("section").strip(), ctx.field("mode").strip()
    host = ctx.field("host").strip()
    if not section or not mode or (action == "resolve" and not host):
        raise InvalidInput("a resolve names the section, the mode and the machine whose "
                           "version wins; an ignore the section and the mode")
    target = f"{section}@{mode}" + (f"={host}" if action == "resolve" else "")
    _, done = await ctx.read(_act, action, target)
    ctx.flash(f"resolved {done['resolved']}: {done['winner']}'s version now applies "
              "cluster-wide" if action == "resolve" else
              f"ignored {done['count']} superseded change(s) of {done['ignored']}")
    return ctx.redirect("/clustercheck")
