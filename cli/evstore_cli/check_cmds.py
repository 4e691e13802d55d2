"""``evstore clustercheck``: consistency across machines, superseded changes, resolve/ignore."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer

from evstore.ops import check
from evstore_cli import output
from evstore_cli.common import (
    HomeOpt,
    JsonOpt,
    PassOpt,
    UserOpt,
    YesOpt,
    authenticated,
    cluster_level,
    node_for,
)
from evstore_cli.output import handled


def register(app: typer.Typer) -> None:
    app.command(name="clustercheck")(clustercheck)


def _gather(node: Any) -> dict[str, Any]:
    """Reports of every reachable machine at one point of the log (the network's part when
    it is there; this machine's alone otherwise)."""
    try:
        client = importlib.import_module("evstore.net.client")
    except ImportError:
        return check.local_check(node)
    gather = getattr(client, "clustercheck_reports", None)
    if gather is None:
        return check.local_check(node)
    reports, unreachable = gather(node)
    return check.summarize(reports, unreachable)


@handled
def clustercheck(
    resolve: Annotated[str | None, typer.Option("--resolve", help="SECTION@MODE=HOST: force HOST's version cluster-wide.")] = None,
    ignore: Annotated[str | None, typer.Option("--ignore", help="SECTION@MODE: mark its superseded changes reviewed.")] = None,
    yes: YesOpt = False,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare all machines' settings at one point of the log; list superseded changes."""
    with node_for(home) as node:
        if resolve or ignore:
            who = authenticated(node, user, passphrase_file, "cluster")
            cluster_level(node, who)
            data = check.resolve(node, who, resolve) if resolve else check.ignore(node, who, ignore or "")
            output.emit(data, json_out, lambda d: output.say(
                f"resolved {d['resolved']}: {d['winner']}'s version now applies cluster-wide"
                if "resolved" in d else f"ignored {d['count']} superseded change(s) of {d['ignored']}"))
            return
        data = _gather(node)
        data["superseded"] = check.superseded(node)
    output.emit(data, json_out, _render)
    if not data["consistent"]:
        raise typer.Exit(1)


def _render(d: dict[str, Any]) -> None:
    for host in d["checked"]:
        output.say(f"Checking {host}...")
    for i in d["inconsistencies"]:
        where = i.get("hostname") or f"{i.get('section')} at {i.get('mode')}"
        output.say(f"Inconsistency found: {where}: {i['kind']}: {i['detail']}")
    for s in d["superseded"]:
        w, lo = s["winner"], s["loser"]
        output.say(f"Superseded change: {s['section']} at {s['mode']} ({s['field']}):")
        output.say(f"  kept:  {w['value']!r} by {w['user']!r} on {w['machine']} at {w['time']}")
        output.say(f"  lost:  {lo['value']!r} by {lo['user']!r} on {lo['machine']} at {lo['time']}")
        output.say(f"  resolve: evstore clustercheck --resolve {s['section']}@{s['mode']}={lo['machine']}"
                   f"  or --ignore {s['section']}@{s['mode']}")
    if d["consistent"]:
        output.say("No inconsistencies found.")
