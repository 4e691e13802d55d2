"""Settings commands: clustermode, show, set, edit, override, delete, clustershow, clusterset,
changes, commit, clearchanges."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from evstore.core import catalog, encoding
from evstore.core.errors import InvalidInput
from evstore.core.modes import split
from evstore.ops import cluster as cluster_ops
from evstore.ops import settings as ops
from evstore.ops import web_support
from evstore_cli import completion, output
from evstore_cli.common import (
    HomeOpt,
    JsonOpt,
    ModeOpt,
    PassOpt,
    SwitchOpt,
    UserOpt,
    YesOpt,
    authenticated,
    node_for,
    staging,
    user_of,
)
from evstore_cli.global_options import GLOBAL
from evstore_cli.output import handled

SectionArg = Annotated[str, typer.Argument(help="A section of the catalog (see `evstore sections`).",
                                           autocompletion=completion.sections)]


def register(app: typer.Typer) -> None:
    for fn in (clustermode, show, set_, edit, override, delete, clustershow, clusterset,
               changes, commit, clearchanges):
        name = fn.__name__.rstrip("_")
        app.command(name=name)(fn)
    app.command(name="clear", help="Alias of clearchanges.")(clearchanges)


@handled
def clustermode(
    mode: Annotated[str | None, typer.Argument(help="cluster, group:NAME, machine:HOST, or `group NAME`.")] = None,
    name: Annotated[str | None, typer.Argument(help="Group or machine name (seed spelling).")] = None,
    home: HomeOpt = None, user: UserOpt = None, json_out: JsonOpt = False, yes: YesOpt = False,
) -> None:
    """Show or set this user's current mode on this home."""
    who = user_of(user)
    with node_for(home) as node:
        if mode is not None:
            text = f"{mode}:{name}" if name and mode in ("group", "machine") else mode
            split(text)
            node.set_mode(who, text)
        elif not json_out and node.in_cluster() and output.interactive():
            _offer_modes(node, who)
        shown = node.to_display(node.mode_of(who))
        data = {"mode": shown, "prompt": _prompt(shown, node.structure().name)}
    output.emit(data, json_out, lambda d: output.say(f"{d['prompt']}> mode {d['mode']}"))


def _offer_modes(node: Any, who: str) -> None:
    """Bare ``clustermode`` on a terminal: the seed's prompt to switch (Enter keeps the mode)."""
    from evstore_cli.cluster_menu import Leave, choose

    now = node.to_display(node.mode_of(who))
    output.say(f"{_prompt(now, node.structure().name)}> mode {now}")
    try:
        picked = choose("Choose the mode to switch to (a blank line keeps this one):",
                        web_support.all_modes(node))
    except Leave:
        return
    if picked is not None:
        node.set_mode(who, picked)


def _prompt(mode: str, cluster: str | None) -> str:
    """The seed's prompt: ``(Cluster americas)``, ``(Group Paris)``, ``(Machine lab1)``."""
    level, _, name = mode.partition(":")
    return f"(Cluster {cluster})" if level == "cluster" else f"({level.capitalize()} {name})"


@handled
def show(
    section: SectionArg,
    mode: ModeOpt = None,
    effective: Annotated[bool, typer.Option("--effective", help="Effective settings of a machine.")] = False,
    machine: Annotated[str | None, typer.Option("--machine", help="Machine for --effective.")] = None,
    home: HomeOpt = None, user: UserOpt = None, json_out: JsonOpt = False,
) -> None:
    """Settings of SECTION at a mode, or a machine's effective settings and their source."""
    from evstore_cli import reads  # (one implementation with the fast path, fast_reads.py)

    data, skipped = reads.show(home or GLOBAL.home, user_of(user), section, mode, effective,
                               machine)
    output.emit(data, json_out, reads.render_skipped if skipped else reads.render_show)


def _stage_intro(node: Any, mode: str, section: str) -> None:
    skipped = ops.not_affected(node, mode, section)
    if skipped:
        output.warn("changes to these settings will not affect the following groups and "
                    "machines, because they override them: " + ", ".join(skipped))


@handled
def set_(
    section: SectionArg,
    assignments: Annotated[list[str], typer.Argument(help="KEY=VALUE (VALUE is JSON if it parses); "
                                                     "LIST.ITEM.FIELD=VALUE for a named entry.")],
    mode: ModeOpt = None, switch: SwitchOpt = False, yes: YesOpt = False,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Stage a change at the current mode (defines SECTION there first if needed)."""
    with staging(home, user, passphrase_file, mode, section, switch) as (node, who, internal):
        value = ops.stage_set(node, who, internal, section, assignments)
        _stage_intro(node, internal, section)
        data = {"section": section, "mode": node.to_display(internal), "staged": value}
    output.emit(data, json_out, lambda d: output.say(
        f"staged {section} at {d['mode']}; review with `evstore changes`, then `evstore commit`"))


@handled
def edit(
    section: SectionArg,
    file: Annotated[Path, typer.Option("--file", help="JSON file with the whole new value.")],
    mode: ModeOpt = None, switch: SwitchOpt = False, yes: YesOpt = False,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Stage a whole replacement of SECTION from a JSON file."""
    try:
        value = encoding.loads_json(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise InvalidInput(f"cannot read {file}: {e.strerror}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{file} must hold a JSON object with the section's keys")
    with staging(home, user, passphrase_file, mode, section, switch) as (node, who, internal):
        staged = ops.stage_input(node, who, internal, section, value)
        _stage_intro(node, internal, section)
        data = {"section": section, "mode": node.to_display(internal), "staged": staged}
    output.emit(data, json_out, lambda d: output.say(f"staged {section} at {d['mode']}"))


@handled
def override(
    section: SectionArg,
    defaults: Annotated[bool, typer.Option("--defaults", help="Start from factory defaults.")] = False,
    copy_from: Annotated[str | None, typer.Option("--copy-from", help="Start from a copy of MODE's settings.")] = None,
    mode: ModeOpt = None, switch: SwitchOpt = False, yes: YesOpt = False,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Define settings at this mode, from defaults (the default) or as a copy of another mode."""
    if defaults and copy_from:
        raise InvalidInput("give --defaults or --copy-from, not both")
    with staging(home, user, passphrase_file, mode, section, switch) as (node, who, internal):
        src = node.to_internal(copy_from) if copy_from else None
        value = ops.stage_override(node, who, internal, section, src)
        _stage_intro(node, internal, section)
        data = {"section": section, "mode": node.to_display(internal), "staged": value}
    output.emit(data, json_out, lambda d: output.say(f"staged override of {section} at {d['mode']}"))


@handled
def delete(
    section: SectionArg,
    mode: ModeOpt = None, switch: SwitchOpt = False, yes: YesOpt = False,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Stage the removal of this mode's settings (it inherits again)."""
    with staging(home, user, passphrase_file, mode, section, switch) as (node, who, internal):
        ops.stage_delete(node, who, internal, section)
        inh, src = ops.inherited(node, internal, section)
        data = {"section": section, "mode": node.to_display(internal),
                "will_inherit_from": node.to_display(src)}
    output.emit(data, json_out, lambda d: output.say(
        f"staged delete of {section} at {d['mode']}; it will inherit from {d['will_inherit_from']}"))


@handled
def clustershow(section: SectionArg, home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """The modes at which SECTION is defined."""
    with node_for(home) as node:
        data = cluster_ops.clustershow(node, section)
    output.emit(data, json_out, lambda d: output.say(
        f"{section} is defined at: " + (", ".join(d["defined_at"]) or "(nowhere: factory default)")))


@handled
def clusterset(
    section: SectionArg,
    to: Annotated[str, typer.Option("--to", help="Target MODE, or all-groups.")],
    copy: Annotated[bool, typer.Option("--copy", help="Copy (this mode keeps its settings).")] = False,
    move: Annotated[bool, typer.Option("--move", help="Move (this mode inherits afterwards).")] = False,
    mode: ModeOpt = None, switch: SwitchOpt = False, yes: YesOpt = False,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Copy or move this mode's settings of SECTION to another mode or to all groups."""
    if copy == move:
        raise InvalidInput("give exactly one of --copy or --move")
    with staging(home, user, passphrase_file, mode, section, switch) as (node, who, internal):
        targets = ops.clusterset(node, who, internal, section, move=move, to=to)
        data = {"section": section, "from": node.to_display(internal), "to": targets,
                "op": "move" if move else "copy"}
        if move and _left_with_factory_default(node, who, internal, section):
            output.warn(f"{section} has no useful factory default: after the move, "
                        f"{node.to_display(internal)} inherits empty tables "
                        f"({json.dumps(catalog.factory_default(section))}) unless a mode above "
                        "it defines them")
    output.emit(data, json_out, lambda d: output.say(
        f"staged {d['op']} of {section} from {d['from']} to {', '.join(d['to'])}"))


def _left_with_factory_default(node: Any, who: str, mode: str, section: str) -> bool:
    """After moving ``section`` away from ``mode``, does ``mode`` fall back to a factory
    default that holds nothing (empty lists, or none at all)? The web pages say so too."""
    default = catalog.factory_default(section)
    if default is not None and any(v not in ([], {}, "") for v in default.values()):
        return False
    st = node.structure()
    level, _, ident = mode.partition(":")
    above = st.chain(ident)[1:] if level == "machine" and ident in st.machines else (
        ["cluster"] if level == "group" else [])
    return not any(ops.view(node, who, m, section)[1] for m in above)


@handled
def changes(
    diff: Annotated[bool, typer.Option("--diff", help="Show each change against what is committed.")] = False,
    home: HomeOpt = None, user: UserOpt = None, json_out: JsonOpt = False,
) -> None:
    """Staged, uncommitted changes of this user."""
    with node_for(home) as node:
        data = ops.changes_list(node, user_of(user), diff=diff)
    output.emit(data, json_out, _render_changes)


def _render_changes(d: dict[str, Any]) -> None:
    if not d["changes"]:
        output.say("no staged changes")
        return
    for c in d["changes"]:
        flag = " (CONFLICT: changed by someone else since staged)" if c.get("conflict") else ""
        output.say(f"{c['op']:7} {c['section']} at {c['mode']}{flag}")
        if "staged" in c:
            output.say(f"  committed: {json.dumps(c['committed'], ensure_ascii=False)}")
            output.say(f"  staged:    {json.dumps(c['staged'], ensure_ascii=False)}")


@handled
def commit(
    message: Annotated[str, typer.Option("-m", "--comment", help="Commit comment.")] = "",
    discard: Annotated[bool, typer.Option("--discard", help="Drop conflicting changes, commit the rest.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Commit over conflicting changes.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Preview per machine; commit nothing.")] = False,
    yes: YesOpt = False,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Commit all staged changes, all levels, as one signed atomic commit."""
    with node_for(home) as node:
        if dry_run:
            data = ops.dry_run(node, user_of(user))
            output.emit(data, json_out, _render_dry_run)
            return
        from evstore.ops import users as user_ops

        # a guest's own passphrase (passwd) is all it may commit
        who = authenticated(node, user, passphrase_file,
                            user_ops.commit_needs(node, user_of(user)))
        was_disabled = {_item(d) for d in node.disabled()}
        try:
            data = ops.commit(node, who, message, discard=discard, force=force)
        except ops.Conflict as c:
            if json_out:
                output.emit({"committed": False, "conflicts": c.conflicts}, True)
            if json_out or not _discard_asked(c.conflicts):
                raise
            data = ops.commit(node, who, message, discard=True)
        detached = [p["hostname"] for p in node.peers() if p["state"] == "disconnected"]
        clustered = node.in_cluster()
        stopped = _serving_pid(node.home) is None
    for d in data.get("disabled", []):
        if _item(d) not in was_disabled:  # only what this commit disabled, not every old one
            output.warn(f"on {d['hostname']}, {d['section']} item {d['item']} is disabled: "
                        f"{d['reason']}")
    if detached and data["committed"]:
        output.warn("these machines are disconnected and get this commit only on reconnect: "
                    + ", ".join(detached))
    if data["committed"] and clustered and stopped:
        output.warn("this home's node is not running: the commit leaves for the other machines "
                    "when `evstore run` serves this home")
    output.emit(data, json_out, lambda d: output.say(
        f"committed {d['commit']}" if d["committed"] else "nothing to commit"))


def _item(d: dict[str, Any]) -> tuple[str, str, str]:
    return (d["hostname"], d["section"], d["item"])


def _serving_pid(home: Path) -> int | None:
    """The PID of the `evstore run` serving ``home``, if one is alive (it writes HOME/run.pid
    and empties it when it stops; a crash leaves a PID that is no longer alive)."""
    try:
        text = (home / "run.pid").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return int(text)


def _discard_asked(conflicts: list[dict[str, Any]]) -> bool:
    """On a terminal, the seed's question: discard your conflicting changes (default no)?"""
    if not output.interactive():
        return False
    from evstore_cli.cluster_menu import Leave, yes_no

    for c in conflicts:
        output.say(f"{c['section']} at {c['mode']} was changed by someone else since you "
                   "staged it")
        output.say(f"  theirs: {json.dumps(c['theirs'], ensure_ascii=False)}")
        output.say(f"  yours:  {json.dumps(c['yours'], ensure_ascii=False)}")
    try:
        return yes_no("Do you want to discard your conflicting changes and commit the rest?",
                      False)
    except Leave:
        return False


def _render_dry_run(d: dict[str, Any]) -> None:
    if not d["changes"]:
        output.say("nothing staged: a commit would change nothing")
        return
    for c in d["changes"]:
        output.say(f"{c['op']:7} {c['section']} at {c['mode']}")
    if not d["machines"]:
        output.say("no machine's effective settings would change")
    for m in d["machines"]:
        output.say(f"{m['hostname']}:")
        for section, ch in m["sections"].items():
            output.say(f"  {section}: {ch['source_before']} -> {ch['source_after']}")
            output.say(f"    before: {json.dumps(ch['before'], ensure_ascii=False)}")
            output.say(f"    after:  {json.dumps(ch['after'], ensure_ascii=False)}")
    for b in d["broken_references"]:
        output.say(f"BROKEN on {b['hostname']}: {b.get('section')} {b.get('item')}: {b.get('reason')}")
    for c in d["conflicts"]:
        output.say(f"conflict: {c['section']} at {c['mode']} changed since you staged it")


@handled
def clearchanges(home: HomeOpt = None, user: UserOpt = None, yes: YesOpt = False,
                 passphrase_file: PassOpt = None, json_out: JsonOpt = False) -> None:
    """Discard all staged changes of this user (after checking the user's passphrase)."""
    with node_for(home) as node:
        who = authenticated(node, user, passphrase_file, "")
        n = ops.clear(node, who)
    output.emit({"cleared": n}, json_out, lambda d: output.say(f"discarded {d['cleared']} staged change(s)"))


__all__ = ["register", "GLOBAL"]
