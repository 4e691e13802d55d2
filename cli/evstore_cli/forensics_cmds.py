"""Audit and forensics commands: audit, blame, diff, replay, verify, revert, rollback,
saveconfig, loadconfig. Each calls one function of evstore.ops.forensics (or xmlconfig)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from evstore.core.errors import InvalidInput
from evstore.ops import forensics as ops
from evstore.ops import xmlconfig
from evstore.ops.node import DB_NAME, resolve_home
from evstore_cli import output
from evstore_cli.common import (
    HomeOpt,
    JsonOpt,
    PassOpt,
    UserOpt,
    YesOpt,
    authenticated,
    node_for,
)
from evstore_cli.global_options import GLOBAL
from evstore_cli.output import handled

TimeHelp = "ISO 8601 (2026-11-20T10:00:00Z) or relative (-2h, -30m, -1d)."
MachineOpt = Annotated[str | None, typer.Option("--machine", help="A machine (hostname or serial).",
                                                show_default=False)]
REVIEW = "review with `evstore changes --diff` or `evstore commit --dry-run`, then `evstore commit`"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    for fn in (audit, blame, diff, replay, verify, revert, rollback, saveconfig, loadconfig):
        app.command(name=fn.__name__)(fn)


def _short(v: Any, width: int = 60) -> str:
    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when it is a terminal; the library calls it (done, total)."""
    if not output.err_console.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=output.err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


# --------------------------------------------------------------------------- audit


@handled
def audit(
    since: Annotated[str | None, typer.Option("--since", help="From this time. " + TimeHelp)] = None,
    until: Annotated[str | None, typer.Option("--until", help="Up to this time. " + TimeHelp)] = None,
    user: Annotated[str | None, typer.Option("--user", help="Changes by this user only.")] = None,
    section: Annotated[str | None, typer.Option("--section", help="Changes to this section only.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="Changes at this mode only (cluster, "
                                             "group:NAME, machine:HOST).")] = None,
    origin: Annotated[str | None, typer.Option("--origin", help="Changes made on this machine only.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Events of this kind (config.commit) "
                                             "or family (config, group, machine, cluster).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the newest N rows.")] = None,
    home: HomeOpt = None, json_out: JsonOpt = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV with a header line (for "
                                          "spreadsheets).")] = False,
    nl_out: Annotated[bool, typer.Option("--nl", help="One JSON object a line (JSON Lines).")]
    = False,
) -> None:
    """Who changed what, when, where: the log, oldest first, one row per change."""
    if json_out + csv_out + nl_out > 1:
        raise InvalidInput("choose one output format: --json, --csv or --nl")
    with node_for(home) as node:
        rows = ops.audit(node, since=since, until=until, user=user, section=section, mode=mode,
                         origin=origin, kind=kind, limit=limit)
    if csv_out or nl_out:
        _export_audit(output.hide_hashes(rows), csv_out)
        return
    output.emit(rows, json_out, _render_audit)


AUDIT_COLUMNS = ("time", "user", "origin", "kind", "section", "mode", "commit", "summary")


def _export_audit(rows: list[dict[str, Any]], as_csv: bool) -> None:
    """The audit rows as CSV (the contract's columns, then any others) or JSON Lines."""
    import sys

    if not as_csv:
        for r in rows:
            sys.stdout.write(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n")
        sys.stdout.flush()
        return
    import csv

    extra = sorted({k for r in rows for k in r} - set(AUDIT_COLUMNS))
    writer = csv.DictWriter(sys.stdout, fieldnames=[*AUDIT_COLUMNS, *extra],
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: v if isinstance(v, str) or v is None else json.dumps(v)
                         for k, v in r.items()})
    sys.stdout.flush()


def _render_audit(rows: list[dict[str, Any]]) -> None:
    if not rows:
        output.say("no changes match")
        return
    output.table(None, ["time", "user", "origin", "kind", "section", "mode", "commit", "summary"],
                 [[r["time"], r["user"], _short(r["origin"], 20), r["kind"], r["section"],
                   r["mode"], r["commit"][:12], r["summary"]] for r in rows])


# --------------------------------------------------------------------------- blame and diff


@handled
def blame(
    section: Annotated[str, typer.Argument(help="A section of the catalog.")],
    machine: MachineOpt = None, home: HomeOpt = None, json_out: JsonOpt = False,
) -> None:
    """For each effective value of SECTION on a machine: the mode and event it came from."""
    with node_for(home) as node:
        data = ops.blame(node, section, machine)
    output.emit(data, json_out, _render_blame)


def _render_blame(d: dict[str, Any]) -> None:
    output.say(f"{d['section']} on {d['machine']} (defined at {d['source']})")
    output.table(None, ["key", "value", "source", "event", "user", "time"],
                 [[v["key"], _short(v["value"]), v["source"], (v["event"] or "")[:12], v["user"],
                   v["time"]] for v in d["values"]])


@handled
def diff(
    from_t: Annotated[str, typer.Option("--from", help="The earlier time. " + TimeHelp)],
    to_t: Annotated[str | None, typer.Option("--to", help="The later time (default now). " + TimeHelp)] = None,
    machine: MachineOpt = None, home: HomeOpt = None, json_out: JsonOpt = False,
) -> None:
    """How effective settings changed between two points in time."""
    with node_for(home) as node:
        data = ops.diff(node, from_t, to_t, machine)
    output.emit(data, json_out, _render_diff)


def _render_diff(d: dict[str, Any]) -> None:
    output.say(f"from {d['from']} to {d['to']}")
    for m in d["machines"]:
        if not m["changes"]:
            output.say(f"{m['hostname']}: no change")
            continue
        output.say(f"{m['hostname']}:")
        for section, ch in m["changes"].items():
            output.say(f"  {section}: {ch['source_before']} -> {ch['source_after']}")
            output.say(f"    before: {json.dumps(ch['before'], ensure_ascii=False)}")
            output.say(f"    after:  {json.dumps(ch['after'], ensure_ascii=False)}")


# --------------------------------------------------------------------------- replay and verify


@handled
def replay(
    db_file: Annotated[Path, typer.Argument(help="A backup of any node's database (`evstore backup FILE`) or a home's evstore.db "
                                                     "(never modified).")],
    until: Annotated[str | None, typer.Option("--until", help="As of this time. " + TimeHelp)] = None,
    at: Annotated[str | None, typer.Option("--at", help="Just after this event (id or prefix).")] = None,
    machine: MachineOpt = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check every signature and chain first.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Rebuild the configuration offline from a copy of a log, as of a point in time."""
    with _progress("replaying") as progress:
        data = ops.replay(db_file, until, at, machine, verify, progress)
    output.emit(data, json_out, _render_replay)


def _render_replay(d: dict[str, Any]) -> None:
    output.say(f"as of {d['as_of']}: {d['events']} events, cluster {d['cluster'] or '(standalone)'}"
               f", state digest {d['state_digest']}")
    for g in d["groups"]:
        output.say(f"group {g['name']}: " + ", ".join(m["hostname"] for m in g["machines"]))
    for mode, sections in d["settings"].items():
        for section, value in sections.items():
            output.say(f"{mode} {section}: {json.dumps(value, ensure_ascii=False)}")
    for section, value in d.get("effective", {}).items():
        output.say(f"effective on {d['machine']} {section}: {json.dumps(value, ensure_ascii=False)}")


@handled
def verify(
    db_file: Annotated[Path | None, typer.Argument(help="A database file (default: the home's).",
                                                   show_default=False)] = None,
    home: HomeOpt = None, json_out: JsonOpt = False,
    views: Annotated[bool, typer.Option(
        "--views", help="Also rebuild the materialized views in memory and report where the "
                        "stored ones differ.")] = False,
) -> None:
    """Check every signature and hash chain; report forged, altered, missing, forked and
    inadmissible events (and, with --views, stored views that differ from the log's)."""
    target = db_file if db_file is not None else resolve_home(home or GLOBAL.home) / DB_NAME
    with _progress("verifying") as progress:
        data = ops.verify_db(target, progress, views_too=views)
    output.emit(data, json_out, _render_verify)
    if not data["ok"]:
        raise typer.Exit(1)


def _render_verify(d: dict[str, Any]) -> None:
    if d["ok"]:
        output.say(f"ok: {d['events']} events verified (signatures, ids, columns, chains, members)")
        return
    output.table(f"{len(d['problems'])} problem(s) in {d['events']} events",
                 ["kind", "origin", "seq", "detail"],
                 [[p["kind"], _short(p["origin"] or "-", 20), p["seq"], p["detail"]]
                  for p in d["problems"]])


# --------------------------------------------------------------------------- revert and rollback


def _render_staged(d: dict[str, Any]) -> None:
    for s in d.get("skipped", []):
        output.warn(f"skipped {s['section']} at {s['mode']}: {s['reason']}")
    if not d["staged"]:
        if not d.get("quiet_if_empty"):
            output.say("nothing to stage: the settings are already as asked")
        else:
            output.say(REVIEW)
        return
    for s in d["staged"]:
        output.say(f"staged {s['op']:6} {s['section']} at {s['mode']}")
    output.say(REVIEW)


@handled
def revert(
    commit: Annotated[str, typer.Argument(help="The commit's event id (or a unique prefix).")],
    yes: YesOpt = False, home: HomeOpt = None, user: UserOpt = None,
    passphrase_file: PassOpt = None, json_out: JsonOpt = False,
) -> None:
    """Stage the inverse of one past commit, to review and commit like any change."""
    with node_for(home) as node:
        who = authenticated(node, user, passphrase_file)
        data = ops.revert(node, who, commit)
    output.emit(data, json_out, _render_staged)


@handled
def rollback(
    to: Annotated[str, typer.Option("--to", help="Bring the settings back to this time. " + TimeHelp)],
    include_machine_settings: Annotated[bool, typer.Option(
        "--include-machine-settings", help="Also roll back each machine's own settings "
        "(interfaces, hostname...).")] = False,
    include_users: Annotated[bool, typer.Option(
        "--include-users", help="Also roll back users (and SSH keys).")] = False,
    yes: YesOpt = False, home: HomeOpt = None, user: UserOpt = None,
    passphrase_file: PassOpt = None, json_out: JsonOpt = False,
) -> None:
    """Stage whatever brings the cluster's shared settings back to how they were at a time.

    Membership, users and machine-only settings stay as they are unless included."""
    with node_for(home) as node:
        who = authenticated(node, user, passphrase_file)
        data = ops.rollback(node, who, to, include_machine_settings=include_machine_settings,
                            include_users=include_users)
    for k in data["kept"]:
        output.warn(f"kept {k['section']} at {k['mode']}: {k['reason']}")
    output.emit(data, json_out, _render_rollback)


def _render_rollback(d: dict[str, Any]) -> None:
    """Anything destructive first, each with what it takes away."""
    for s in d["staged"]:
        if s["destructive"]:
            what = ", ".join(s["removes"]) or "the whole section (it inherits again)"
            output.say(f"DESTRUCTIVE: staged {s['op']} {s['section']} at {s['mode']}, "
                       f"removing {what}")
    _render_staged({**d, "staged": [s for s in d["staged"] if not s["destructive"]],
                    "quiet_if_empty": any(s["destructive"] for s in d["staged"])})


# --------------------------------------------------------------------------- saveconfig, loadconfig


@handled
def saveconfig(
    file: Annotated[Path, typer.Argument(help="Where to write the XML (mode 0600).")],
    machine: MachineOpt = None, home: HomeOpt = None, json_out: JsonOpt = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accepted for scripts.")] = False,
) -> None:
    """Export the whole configuration (all levels) as XML."""
    with node_for(home) as node:
        data = xmlconfig.saveconfig(node, file, machine)
    _warn_skipped(data["skipped"], "left out of the file")
    output.emit(data, json_out, lambda d: output.say(
        f"saved the configuration to {d['file']} ({d['bytes']} bytes; it holds passphrase "
        "hashes: keep it private)"))


@handled
def loadconfig(
    file: Annotated[Path, typer.Argument(help="A file written by `evstore saveconfig`.")],
    cluster: Annotated[bool, typer.Option("--cluster", help="Load the cluster and group levels.")] = False,
    group_map: Annotated[list[str] | None, typer.Option("--group-map", help="FILEGROUP=GROUP: load a "
                                                        "file's group into another group.")] = None,
    copy_machine: Annotated[list[str] | None, typer.Option("--copy-machine", help="FILEHOST=HOST: copy "
                                                           "a file machine's own settings to HOST.")] = None,
    machine: MachineOpt = None,
    from_machine: Annotated[str | None, typer.Option("--from-machine", help="With --machine: the file's "
                                                     "machine to load from (default: the same name).")] = None,
    yes: YesOpt = False, home: HomeOpt = None, user: UserOpt = None,
    passphrase_file: PassOpt = None, json_out: JsonOpt = False,
) -> None:
    """Load a saved configuration as staged changes (a backup of the current one is saved first)."""
    if from_machine is not None and machine is None:
        raise InvalidInput("--from-machine goes with --machine HOST")
    with node_for(home) as node:
        who = authenticated(node, user, passphrase_file)
        data = xmlconfig.loadconfig(node, who, file, cluster=cluster, group_map=group_map or [],
                                    copy_machine=copy_machine or [], machine=machine,
                                    from_machine=from_machine)
    for m in data["missing_interfaces"]:
        output.warn(f"{m['hostname']} lacks interface(s) the loaded listeners use: "
                    + ", ".join(m["interfaces"]))
    output.emit(data, json_out, _render_load)


def _warn_skipped(skipped: list[dict[str, str]], what: str) -> None:
    """One line on stderr per part the catalog cannot interpret (xmlconfig.Skipped)."""
    for s in skipped:
        output.warn(f"skipped {s['section']} at {s['mode']}: {s['reason']}; {what}")


def _render_load(d: dict[str, Any]) -> None:
    output.say(f"backup of the previous configuration: {d['backup']}")
    _render_staged(d)
