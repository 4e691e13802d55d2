"""``evstore render``: a file from a Jinja2 template over this machine's effective settings
(evstore/ops/render.py does the work; Jinja2 is imported only when the command runs)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evstore_cli import completion
from evstore_cli.common import HomeOpt, JsonOpt
from evstore_cli.global_options import GLOBAL
from evstore_cli.output import handled

if TYPE_CHECKING:
    from evstore.ops.render import RenderResult


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(name="render")(render)


@handled
def render(
    template: Annotated[Path, typer.Argument(help="The Jinja2 template file.",
                                             show_default=False)],
    out: Annotated[Path | None, typer.Option(
        "--out", help="The file to write (replaced atomically, only when its content changes).",
        show_default=False)] = None,
    machine: Annotated[str | None, typer.Option(
        "--machine", help="Another machine's settings (hostname or serial).",
        show_default=False, autocompletion=completion.machines)] = None,
    file_mode: Annotated[str | None, typer.Option(
        "--file-mode", help="Octal mode of FILE (default: the old file's, else 0644).",
        show_default=False)] = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Render and print to stdout; write nothing.")] = False,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Render again on every change, until interrupted.")] = False,
    exec_cmd: Annotated[str | None, typer.Option(
        "--exec", help="Run this with sh -c after each write that changed FILE.",
        show_default=False)] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write FILE from TEMPLATE over the effective settings (settings, machine, group, cluster).

    With --json: one JSON document ({out, changed, bytes, cursor}, and the text with --check);
    with --watch, one such line (JSON Lines) per render."""
    from evstore.consume import open_config
    from evstore.core.errors import InvalidInput
    from evstore.ops import render as ops

    if check and watch:
        raise InvalidInput("--check renders once: it does not go with --watch")
    if not check and out is None:
        raise InvalidInput("say where to write: --out FILE (or --check to print only)")
    if exec_cmd is not None and not exec_cmd.strip():
        exec_cmd = None  # an empty --exec (a unit's unset RELOAD) runs nothing
    mode = ops.parse_mode(file_mode)
    tpl = ops.load(template)
    with open_config(home or GLOBAL.home, machine) as config:
        if check:
            result = ops.render_once(config, tpl, None)
            if json_out:
                _report(result, None, config.cursor, with_text=True)
                return
            sys.stdout.write(result.text)
            sys.stdout.flush()
            return
        assert out is not None
        if not watch:
            result = ops.render_once(config, tpl, out, mode)
            if result.changed and exec_cmd:
                ops.run_exec(exec_cmd, out, config.cursor)
            if json_out:
                _report(result, out, config.cursor)
            return
        _log_to_stderr()
        _stop_on_sigterm()

        def said(result: RenderResult, cursor: str | None) -> None:
            if json_out:
                _report(result, out, cursor, indent=None)
            if result.changed:
                logging.getLogger("evstore.render").info("wrote %s (at %s)", out, cursor)

        try:
            ops.follow(config, tpl, out, mode, exec_cmd, on_render=said)
        except KeyboardInterrupt:
            return


def _report(result: RenderResult, out: Path | None, cursor: str | None, *,
            with_text: bool = False, indent: int | None = 2) -> None:
    import json

    doc: dict[str, object] = {"out": str(out) if out is not None else None,
                              "changed": result.changed, "bytes": len(result.text.encode()),
                              "cursor": cursor}
    if with_text:
        doc["text"] = result.text
    sys.stdout.write(json.dumps(doc, indent=indent, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _stop_on_sigterm() -> None:
    """systemctl stop: end the watch as Ctrl-C does (exit 0, no temporary file left)."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _log_to_stderr() -> None:
    from evstore.ops import logs

    logs.setup("text", logging.INFO, sys.stderr)
