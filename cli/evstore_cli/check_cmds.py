"""``evstore clustercheck``: consistency across machines, superseded changes, resolve/ignore."""

from __future__ import annotations

import importlib
import json
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
    user_of,
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
        if not json_out:
            cluster_level(node, user_of(user))
        data = _gather(node)
        data["superseded"] = check.superseded(node)
        output.emit(data, json_out, _render)
        if not json_out and data["superseded"] and output.interactive():
            _choose_each(node, data["superseded"], user, passphrase_file)
    if not data["consistent"]:
        raise typer.Exit(1)


def _choose_each(node: Any, rows: list[dict[str, Any]], user: str | None,
                 passphrase_file: Any) -> None:
    """On a terminal, the seed's numbered choice for each section and mode with superseded
    changes: force one machine's version on every machine, or ignore (a signed event each,
    at once, as --resolve and --ignore do)."""
    from evstore_cli.cluster_menu import Leave, choose

    who: str | None = None
    places: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        hosts = places.setdefault((r["section"], r["mode"]), [])
        hosts += [h for h in (r["winner"]["machine"], r["loser"]["machine"]) if h not in hosts]
    for (section, mode), hosts in places.items():
        hosts.sort()
        options = [f"Force {h}'s version of {section} at {mode} on every machine" for h in hosts]
        options.append(f"Ignore (keep what applies now; {section} at {mode} is not reported again)")
        try:
            picked = choose(f"What do you want to do about {section} at {mode}?", options,
                            str(len(options)))
        except Leave:
            return
        if picked is None:
            continue
        if who is None:
            who = authenticated(node, user, passphrase_file, "cluster")
        i = options.index(picked)
        target = f"{section}@{mode}"
        if i < len(hosts):
            check.resolve(node, who, f"{target}={hosts[i]}")
            output.say(f"{hosts[i]}'s version of {section} at {mode} now applies cluster-wide")
            if any(r["section"] == section and r["mode"] == mode for r in check.superseded(node)):
                check.ignore(node, who, target)
        else:
            check.ignore(node, who, target)
            output.say(f"ignored: {section} at {mode} is not reported again")


def _render(d: dict[str, Any]) -> None:
    for host in d["checked"]:
        output.say(f"Checking {host}...")
    for i in d["inconsistencies"]:
        where = i.get("hostname") or f"{i.get('section')} at {i.get('mode')}"
        output.say(f"Inconsistency found: {where}: {i['kind']}: {i['detail']}")
    for s in d["superseded"]:
        w, lo = s["winner"], s["loser"]
        output.say(f"Superseded change: {s['section']} at {s['mode']} ({s['field']}):")
        output.say(f"  kept:  {_shown(w)} by {w['user']} on {w['machine']} at {w['time']}")
        output.say(f"  lost:  {_shown(lo)} by {lo['user']} on {lo['machine']} at {lo['time']}")
        output.say(f"  resolve: evstore clustercheck --resolve {s['section']}@{s['mode']}={lo['machine']}"
                   f"  or --ignore {s['section']}@{s['mode']}")
    if d["consistent"]:
        output.say("No inconsistencies found.")


def _shown(side: dict[str, Any]) -> str:
    """A version as JSON (never a Python repr); a removed key or entry says so."""
    if not side.get("present", True):
        return "(removed)"
    return json.dumps(side["value"], ensure_ascii=False, sort_keys=True)
