"""Per-mode and per-section pages: inherit, override, edit, manage (copy, move, delete).

The pages show what ``evstore.ops.settings`` says and stage through it; nothing here decides
where a section may live, what it inherits, or what a copy or move does.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

import evstore.web.forms as forms
from evstore.core import admit, catalog, encoding, state
from evstore.core.errors import EvstoreError, InvalidInput
from evstore.core.modes import split
from evstore.ops import settings as ops
from evstore.ops import web_support
from evstore.ops.node import Node
from evstore.web.shell import Ctx, NotFound, PageError, mode_of_path, mode_url, page

ACTIONS = ("override", "form", "edit", "set", "manage")


# ---------------------------------------------------------------------- reads (worker thread)


def _section(name: str) -> catalog.Section:
    try:
        return catalog.get(name)
    except InvalidInput as e:
        raise NotFound(str(e)) from None


def _internal(node: Node, mode: str) -> str:
    try:
        return node.to_internal(mode)
    except InvalidInput as e:
        raise NotFound(str(e)) from None


def mode_home(node: Node, user: str, mode: str) -> dict[str, Any]:
    """Every section at one mode: defined here, inherited (from where), or not at this level."""
    internal = _internal(node, mode)
    rows = []
    for sec in catalog.SECTIONS.values():
        row: dict[str, Any] = {"name": sec.name, "title": sec.title, "allowed": True}
        try:
            ops.check_allowed(node, sec.name, internal)
        except InvalidInput:
            row["allowed"] = False
            rows.append(row)
            continue
        _, defined = ops.view(node, user, internal, sec.name)
        row["defined"] = defined
        if not defined:
            row["source"] = node.to_display(ops.inherited(node, internal, sec.name)[1])
        rows.append(row)
    return {"mode": node.to_display(internal), "rows": rows}


def section_page(node: Node, user: str, mode: str, name: str) -> dict[str, Any]:
    sec = _section(name)
    internal = _internal(node, mode)
    out: dict[str, Any] = {
        "section": sec.name, "title": sec.title, "seed_command": sec.seed_command,
        "description": sec.description, "mode": node.to_display(internal),
        "levels": [lv for lv in catalog.LEVELS if lv in sec.levels],
    }
    try:
        ops.check_allowed(node, sec.name, internal)
    except InvalidInput as e:
        out.update(restricted=str(e), allowed=web_support.allowed_modes(node, sec.name))
        return out
    out.update(_settings_of(node, user, internal, sec.name))
    out.update(_places(node, user, internal, sec))
    if out.get("defined") and not out.get("managed_elsewhere"):
        out["references"] = reference_choices(node, internal, sec.name)
    return out


def _machines_reached(node: Node, internal: str) -> list[str]:
    """The machines whose settings a mode reaches (before lower overrides)."""
    st = node.structure()
    return [m.mid for m in st.members() if internal in st.chain(m.mid)]


def reference_choices(node: Node, internal: str, section: str
                      ) -> dict[str, dict[str, tuple[list[str], list[str]]]]:
    """For each reference of ``section``: the target names that exist on the machines this
    mode reaches, and those of them that some of these machines lack."""
    out: dict[str, dict[str, tuple[list[str], list[str]]]] = {}
    mids = _machines_reached(node, internal)
    for ref in catalog.REFERENCES:
        if ref.section != section:
            continue
        per_machine = []
        for mid in mids:
            target = node.store.effective_of(mid).get(ref.target_section)
            items = (target[0] if target else {}).get(ref.target_items) or []
            per_machine.append({e["name"] for e in items if isinstance(e, dict) and "name" in e
                                and (ref.target_kind is None or e.get("kind") == ref.target_kind)})
        found = set().union(*per_machine) if per_machine else set()
        everywhere = set.intersection(*per_machine) if per_machine else set()
        out.setdefault(ref.items, {})[ref.field] = (sorted(found), sorted(found - everywhere))
    return out


def _settings_of(node: Node, user: str, internal: str, name: str) -> dict[str, Any]:
    value, defined = ops.view(node, user, internal, name)
    out: dict[str, Any] = {"defined": defined, "managed_elsewhere":
                           web_support.MANAGED_ELSEWHERE.get(name)}
    if defined:
        out["value"] = value
        why = admit.value_reason(name, value)
        if why is not None:  # an older home's views: skipped, said, and replaceable
            out.update(value=state.default_of(name), skipped=why)
    else:
        inherited, source = ops.inherited(node, internal, name)
        out.update(inherited=inherited, source=node.to_display(source))
    if out["managed_elsewhere"]:
        out.update({k: web_support.redact(out[k]) for k in ("value", "inherited") if k in out})
    staged = ops.staged_rows(node, user)
    out["staged_here"] = any((r.mode, r.section) == (internal, name) for r in staged)
    return out


def _places(node: Node, user: str, internal: str, sec: catalog.Section) -> dict[str, Any]:
    here = node.to_display(internal)
    defined = web_support.defined_modes(node, user, sec.name)
    allowed = web_support.allowed_modes(node, sec.name)
    return {
        "also_defined_at": [m for m in defined if m != here],
        "copy_sources": [m for m in defined if m != here],
        "targets": [m for m in allowed if m != here],
        "all_groups": node.in_cluster() and "group" in sec.levels,
        "not_affected": ops.not_affected(node, internal, sec.name),
    }


# ---------------------------------------------------------------------- staging (worker thread)


def stage_action(node: Node, user: str, mode: str, name: str, action: str,
                 form: dict[str, str]) -> str:
    """Carry out one form of the section page; returns what to tell the user."""
    sec = _section(name)
    internal = _internal(node, mode)
    if sec.name in web_support.MANAGED_ELSEWHERE:
        raise InvalidInput(f"{sec.name} is managed by {web_support.MANAGED_ELSEWHERE[sec.name]}")
    done = _STAGERS[action](node, user, internal, sec.name, form)
    skipped = ops.not_affected(node, internal, sec.name)
    if skipped and action != "manage":
        done += (". These settings will not affect " + ", ".join(skipped) +
                 ", which define their own")
    return done + ". Review and commit on the Changes page."


def _override(node: Node, user: str, internal: str, name: str, form: dict[str, str]) -> str:
    start = form.get("start", "default")
    source = None if start == "default" else node.to_internal(start)
    ops.stage_override(node, user, internal, name, source)
    origin = "the factory defaults" if source is None else f"a copy of {start}"
    return f"staged new settings for {name} at {node.to_display(internal)}, from {origin}"


def _form(node: Node, user: str, internal: str, name: str, form: dict[str, str]) -> str:
    before, _ = ops.view(node, user, internal, name)
    value = forms.value_of(name, before, form)
    ops.stage_input(node, user, internal, name, value)
    return f"staged {name} at {node.to_display(internal)}"


def _edit(node: Node, user: str, internal: str, name: str, form: dict[str, str]) -> str:
    try:
        value = encoding.loads_json(form.get("value", ""))
    except EvstoreError as e:
        raise InvalidInput(f"the settings could not be read: {e}") from None
    if not isinstance(value, dict):
        raise InvalidInput("the settings must be one JSON object with the section's keys")
    ops.stage_input(node, user, internal, name, value)
    return f"staged {name} at {node.to_display(internal)}"


def _set(node: Node, user: str, internal: str, name: str, form: dict[str, str]) -> str:
    lines = [ln.strip() for ln in form.get("assignments", "").splitlines() if ln.strip()]
    if not lines:
        raise InvalidInput("write at least one KEY=VALUE line")
    ops.stage_set(node, user, internal, name, lines)
    return f"staged {len(lines)} change(s) to {name} at {node.to_display(internal)}"


def _manage(node: Node, user: str, internal: str, name: str, form: dict[str, str]) -> str:
    op = form.get("op", "")
    if op == "delete":
        ops.stage_delete(node, user, internal, name)
        source = node.to_display(ops.inherited(node, internal, name)[1])
        return f"staged the deletion of {name} at {node.to_display(internal)}: it will inherit " \
               f"from {source}"
    if op not in ("copy", "move"):
        raise InvalidInput("choose copy, move or delete")
    to = form.get("to", "")
    if not to:
        raise InvalidInput("choose the mode to copy or move the settings to")
    targets = ops.clusterset(node, user, internal, name, move=op == "move", to=to)
    return f"staged the {op} of {name} from {node.to_display(internal)} to {', '.join(targets)}"


_STAGERS = {"override": _override, "form": _form, "edit": _edit, "set": _set, "manage": _manage}


# ---------------------------------------------------------------------- handlers


@page()
async def root(ctx: Ctx) -> Response:
    nav, _ = await ctx.read(lambda node, user: None)
    return ctx.redirect(mode_url(nav["login_mode"]))


@page()
async def not_found(ctx: Ctx) -> Response:
    """Any other address: a login first, like every page, then a page that says so."""
    raise NotFound(f"there is no page at {ctx.request.url.path}")


@page()
async def change_mode(ctx: Ctx) -> Response:
    """The Change Mode menu's form: go to the same section (if any) at the chosen mode."""
    mode = ctx.param("mode")
    try:
        split(mode)
    except InvalidInput as e:
        raise NotFound(str(e)) from None
    section = ctx.param("section") or None
    return ctx.redirect(mode_url(mode, section))


@page()
async def mode_page(ctx: Ctx) -> Response:
    mode = mode_of_path(ctx.request.path_params)
    nav, data = await ctx.read(mode_home, mode)
    return ctx.render("mode.html", nav, current_mode=data["mode"], data=data)


@page()
async def section_view(ctx: Ctx) -> Response:
    return await _render_section(ctx, None, {})


async def _render_section(ctx: Ctx, error: str | None, form: dict[str, str],
                          status: int = 200) -> Response:
    mode = mode_of_path(ctx.request.path_params)
    section = ctx.request.path_params["section"]
    nav, data = await ctx.read(section_page, mode, section)
    settings_form, error_field = None, None
    if data.get("defined") and "value" in data and not data.get("managed_elsewhere"):
        posted = form if form.get("action") == "form" else None
        settings_form = forms.build(data["section"], data["value"], posted=posted,
                                    references=data.get("references"))
        if error and posted is not None:
            error_field = forms.field_of_error(data["section"], error, posted)
    return ctx.render("section.html", nav, status, current_mode=data["mode"],
                      section=data["section"], data=data, error=error, form=form,
                      settings_form=settings_form, error_field=error_field)


@page()
async def section_action(ctx: Ctx) -> Response:
    mode = mode_of_path(ctx.request.path_params)
    section = ctx.request.path_params["section"]
    action = ctx.request.path_params["action"]
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r} on a section page")
    form = {k: v for k, v in (ctx.form or {}).items() if isinstance(v, str) and k != "csrf"}
    try:
        _, message = await ctx.write(stage_action, mode, section, action, form)
    except PageError as e:
        if isinstance(e.error, NotFound):
            raise
        return await _render_section(ctx, str(e.error), {**form, "action": action}, 400)
    ctx.flash(message)
    return ctx.redirect(mode_url(await _display_mode(ctx, mode), section))


async def _display_mode(ctx: Ctx, mode: str) -> str:
    """The mode as the pages name it (a serial in the URL becomes the hostname)."""
    _, shown = await ctx.read(lambda node, user: node.to_display(node.to_internal(mode)))
    return str(shown)
