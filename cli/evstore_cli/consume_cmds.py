"""``evstore get`` and ``evstore watch``: thin shells over evstore.consume.

Services call ``get`` in loops, so its start costs a few times a bare ``python``: ``main``
(evstore_cli/app.py) hands a plain command line to :func:`fast` before typer is imported, and
this module imports typer and the CLI's helpers only inside :func:`register` (the typer
commands, for ``--help`` and anything :func:`fast` does not parse). Both paths call the same
:func:`get` and :func:`watch`, so they behave alike.

Errors are one line on stderr, ``error: ...``, exit 2 for bad input (an unknown section, key
or machine, a cursor this home never issued) and 1 for operational failures.

``watch --exec CMD`` runs CMD with ``sh -c`` in a worker thread after a change (not for the
current settings printed first): the change's JSON on its stdin, ``EVSTORE_SECTION`` and
``EVSTORE_CURSOR`` in its environment. One run at a time; changes that arrive while it runs
leave only the newest waiting, so a burst gives one more run. A failing CMD is reported on
stderr with its exit status, and the watch goes on.
(No ``from __future__ import annotations`` here: typer reads the annotations of the commands
that :func:`register` defines inside a function, so they must be objects, not strings.)
"""

import json
import os
import sys

from evstore.core.errors import EvstoreError

TYPE_CHECKING = False  # (not typing's: `evstore get` imports neither typing nor dataclasses)
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Sequence
    from typing import Any

    import typer

    from evstore.consume import Change

_GLOBAL_VALUED = ("--home", "--user", "--passphrase-file")


def _error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


HIDDEN = "(hidden)"


def hide_hashes(data: "Any") -> "Any":
    """The CLI never prints a passphrase hash: evstore_cli.output.hide_hashes's rule, here
    because that module imports typer (a test checks that both agree)."""
    if isinstance(data, dict):
        return {k: (HIDDEN if k == "passphrase_hash" and v is not None else hide_hashes(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [hide_hashes(v) for v in data]
    return data


def _dump(value: "Any", pretty: bool) -> str:
    value = hide_hashes(value)
    if pretty:
        return json.dumps(value, indent=2, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------- get


def get(home: str | None, section: str, key: str | None, machine: str | None,
        as_json: bool) -> int:
    """Print the section (or one key of it); the exit code."""
    from evstore.consume import config as consume

    try:
        with consume.open_config(home, machine) as cfg:
            settings = hide_hashes(cfg.get(section))
        if key is None:
            out = _dump(settings, True)
        elif key not in settings:
            raise consume.nearest(f"key of {section}", key, settings)
        elif isinstance(settings[key], str) and not as_json:
            out = settings[key]
        else:
            out = _dump(settings[key], True)
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
        return 0
    except EvstoreError as e:
        _error(str(e))
        return e.exit_code


# ---------------------------------------------------------------------- watch


class Runner:
    """Runs ``--exec`` CMD, one at a time, the newest waiting change next (see the module)."""

    def __init__(self, command: str) -> None:
        import threading

        self.command = command
        self.pending: Change | None = None
        self.busy = False
        self.runs = 0
        self.cond = threading.Condition()
        self.child: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import threading

        threading.Thread(target=self._loop, name="evstore-exec", daemon=True).start()

    def submit(self, change: "Change") -> None:
        with self.cond:
            self.pending = change
            self.cond.notify_all()

    def idle(self) -> None:
        """Until nothing is running or waiting."""
        with self.cond:
            self.cond.wait_for(lambda: self.pending is None and not self.busy)

    def _loop(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.pending is not None)
                change, self.pending, self.busy = self.pending, None, True
            try:
                if change is not None:
                    self._run(change)
            finally:
                with self.cond:
                    self.busy = False
                    self.cond.notify_all()

    def _run(self, change: "Change") -> None:
        import subprocess

        env = dict(os.environ, EVSTORE_SECTION=change.section, EVSTORE_CURSOR=change.cursor)
        data = (json.dumps(hide_hashes(change.to_json()), ensure_ascii=False) + "\n").encode()
        self.runs += 1
        try:
            self.child = subprocess.Popen(["/bin/sh", "-c", self.command], stdin=subprocess.PIPE,
                                          env=env)
            try:
                self.child.communicate(data)
            except BrokenPipeError:  # CMD did not read its stdin: not an error
                self.child.wait()
            code = self.child.returncode
        except OSError as e:
            _error(f"--exec could not start {self.command!r}: {e}")
            return
        if code != 0:
            _warn(f"--exec {self.command!r} exited with status {code} "
                   f"(section {change.section}, cursor {change.cursor}); watching on")


def line_of(change: "Change", as_json: bool) -> str:
    """One line of ``watch`` output."""
    if as_json:
        return json.dumps(hide_hashes(change.to_json()), ensure_ascii=False)
    what = "absent" if change.settings is None else _dump(change.settings, False)
    label = "now" if change.initial else "changed"
    return (f"{change.cursor} {change.machine} {change.section} {label} "
            f"(from {change.source or '-'}): {what}")


class _Stop(Exception):
    """SIGTERM asks a watch to end (as SIGINT does)."""


def _on_term(signum: int, frame: object) -> None:
    raise _Stop


def watch(home: str | None, sections: "Sequence[str]", machine: str | None,
          from_cursor: str | None, exec_cmd: str | None, once: bool, as_json: bool) -> int:
    """Follow the machine's settings until interrupted (or the first change, ``once``)."""
    import signal

    from evstore.consume import config as consume

    old = signal.signal(signal.SIGTERM, _on_term)
    runner = Runner(exec_cmd) if exec_cmd else None
    try:
        with consume.open_config(home, machine) as cfg:
            if runner is not None:
                runner.start()
            for change in cfg.watch(sections or None, from_cursor):
                if runner is not None and not change.initial:
                    runner.submit(change)  # (before the line: who read it knows it is queued)
                sys.stdout.write(line_of(change, as_json) + "\n")
                sys.stdout.flush()
                if once and not change.initial:
                    break
        if runner is not None:
            runner.idle()
        return 0
    except EvstoreError as e:
        _error(str(e))
        return e.exit_code
    except (KeyboardInterrupt, _Stop):
        return 0
    except BrokenPipeError:  # the reader went away (`evstore watch | head -1`)
        _quiet_stdout()
        return 0
    finally:
        signal.signal(signal.SIGTERM, old)


def _quiet_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


# ---------------------------------------------------------------------- the fast path


class Parsed:
    """A ``get``/``watch`` command line, as :func:`parse` read it."""

    def __init__(self) -> None:
        self.home: str | None = None
        self.command = ""
        self.words: list[str] = []
        self.machine: str | None = None
        self.from_cursor: str | None = None
        self.exec_cmd: str | None = None
        self.once = False
        self.json = False


_OPTIONS = {"get": ("--machine",), "watch": ("--machine", "--from", "--exec")}
_FLAGS = {"get": ("--json",), "watch": ("--json", "--once")}


def parse(args: "Sequence[str]") -> "Parsed | None":
    """A plain ``get``/``watch`` command line; None for anything else (typer answers it)."""
    p = Parsed()
    rest = list(args)
    while rest:
        word = rest.pop(0)
        name, eq, inline = word.partition("=")
        valued = _GLOBAL_VALUED + _OPTIONS.get(p.command, ())
        if name in valued and word.startswith("--"):
            if not eq:
                if not rest:
                    return None
                inline = rest.pop(0)
            if not _set(p, name, inline):
                return None
        elif word in _FLAGS.get(p.command, ()):
            setattr(p, word[2:], True)
        elif word.startswith("-"):
            return None  # --help, -h, --, an option this path does not know: typer's turn
        elif not p.command:
            if word not in _OPTIONS:
                return None
            p.command = word
        else:
            p.words.append(word)
    if p.command == "get" and len(p.words) not in (1, 2):
        return None
    return p if p.command else None


def _set(p: Parsed, name: str, value: str) -> bool:
    if name == "--home":
        p.home = value
    elif name == "--machine":
        p.machine = value
    elif name == "--from":
        p.from_cursor = value
    elif name == "--exec":
        p.exec_cmd = value
    return True  # --user, --passphrase-file: accepted and unused (no passphrase is needed)


def fast(args: "Sequence[str]") -> int | None:
    """Run a plain ``get``/``watch`` without typer; None when typer must parse ``args``."""
    p = parse(args)
    if p is None:
        return None
    if p.command == "get":
        key = p.words[1] if len(p.words) > 1 else None
        return get(p.home, p.words[0], key, p.machine, p.json)
    return watch(p.home, p.words, p.machine, p.from_cursor, p.exec_cmd, p.once, p.json)


# ---------------------------------------------------------------------- typer


def register(app: "typer.Typer") -> None:
    """Add ``get`` and ``watch`` to the root app (the typer path: help, unusual lines)."""
    from pathlib import Path
    from typing import Annotated

    import typer

    from evstore_cli.common import HomeOpt
    from evstore_cli.global_options import GLOBAL

    machine_opt = typer.Option("--machine", help="Another machine (hostname or serial).",
                               show_default=False)

    def _home(home: Path | None) -> str | None:
        chosen = home or GLOBAL.home
        return None if chosen is None else str(chosen)

    @app.command(name="get")
    def get_cmd(
        section: Annotated[str, typer.Argument(help="A section (see `evstore sections`).",
                                               show_default=False)],
        key: Annotated[str | None, typer.Argument(help="One key of the section.",
                                                  show_default=False)] = None,
        machine: Annotated[str | None, machine_opt] = None,
        json_out: Annotated[bool, typer.Option(
            "--json", help="A string value as JSON too (quoted).")] = False,
        home: HomeOpt = None,
    ) -> None:
        """This machine's effective settings of SECTION (or of KEY) as JSON; no passphrase."""
        raise typer.Exit(get(_home(home), section, key, machine, json_out))

    @app.command(name="watch")
    def watch_cmd(
        sections: Annotated[list[str] | None, typer.Argument(
            help="Sections to follow (all when none is named).", show_default=False)] = None,
        machine: Annotated[str | None, machine_opt] = None,
        from_cursor: Annotated[str | None, typer.Option(
            "--from", help="Print every change after this cursor (one watch printed).",
            show_default=False)] = None,
        exec_cmd: Annotated[str | None, typer.Option(
            "--exec", help="Run this with sh -c after a change (JSON on stdin, "
            "EVSTORE_SECTION, EVSTORE_CURSOR).", show_default=False)] = None,
        once: Annotated[bool, typer.Option("--once", help="Exit after the first change.")] = False,
        json_out: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
        home: HomeOpt = None,
    ) -> None:
        """The current settings, then one line per change as it is applied here (Ctrl-C
        stops)."""
        raise typer.Exit(watch(_home(home), sections or [], machine, from_cursor, exec_cmd,
                               once, json_out))


__all__ = ["fast", "get", "parse", "register", "watch"]
