"""The commands with no group of their own: init, status, sections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evstore_cli import output
from evstore_cli.common import GLOBAL, HomeOpt, JsonOpt, UserOpt, node_for
from evstore_cli.output import handled


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(name="init")(init)
    app.command(name="status")(status)
    app.command(name="sections")(sections)


@handled
def init(
    hostname: Annotated[str, typer.Option("--hostname", help="This machine's name (never resolved).")],
    serial: Annotated[str | None, typer.Option("--serial", help="Serial number (generated if not given).")] = None,
    listen: Annotated[str | None, typer.Option("--listen", help="Admin port HOST:PORT (logins and joins).")] = None,
    ccs: Annotated[str | None, typer.Option("--ccs", help="Cluster-only port HOST:PORT (off unless given; port 2222 by default).")] = None,
    admin_passphrase_file: Annotated[Path | None, typer.Option("--admin-passphrase-file", help="File whose first line is the admin passphrase.")] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accepted for scripts.")] = False,
) -> None:
    """Make a standalone machine: database, host key (0600), identity, admin user."""
    from evstore.ops import node as node_ops

    phrase = output.passphrase(admin_passphrase_file, prompt="Admin passphrase", twice=True)
    if phrase is None:
        raise output.fail("no admin passphrase: pass --admin-passphrase-file FILE or set "
                          "EVSTORE_PASSPHRASE")
    where = node_ops.resolve_home(home or GLOBAL.home)
    status = node_ops.init_home(where, hostname=hostname, passphrase=phrase, serial=serial,
                                listen=listen, ccs=ccs)
    output.emit(status, json_out, lambda s: output.say(
        f"initialized {s['hostname']} (serial {s['serial']}) in {where}\n"
        f"host key fingerprint: {s['fingerprint']}"))


@handled
def status(home: HomeOpt = None, user: UserOpt = None, json_out: JsonOpt = False) -> None:
    """Identity, cluster, mode, event counts, version vector, state digest, peers, alerts."""
    with node_for(home) as node:
        data = node.status(user or GLOBAL.user)
    output.emit(data, json_out, _render_status)


def _render_status(s: dict[str, Any]) -> None:
    rows = [
        ["hostname", s["hostname"]], ["serial", s["serial"]], ["version", s["version"]],
        ["cluster", s["cluster"] or "(standalone)"], ["group", s["group"] or "-"],
        ["mode", s["mode"]], ["events", s["events"]], ["fingerprint", s["fingerprint"]],
        ["state digest", s["state_digest"]], ["pending / held / forks",
                                              f"{s['pending']} / {s['held']} / {s['forks']}"],
    ]
    output.table(None, ["", ""], rows)
    if s["peers"]:
        output.table("peers", ["hostname", "address", "state", "last seen", "clock offset ms"],
                     [[p["hostname"], p["address"], p["state"], p["last_seen"],
                       p["clock_offset_ms"]] for p in s["peers"]])
    for d in s.get("disabled", []):
        output.say(f"disabled on {d['hostname']}: {d['section']} {d['item']}: {d['reason']}")
    for a in s["alerts"]:
        output.say(f"alert {a['at']} {a['kind']}: {a['detail']}")


@handled
def sections(json_out: JsonOpt = False) -> None:
    """The catalog of sections, with the levels each may be set at."""
    from evstore.core import catalog

    data = catalog.describe()
    output.emit(data, json_out, lambda d: output.table(
        "sections", ["section", "levels", "seed command", "title"],
        [[s["name"], ",".join(s["levels"]), s.get("seed_command", ""), s.get("title", "")]
         for s in d]))
