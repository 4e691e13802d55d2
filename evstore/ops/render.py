"""``evstore render``: a service's configuration file, made from a template over a machine's
effective settings, kept current (what consul-template and confd do).

Theory of operation
-------------------
The data come from the consumer API (``evstore.open_config``; evstore/consume): ``settings``
is ``{section: effective settings}`` of the machine, ``machine`` its hostname, ``group`` the
name of its group and ``cluster`` the cluster's name (None while standalone).

Templates are Jinja2 in a sandboxed environment with ``StrictUndefined``: a name the template
uses that does not exist, or a key a section lacks, is an error (``TemplateError``, exit 2)
naming the template file and line. Nothing is escaped (the output is a configuration file,
not HTML); a trailing newline is kept.

Writing (``write_if_changed``) never shows a reader a partial or empty file: the text goes to
a temporary file beside FILE, is flushed and fsynced, gets its mode (``--file-mode``, else the
old file's mode, else 0644), and is renamed over FILE; then the directory is fsynced so the
rename survives a crash. When FILE already holds the same bytes nothing is written (its inode
and mtime stay); a differing mode alone is fixed in place. A symlink FILE keeps pointing where
it did: its target is replaced.

Following (``follow``): the current settings are rendered first; then every change the watch
reports updates the data and the file is rendered again. A burst of changes is rendered once
(the changes already waiting are taken together). After each write that changed FILE the
``--exec`` command runs with ``sh -c``, one at a time (changes that arrive meanwhile wait and
are rendered together afterwards); its failure is logged and following goes on. A template
error while following is logged and FILE stays as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import stat
import subprocess
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evstore.core.errors import EvstoreError, InvalidInput, OperationalError

__all__ = ["DEFAULT_MODE", "RenderResult", "TemplateError", "Templater", "follow", "load",
           "parse_mode", "placement", "render_once", "write_if_changed"]

log = logging.getLogger("evstore.render")

DEFAULT_MODE = 0o644
BURST_QUIET_S = 0.003  # a change is part of the burst before it when it follows within this


class TemplateError(InvalidInput):
    """A template that does not parse, or uses a name or key that does not exist (exit 2)."""


def parse_mode(text: str | None) -> int | None:
    """``--file-mode``: octal (``0640``, ``640``, ``0o640``); empty or None: keep/default."""
    if text is None or not text.strip():
        return None
    raw = text.strip().lower().removeprefix("0o")
    try:
        mode = int(raw, 8)
    except ValueError:
        raise InvalidInput(f"--file-mode {text!r} is not an octal mode (for example 0640)"
                           ) from None
    if not 0 <= mode <= 0o7777:
        raise InvalidInput(f"--file-mode {text!r} is out of range (0000 to 7777)")
    return mode


# ---------------------------------------------------------------------- templates


class Templater:
    """One template file, loaded once, rendered over data (pure: no home, no FILE)."""

    def __init__(self, path: Path) -> None:
        import jinja2
        from jinja2.sandbox import SandboxedEnvironment

        self.path = path.resolve()
        try:
            source = self.path.read_text(encoding="utf-8")
        except OSError as e:
            raise InvalidInput(f"cannot read template {path}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"template {path} is not UTF-8 text") from None
        self._jinja = jinja2
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(self.path.parent)),
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
        try:  # compiled under the file's name: errors while rendering point at its lines
            code = self.env.compile(source, name=self.path.name, filename=str(self.path))
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"{path}:{e.lineno}: {e.message}") from None
        self.template = self.env.template_class.from_code(self.env, code,
                                                          self.env.make_globals(None))
        self.shown = str(path)

    def render(self, data: dict[str, Any]) -> str:
        jinja2 = self._jinja
        try:
            return str(self.template.render(**data))
        except jinja2.TemplateSyntaxError as e:  # an include that does not parse
            raise TemplateError(f"{e.filename or self.shown}:{e.lineno}: {e.message}") from None
        except (jinja2.UndefinedError, jinja2.TemplateError) as e:
            raise TemplateError(f"{self.shown}:{self._line(e)}: {_message(e)}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as e:
            raise TemplateError(f"{self.shown}:{self._line(e)}: {type(e).__name__}: {e}"
                                ) from None

    def _line(self, exc: BaseException) -> str:
        """The line of this template (or of a template it includes) the error arose on."""
        line = "?"
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename == str(self.path):
                line = str(frame.lineno)
            elif frame.filename.startswith(str(self.path.parent) + os.sep) and \
                    not frame.filename.endswith(".py"):
                line = f"{frame.lineno} (in {Path(frame.filename).name})"
        return line


def _message(exc: BaseException) -> str:
    text = str(exc)
    if "is undefined" in text or "has no attribute" in text:
        return f"undefined: {text}"
    return text


def load(path: Path) -> Templater:
    return Templater(path)


# ---------------------------------------------------------------------- the data


class Placement:
    """The group name and the cluster name of a machine, read on one read-only connection
    kept open (the structure is cached until the database changes)."""

    def __init__(self, home: Path, machine_id: str) -> None:
        from evstore.storage import feed

        self.machine_id = machine_id
        self.conn = feed.open_reader(home)

    def read(self) -> tuple[str | None, str | None]:
        from evstore.storage import feed, views

        with feed.snapshot(self.conn):
            st = views.structure(self.conn)
        if st.name is None or self.machine_id not in st.machines:
            return None, st.name
        gid = st.group_of(self.machine_id)
        return (st.groups.get(gid) if gid else None), st.name

    def close(self) -> None:
        self.conn.close()


def placement(config: Any) -> tuple[str | None, str | None]:
    """The group name and the cluster name of the config's machine (None, None standalone)."""
    where = Placement(config.home, config.machine_id)
    try:
        return where.read()
    finally:
        where.close()


def data_of(config: Any, settings: dict[str, Any],
            where: Placement | None = None) -> dict[str, Any]:
    group, cluster = where.read() if where is not None else placement(config)
    return {"settings": settings, "machine": config.machine, "group": group,
            "cluster": cluster}


def current_settings(config: Any) -> dict[str, Any]:
    return {s: config.get(s) for s in config.sections()}


# ---------------------------------------------------------------------- writing


def write_if_changed(out: Path, text: str, mode: int | None = None) -> bool:
    """Replace ``out`` atomically with ``text``; False (nothing written) when it already holds
    it. ``OperationalError`` when it cannot be written; the old file stays then."""
    target = Path(os.path.realpath(out))
    data = text.encode("utf-8")
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OperationalError(f"cannot write {out}: {e.strerror or e}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OperationalError(f"cannot write {out}: it is a directory")
    old_mode = stat.S_IMODE(st.st_mode) if st is not None else None
    want = mode if mode is not None else (old_mode if old_mode is not None else DEFAULT_MODE)
    if st is not None and st.st_size == len(data):
        try:
            same = target.read_bytes() == data
        except OSError:
            same = False
        if same:
            if old_mode != want:
                _chmod(target, want, out)
            return False
    _replace(target, data, want, out)
    return True


def _chmod(target: Path, mode: int, shown: Path) -> None:
    try:
        os.chmod(target, mode)
    except OSError as e:
        raise OperationalError(f"cannot set the mode of {shown}: {e.strerror or e}") from None


def _replace(target: Path, data: bytes, mode: int, shown: Path) -> None:
    directory = target.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".evstore-tmp",
                                   dir=directory)
    except OSError as e:
        raise OperationalError(f"cannot write {shown}: {e.strerror or e} (the new file is "
                               f"written beside it, in {directory})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:  # a signal too: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OperationalError(f"cannot write {shown}: {e.strerror or e}") from None
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ---------------------------------------------------------------------- one render


@dataclass(frozen=True)
class RenderResult:
    text: str
    changed: bool


def render_once(config: Any, template: Templater, out: Path | None, mode: int | None = None
                ) -> RenderResult:
    """Render the current settings; write ``out`` when given and different."""
    text = template.render(data_of(config, current_settings(config)))
    changed = write_if_changed(out, text, mode) if out is not None else False
    return RenderResult(text, changed)


# ---------------------------------------------------------------------- following


def run_exec(command: str, out: Path, cursor: str | None) -> int:
    """``sh -c COMMAND`` after a write; its exit status (logged when not 0)."""
    env = {**os.environ, "EVSTORE_OUT": str(out)}
    if cursor:
        env["EVSTORE_CURSOR"] = cursor
    try:
        done = subprocess.run(["sh", "-c", command], env=env, stdin=subprocess.DEVNULL,
                              check=False)
    except OSError as e:
        log.error("--exec %r could not start: %s", command, e.strerror or e)
        return 127
    if done.returncode != 0:
        log.error("--exec %r exited with status %s", command, done.returncode)
    return done.returncode


def _changes_in_thread(config: Any, start: str, box: queue.Queue[Any]) -> threading.Thread:
    """Run the blocking ``Config.watch`` in a daemon thread, handing its changes over."""

    def pump() -> None:
        try:
            for change in config.watch(from_cursor=start):
                box.put(change)
        except BaseException as exc:  # handed to the caller, which raises it
            box.put(exc)

    thread = threading.Thread(target=pump, name="evstore-render-watch", daemon=True)
    thread.start()
    return thread


def _batches(box: queue.Queue[Any]) -> Iterator[list[Any]]:
    """The changes as they come, a burst at a time."""
    while True:
        batch = [box.get()]
        while True:
            try:
                batch.append(box.get(timeout=BURST_QUIET_S))
            except queue.Empty:
                break
        for item in batch:
            if isinstance(item, EvstoreError | KeyboardInterrupt):
                raise item
            if isinstance(item, BaseException):  # e.g. the database became unreadable
                raise OperationalError(f"watching the home failed: {item}") from item
        yield batch


def follow(config: Any, template: Templater, out: Path, mode: int | None = None,
           command: str | None = None,
           on_render: Callable[[RenderResult, str | None], None] | None = None) -> None:
    """``render --watch``: render now, then again after every change (forever)."""
    from evstore.consume import open_config

    where = Placement(config.home, config.machine_id)
    start = config.cursor
    settings = current_settings(config)
    result = RenderResult(template.render(data_of(config, settings, where)), False)
    result = RenderResult(result.text, write_if_changed(out, result.text, mode))
    _after(result, out, command, start, on_render)
    # the watch reads in its own thread, on its own connection
    watcher = open_config(config.home, config.machine_id)
    box: queue.Queue[Any] = queue.Queue()
    _changes_in_thread(watcher, start, box)
    for batch in _batches(box):
        for change in batch:
            if change.settings is None:
                settings.pop(change.section, None)
            else:
                settings[change.section] = change.settings
        cursor = batch[-1].cursor
        try:
            text = template.render(data_of(config, settings, where))
            result = RenderResult(text, write_if_changed(out, text, mode))
        except (TemplateError, OperationalError) as e:
            log.error("%s; %s left as it was", e, out)
            continue
        _after(result, out, command, cursor, on_render)


def _after(result: RenderResult, out: Path, command: str | None, cursor: str | None,
           on_render: Callable[[RenderResult, str | None], None] | None) -> None:
    if on_render is not None:
        on_render(result, cursor)
    if result.changed and command:
        run_exec(command, out, cursor)
