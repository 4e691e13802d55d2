"""The ``evstore`` command: a thin typer shell over evstore.ops.

Each command parses its options, opens the node, calls one library function and prints the
result (a table, or exactly one JSON document with --json). Errors become one line on stderr
with exit code 2 (bad usage or input) or 1 (operational failure).

Start-up: scripts call the CLI in loops, so a call imports only what its command needs.
``main`` answers ``--version`` before typer is imported; otherwise it builds the typer app with
the one command module that the command line names (``COMMAND_MODULES``), and every module
imports its heavy dependencies (trio, the network, the web stack, rich) inside the commands
that use them. ``app`` (for tests and ``--help``) is the whole app, built on first use.
"""

from __future__ import annotations

import importlib
import sys

from evstore._version import __version__

TYPE_CHECKING = False  # not typing's: importing typing (and re) costs `evstore get` ~10%
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    import typer

# The command modules of cli/evstore_cli, in the order of `evstore --help`, each with the
# top-level commands and groups its ``register(app)`` adds. A new module is one line here
# (tests/cli/test_startup.py checks these lists against the modules). A command missing from
# the lists still works: its call builds the whole app, which is only slower.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "cluster_cmds": ("clusterconfig", "userconfig", "passwd"),
    "settings_cmds": ("clustermode", "show", "set", "edit", "override", "delete", "clustershow",
                      "clusterset", "changes", "commit", "clearchanges", "clear"),
    "node_cmds": ("run", "ccsconfig", "commitdetail", "demo"),
    "check_cmds": ("clustercheck",),
    "forensics_cmds": ("audit", "blame", "diff", "replay", "verify", "revert", "rollback",
                       "saveconfig", "loadconfig"),
    "gui_cmds": ("gui",),
    "render_cmds": ("render",),
    "home_cmds": ("init", "status", "sections"),
    "backup_cmds": ("backup",),
    "consume_cmds": ("get", "watch"),
}

# Global options that take a value (they may come before the command's name).
_VALUED = ("--home", "--user", "--passphrase-file")

_probes: dict[str, typer.Typer] = {}
_full: typer.Typer | None = None


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:  # answered before typer is imported
        sys.stdout.write(f"evstore {__version__}\n")
        return
    # Fast paths: a command served without typer at all is dispatched here, before
    # build(); it must accept exactly what its typer command accepts (`evstore get`).
    if command_of(args) in ("get", "watch"):
        from evstore_cli import consume_cmds

        code = consume_cmds.fast(args)  # None: a line only typer parses (--help...)
        if code is not None:
            sys.exit(code)
    build(command_of(args))(args=args, prog_name="evstore")


def command_of(args: Sequence[str]) -> str | None:
    """The command's name: the first word that is not a global option or its value."""
    skip = False
    for word in args:
        if skip:
            skip = False
        elif word in _VALUED:
            skip = True
        elif not word.startswith("-"):
            return word
        elif word == "--":
            return None
    return None


def build(command: str | None = None) -> typer.Typer:
    """The typer app with only the modules ``command`` needs (all of them for None, for an
    unknown name, and for a group, which several modules may extend)."""
    from evstore_cli.shell import new_root

    owners = [m for m, names in COMMAND_MODULES.items() if command in names]
    if command is None or not owners:
        return _whole()
    app = new_root()
    for name in owners:
        probe = _probe(name)
        if any(g.name == command for g in probe.registered_groups):
            return _whole()
        app.registered_commands += [c for c in probe.registered_commands
                                    if _name_of(c) == command]
    return app


def _whole() -> typer.Typer:
    global _full
    if _full is None:
        from evstore_cli.shell import new_root

        _full = new_root()
        for name in COMMAND_MODULES:
            probe = _probe(name)
            _full.registered_groups += probe.registered_groups
            _full.registered_commands += probe.registered_commands
    return _full


def _probe(module: str) -> typer.Typer:
    """What ``module.register`` adds, registered once per process into a scratch app
    (a module may also extend another module's group: node_cmds adds to clusterconfig)."""
    if module not in _probes:
        import typer

        probe = typer.Typer()
        importlib.import_module(f"evstore_cli.{module}").register(probe)
        _probes[module] = probe
    return _probes[module]


def _name_of(info: Any) -> str:
    if info.name:
        return str(info.name)
    return str(info.callback.__name__).lower().replace("_", "-")


def __getattr__(name: str) -> Any:
    if name == "app":
        return _whole()
    raise AttributeError(f"module 'evstore_cli.app' has no attribute {name!r}")


if __name__ == "__main__":
    main()
