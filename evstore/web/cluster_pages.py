"""Cluster pages: members and link states, status and alerts, audit log, blame.

Creating and joining a cluster are not offered here, as in the seed. The audit and blame pages
use ``evstore.ops.forensics`` when it is installed and say so when it is not.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from starlette.responses import Response

from evstore.core import catalog
from evstore.ops import cluster as cluster_ops
from evstore.ops.node import Node
from evstore.web.shell import Ctx, page

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


@page()
async def members(ctx: Ctx) -> Response:
    nav, data = await ctx.read(_members)
    return ctx.render("members.html", nav, data=data)


@page()
async def status(ctx: Ctx) -> Response:
    nav, data = await ctx.read(_status)
    return ctx.render("status.html", nav, data=data)


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


@page()
async def commitdetail(ctx: Ctx) -> Response:
    nav, _ = await ctx.read(lambda node, user: None)
    return ctx.render("placeholder.html", nav, title="Commit detail", command="commitdetail")


@page()
async def clustercheck(ctx: Ctx) -> Response:
    nav, _ = await ctx.read(lambda node, user: None)
    return ctx.render("placeholder.html", nav, title="Cluster check", command="clustercheck")
