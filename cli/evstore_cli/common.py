"""Options every command shares, and opening a node for one command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evstore.core.errors import InvalidInput
from evstore_cli import completion, output
from evstore_cli.global_options import GLOBAL

if TYPE_CHECKING:  # the store is imported by the commands that open it, not by every command
    from evstore.ops.node import Node


HomeOpt = Annotated[Path | None, typer.Option("--home", help="The node's home folder (or EVSTORE_HOME).",
                                              show_default=False)]
UserOpt = Annotated[str | None, typer.Option("--user", help="Acting user (default admin).",
                                             show_default=False)]
PassOpt = Annotated[Path | None, typer.Option("--passphrase-file",
                                              help="File whose first line is the passphrase.",
                                              show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to questions (scripts).")]
ModeOpt = Annotated[str | None, typer.Option("--mode", help="Act at this mode for this command only "
                                             "(cluster, group:NAME, machine:HOST).",
                                             show_default=False, autocompletion=completion.modes)]
SwitchOpt = Annotated[bool, typer.Option("--switch", help="Switch to an allowed mode if needed.")]


# The optional parts (pyproject's extras) and a module that each must provide.
EXTRAS = {
    "gui": ("starlette", "hypercorn", "jinja2", "itsdangerous"),
    "metrics": ("prometheus_client",),
    "asyncio": ("aiosqlite",),
}


def need(extra: str, what: str) -> None:
    """Refuse (one line, exit 1) when ``what`` needs an extra that is not installed."""
    import importlib.util

    from evstore.core.errors import OperationalError

    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise OperationalError(f"{what} needs the {extra} extra ({', '.join(missing)} "
                               f"missing): pip install 'evstore[{extra}]'")


def user_of(user: str | None) -> str:
    return user or GLOBAL.user


@contextmanager
def node_for(home: Path | None) -> Iterator[Node]:
    from evstore.ops.node import open_node, resolve_home

    with open_node(resolve_home(home or GLOBAL.home)) as node:
        yield node


def authenticated(node: Node, user: str | None, passphrase_file: Path | None,
                  what: str = "settings") -> str:
    """Check the acting user's passphrase and that its role may do ``what``."""
    name = user_of(user)
    secret = output.passphrase(passphrase_file or GLOBAL.passphrase_file)
    node.authenticate(name, secret)
    if what:
        from evstore.ops import users

        users.require(node, name, what)
    return name


@contextmanager
def staging(home: Path | None, user: str | None, passphrase_file: Path | None, mode: str | None,
            section: str, switch: bool) -> Iterator[tuple[Node, str, str]]:
    """Open the node for a settings change: (node, acting user, internal mode to act at)."""
    with node_for(home) as node:
        who = authenticated(node, user, passphrase_file)
        yield node, who, settings_mode(node, who, mode, section, switch)


def settings_mode(node: Node, user: str, mode: str | None, section: str, switch: bool) -> str:
    """The mode a settings command acts at, with the seed's restricted-mode handling."""
    if mode is not None:
        internal = node.to_internal(mode)
        _check_level(node, section, internal, explicit=True, switch=switch)
        return internal
    internal = node.mode_of(user)
    return _check_level(node, section, internal, explicit=False, switch=switch, user=user)


def _check_level(node: Node, section: str, internal: str, *, explicit: bool, switch: bool,
                 user: str = "admin") -> str:
    from evstore.core import catalog
    from evstore.core.modes import level_of

    if section not in catalog.SECTIONS:
        return internal  # the operation refuses it, or removes it (admit.removable_unknown)
    sec = catalog.get(section)
    if not node.in_cluster() or level_of(internal) in sec.levels:
        return internal
    target = _switch_target(node, sec.levels)
    allowed = ", ".join(lv for lv in ("cluster", "group", "machine") if lv in sec.levels)
    msg = (f"{section} cannot be set in {node.to_display(internal)}: it is {allowed} only; "
           f"use --mode {node.to_display(target)}")
    if explicit:
        raise InvalidInput(msg)
    if switch or output.confirm(f"{section} is {allowed} only. Switch to "
                                f"{node.to_display(target)}?"):
        node.set_mode(user, node.to_display(target))
        output.warn(f"switched to {node.to_display(target)}")
        return target
    raise InvalidInput(msg + " (or pass --switch)")


def _switch_target(node: Node, levels: frozenset[str]) -> str:
    if "cluster" in levels:
        return "cluster"
    if "machine" in levels:
        return f"machine:{node.mid}"
    st = node.structure()
    gid = st.group_of(node.mid)
    return f"group:{gid}"


def cluster_level(node: Node, user: str | None) -> None:
    """Cluster-mode commands act at cluster level. On a terminal in another mode, ask first
    whether to switch the current mode to cluster (default yes), as the seed does; without a
    terminal act, leaving the mode as it was."""
    who = user_of(user)
    if not node.in_cluster() or node.mode_of(who) == "cluster" or not output.interactive():
        return
    from evstore.ops import users

    if users.role_of(node, who) == "guest":
        return
    if output.confirm('This command is restricted to "cluster" mode. Switch to "cluster" mode?'):
        node.set_mode(who, "cluster")
