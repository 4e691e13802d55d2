"""The configuration file page, as the seed has one: save the configuration as XML, and load a
saved one as staged changes with the same choices as ``evstore loadconfig``.

Loading takes two steps, like the seed's page. The upload is parsed and checked
(``xmlconfig.parse``: the same safe parser as the command line) and the page asks how to map
it: for a whole cluster's file, which of this cluster's groups each of the file's groups goes
to, and for each of this cluster's machines whose settings in the file it copies, if any
("Don't copy" by default); for one machine's settings, which machine of the file and which
machine here. The file comes back with those choices (a hidden field of the same form, so the
server keeps nothing between the steps) and is loaded by ``xmlconfig.load``, the function
behind ``loadconfig``: a backup first, then staged changes to review and commit.

Both steps need a role that may change users: the file holds the users and their passphrase
hashes.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import Response

from evstore.core.errors import InvalidInput
from evstore.ops import xmlconfig
from evstore.ops.node import Node
from evstore.web.shell import Ctx, page

DONT_COPY = ""
MAX_FILE = 8 * 1024 * 1024


def overview(node: Node, user: str) -> dict[str, Any]:
    st = node.structure()
    return {"cluster": st.name, "machines": [m.hostname for m in st.members()],
            "groups": sorted(st.groups.values())}


def _decode(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("the loaded file did not come back intact; load it again") from None


def mapping(node: Node, user: str, data: bytes, name: str, kind: str) -> dict[str, Any]:
    """What the second step asks, for a parsed upload."""
    cfg = xmlconfig.parse(data, name)
    here = overview(node, user)
    if kind == "cluster":
        if not node.in_cluster():
            raise InvalidInput("this machine is standalone: load one machine's settings, or "
                               "create or join a cluster first")
        if cfg.standalone:
            raise InvalidInput("this file holds a standalone machine's configuration, which "
                               "cannot be loaded into a cluster")
    groups = [{"name": g, "default": g if g in here["groups"] else ""}
              for g in sorted(cfg.groups)]
    file_machines = [{"hostname": m.hostname, "group": m.group}
                     for m in sorted(cfg.machines.values(), key=lambda m: m.hostname)]
    return {"name": name, "kind": kind, "file_cluster": cfg.cluster,
            "standalone": cfg.standalone, "groups": groups, "file_machines": file_machines,
            "here": here, "data": base64.b64encode(data).decode()}


def apply(node: Node, user: str, form: dict[str, str]) -> dict[str, Any]:
    """Load the file with the choices made on the mapping page."""
    data, name = _decode(form.get("data", "")), form.get("name", "configuration file")
    cfg = xmlconfig.parse(data, name)
    if form.get("kind") == "cluster":
        group_map = [f"{g}={form[f'group.{g}']}" for g in sorted(cfg.groups)
                     if form.get(f"group.{g}")]
        copies = [f"{form[f'copy.{h}']}={h}" for h in overview(node, user)["machines"]
                  if form.get(f"copy.{h}", DONT_COPY) != DONT_COPY]
        return xmlconfig.load(node, user, cfg, name, cluster=True, group_map=group_map,
                              copy_machine=copies)
    target = form.get("machine", "")
    if not target:
        raise InvalidInput("choose the machine of this cluster to load the settings into")
    return xmlconfig.load(node, user, cfg, name, machine=target,
                          from_machine=form.get("from_machine") or None)


@page()
async def config_page(ctx: Ctx) -> Response:
    nav, data = await ctx.admin(overview)
    return ctx.render("config.html", nav, data=data, error=None)


@page()
async def save(ctx: Ctx) -> Response:
    machine = ctx.param("machine") or None
    _, xml = await ctx.admin(lambda node, user: xmlconfig.render(node, machine))
    who = machine or "cluster"
    return Response(xml, media_type="application/xml", headers={
        "Content-Disposition": f'attachment; filename="evstore-config-{who}.xml"',
        "Cache-Control": "no-store"})


@page(upload=True)
async def load(ctx: Ctx) -> Response:
    upload = ctx.form.get("file") if ctx.form is not None else None
    kind = ctx.field("kind", "cluster")
    if not isinstance(upload, UploadFile) or not upload.filename:
        nav, data = await ctx.admin(overview)
        return ctx.render("config.html", nav, 400, data=data,
                          error="choose a configuration file to load (one saved by evstore)")
    raw = await upload.read(MAX_FILE + 1)
    if len(raw) > MAX_FILE:
        nav, data = await ctx.admin(overview)
        return ctx.render("config.html", nav, 400, data=data,
                          error=f"the file is larger than {MAX_FILE // (1024 * 1024)} MiB")
    nav, data = await ctx.admin(mapping, raw, upload.filename, kind)
    return ctx.render("config_map.html", nav, data=data, error=None)


@page(upload=True)
async def confirm(ctx: Ctx) -> Response:
    form = {k: v for k, v in (ctx.form or {}).items() if isinstance(v, str) and k != "csrf"}
    _, result = await ctx.admin(apply, form)
    staged = len(result["staged"])
    text = (f"loaded {result['file']}: {staged} change(s) staged (the previous configuration "
            f"was saved to {result['backup']}); review them and commit")
    for m in result.get("missing_interfaces", []):
        text += f". {m['hostname']} lacks interface(s) {', '.join(m['interfaces'])}"
    ctx.flash(text)
    return ctx.redirect("/changes")
