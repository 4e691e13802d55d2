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

# `evstore --help` (and a bare `evstore`): every command's name and the first paragraph of its
# help, in the order typer lists them (each module's commands, then the groups). The top-level
# help is printed by a root app whose commands are these stubs, so it imports no command
# module; tests/cli/test_startup.py checks that it prints exactly what the whole app prints.
HELP_INDEX: tuple[tuple[str, str], ...] = (
    ('passwd', 'Change a passphrase (staged until commit).'),
    ('clustermode', "Show or set this user's current mode on this home."),
    ('show', "Settings of SECTION at a mode, or a machine's effective settings and their source."),
    ('set', 'Stage a change at the current mode (defines SECTION there first if needed).'),
    ('edit', 'Stage a whole replacement of SECTION from a JSON file.'),
    ('override', 'Define settings at this mode, from defaults (the default) or as a copy of '
                 'another mode.'),
    ('delete', "Stage the removal of this mode's settings (it inherits again)."),
    ('clustershow', 'The modes at which SECTION is defined.'),
    ('clusterset', "Copy or move this mode's settings of SECTION to another mode or to all "
                   'groups.'),
    ('changes', 'Staged, uncommitted changes of this user.'),
    ('commit', 'Commit all staged changes, all levels, as one signed atomic commit.'),
    ('clearchanges', "Discard all staged changes of this user (after checking the user's "
                     'passphrase).'),
    ('clear', 'Alias of clearchanges.'),
    ('run', 'Serve this node: admin and cluster-only ports, pings, anti-entropy (Ctrl-C stops).'),
    ('ccsconfig', "Show, enable or disable the cluster-only port (the seed's CCS)."),
    ('commitdetail', 'What a commit changed and, per machine, whether and when it arrived.'),
    ('demo', 'A real 3-node cluster on loopback in a temporary folder, walked through, then '
             'stopped.'),
    ('clustercheck', "Compare all machines' settings at one point of the log; list "
                     'superseded changes.'),
    ('audit', 'Who changed what, when, where: the log, oldest first, one row per change.'),
    ('blame', 'For each effective value of SECTION on a machine: the mode and event it came '
              'from.'),
    ('diff', 'How effective settings changed between two points in time.'),
    ('replay', 'Rebuild the configuration offline from a copy of a log, as of a point in time.'),
    ('verify', 'Check every signature and hash chain; report forged, altered, missing, '
               'forked and\ninadmissible events (and, with --views, stored views that differ '
               "from the log's)."),
    ('revert', 'Stage the inverse of one past commit, to review and commit like any change.'),
    ('rollback', "Stage whatever brings the cluster's shared settings back to how they were "
                 'at a time.'),
    ('saveconfig', 'Export the whole configuration (all levels) as XML.'),
    ('loadconfig', 'Load a saved configuration as staged changes (a backup of the current '
                   'one is saved first).'),
    ('gui', 'Serve the web pages for this home until interrupted (SIGINT or SIGTERM).'),
    ('render', 'Write FILE from TEMPLATE over the effective settings (settings, machine, '
               'group, cluster).'),
    ('init', 'Make a standalone machine: database, host key (0600), identity, admin user.'),
    ('status', 'Identity, cluster, mode, event counts, version vector, state digest, peers, '
               'alerts.'),
    ('sections', 'The catalog of sections, with the levels each may be set at, its keys and '
                 'defaults.'),
    ('backup', "A consistent copy of this home's database, for `replay`, `verify` or a restore."),
    ('get', "This machine's effective settings of SECTION (or of KEY) as JSON; no passphrase."),
    ('watch', 'The current settings, then one line per change as it is applied here '
              '(Ctrl-C\nstops).'),
    ('clusterconfig', 'Create and administer the cluster (takes effect at once).'),
    ('userconfig', "The cluster's one user database (cluster level)."),
)

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
    if args == ["--help"] and _help_on_a_pipe():  # typer's layout, drawn without typer
        return
    # Fast paths: a command served without typer at all is dispatched here, before
    # build(); it must accept exactly what its typer command accepts (`evstore get`).
    if command_of(args) in ("get", "watch"):
        from evstore_cli import consume_cmds

        code = consume_cmds.fast(args)  # None: a line only typer parses (--help...)
        if code is not None:
            sys.exit(code)
    elif command_of(args) in ("status", "show"):
        from evstore_cli import fast_reads

        code = fast_reads.run(args)  # None: a line only typer parses
        if code is not None:
            sys.exit(code)
    build(command_of(args), args)(args=args, prog_name="evstore")


def _help_on_a_pipe() -> bool:
    """Print the top-level help as typer would on this stdout, if it is a pipe of a width
    helpindex.py draws for."""
    from evstore_cli import helpindex

    width = helpindex.piped_width()
    if width is None or _completing():
        return False
    sys.stdout.write(helpindex.render(HELP_INDEX, width))
    sys.stdout.flush()
    return True


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


def build(command: str | None = None, args: Sequence[str] = ()) -> typer.Typer:
    """The typer app with only the modules ``command`` needs (all of them for None, for an
    unknown name, and for a group, which several modules may extend)."""
    from evstore_cli.shell import new_root

    owners = [m for m, names in COMMAND_MODULES.items() if command in names]
    if command is None and _help_only(args):
        return _index()
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


def _help_only(args: Sequence[str]) -> bool:
    """Can this call (no command named) only print the top-level help, a usage error or the
    version? Not under shell completion (which reads the command line from the environment)
    nor after ``--`` (a command name may follow it)."""
    return "--" not in args and not _completing()


def _completing() -> bool:
    """Is this call shell completion (which reads the command line from the environment)?"""
    import os

    return any(k.startswith("_EVSTORE_COMPLETE") for k in os.environ)


def _index() -> typer.Typer:
    """The root app with a stub per command of ``HELP_INDEX``: what `evstore --help` lists."""
    from evstore_cli.shell import new_root

    app = new_root()
    for name, text in HELP_INDEX:
        app.command(name=name, help=text)(_listed_only)
    return app


def _listed_only() -> None:  # pragma: no cover - _help_only() keeps a stub from running
    raise RuntimeError("a command of the help index was run: build the whole app instead")


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
