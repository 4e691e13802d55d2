"""The commands with no group of their own: init, status, sections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evstore_cli import output
from evstore_cli.common import HomeOpt, JsonOpt, UserOpt, node_for
from evstore_cli.global_options import GLOBAL
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
    from evstore_cli.reads import render_status

    output.emit(data, json_out, render_status)


@handled
def sections(
    names: Annotated[list[str] | None, typer.Argument(
        help="Sections to describe in full (keys, types, defaults, references).",
        show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """The catalog of sections, with the levels each may be set at, its keys and defaults."""
    import json

    from evstore.core import catalog

    for name in names or []:
        catalog.get(name)  # an unknown name is refused, naming the known ones
    data = [s for s in catalog.describe() if not names or s["name"] in names]
    if names:
        output.emit(data, json_out, _render_sections)
        return
    output.emit(data, json_out, lambda d: output.table(
        "sections", ["section", "levels", "seed command", "keys", "factory default"],
        [[s["name"], ",".join(s["levels"]), s.get("seed_command", ""), ", ".join(s["keys"]),
          json.dumps(s["default"], ensure_ascii=False)] for s in d]))


def _render_sections(d: list[dict[str, Any]]) -> None:
    """Each section whole: what it is, where it may be set, each key with type and default."""
    import json

    for s in d:
        output.say(f"{s['name']}: {s['title']} (seed: {s['seed_command']}); levels: "
                   f"{', '.join(s['levels'])}")
        output.say(f"  {s['description']}")
        rows = []
        for key, spec in s["schema"].items():
            rows.append([key, spec.get("expected", ""), json.dumps(spec["default"])
                         if "default" in spec else ("required" if spec.get("required") else "")])
            for sub, sf in (spec.get("fields") or {}).items():
                rows.append([f"{key}[].{sub}" if spec.get("type") == "items" else f"{key}.{sub}",
                             sf.get("expected", ""), json.dumps(sf["default"]) if "default" in sf
                             else ("required" if sf.get("required") else "")])
        output.table(None, ["key", "type", "default"], rows)
        for r in s["references"]:
            output.say(f"  {r['items']}[].{r['field']} names an entry of {r['to']}")
        output.say(f"  factory default: {json.dumps(s['default'], ensure_ascii=False)}")
