"""The root of the typer app: the global options, and usage errors as one line.

Built fresh by ``evstore_cli.app.build`` with only the commands a call needs; see app.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from evstore._version import __version__
from evstore_cli.common import HomeOpt, PassOpt, UserOpt
from evstore_cli.global_options import GLOBAL

HELP = "Peer-to-peer configuration store for fleets of machines (cluster, group, machine)."


class RootGroup(TyperGroup):
    """The root command group. The command-line parser's errors (unknown option, missing
    argument, bad value or choice) become one line on stderr and exit 2, as every other error
    of the CLI; typer would print a multi-line box."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args,
                                **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args,
                                **extra)
        except typer.Abort:
            usage_error("aborted", None, code=1)
        except Exception as e:
            if not _is_click_error(e):
                raise
            if type(e).__name__ == "NoArgsIsHelpError":  # a bare group: the help was printed
                sys.exit(2)
            usage_error(e.format_message(), getattr(e, "ctx", None),  # type: ignore[attr-defined]
                        code=getattr(e, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


def _is_click_error(e: Exception) -> bool:
    """A ClickException of typer's vendored Click (its class is not public API)."""
    return any(c.__name__ == "ClickException" for c in type(e).__mro__)


def usage_error(message: str, ctx: Any, code: int = 2) -> None:
    """Print ``error: MESSAGE (try 'evstore CMD --help')`` on stderr and exit."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    hint = f" (try '{ctx.command_path} --help')" if ctx is not None else ""
    sys.stderr.write(f"error: {text}{hint}\n")
    sys.stderr.flush()
    sys.exit(code)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"evstore {__version__}\n")
        raise typer.Exit(0)


def new_root() -> typer.Typer:
    """The root app with its global options and no commands yet."""
    app = typer.Typer(
        name="evstore",
        help=HELP,
        cls=RootGroup,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,
        add_completion=True,  # --install-completion, --show-completion (issue 14 item 8)
    )
    app.callback()(root)
    return app


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
