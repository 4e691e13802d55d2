"""The ``evstore`` command: a thin typer shell over evstore.ops.

Each command parses its options, opens the node, calls one library function and prints the
result (a table, or exactly one JSON document with --json). Errors become one line on stderr
with exit code 2 (bad usage or input) or 1 (operational failure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evstore import __version__
from evstore.core import catalog
from evstore.ops import node as node_ops
from evstore_cli import (
    check_cmds,
    cluster_cmds,
    forensics_cmds,
    gui_cmds,
    node_cmds,
    output,
    settings_cmds,
)
from evstore_cli.common import GLOBAL, HomeOpt, JsonOpt, PassOpt, UserOpt, node_for
from evstore_cli.output import handled

app = typer.Typer(
    name="evstore",
    help="Peer-to-peer configuration store for fleets of machines (cluster, group, machine).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.add_typer(cluster_cmds.clusterconfig, name="clusterconfig")
settings_cmds.register(app)
cluster_cmds.register(app)
node_cmds.register(app)
check_cmds.register(app)
forensics_cmds.register(app)
gui_cmds.register(app)


def _version(value: bool) -> None:
    if value:
        output.say(f"evstore {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    home: HomeOpt = None,
    user: UserOpt = None,
    passphrase_file: PassOpt = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Global options; each may also be given after the command."""
    GLOBAL.home = home
    GLOBAL.user = user or "admin"
    GLOBAL.passphrase_file = passphrase_file


@app.command()
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


@app.command()
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


@app.command()
@handled
def sections(json_out: JsonOpt = False) -> None:
    """The catalog of sections, with the levels each may be set at."""
    data = catalog.describe()
    output.emit(data, json_out, lambda d: output.table(
        "sections", ["section", "levels", "seed command", "title"],
        [[s["name"], ",".join(s["levels"]), s.get("seed_command", ""), s.get("title", "")]
         for s in d]))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
