"""The consumer API: a machine's effective settings, read and followed.

Theory of operation
-------------------
``open_config(home, machine)`` opens the home's database read-only (storage/feed.py) and
names the machine whose settings it reads: this home's own machine unless told otherwise.
``get`` and ``sections`` read the ``effective`` view, as committed and applied here.

``watch`` follows the ``feed`` table (migration m0008), which lists each change of that view
with an increasing id. A ``Follower`` (watching.py; pure: rows in, changes out) remembers the last id
it read and what it last reported per section. Each step reads, in one read transaction, the
rows after that id, keeps the last row per section (a burst, or a rebuild's delete and
re-insert, is one change) and reports the sections whose settings or source differ from what
it last reported, in feed order. Hence, once changes stop, the last change reported for a
section equals its effective settings.

A cursor names a position in one home's feed: ``TAG-ID``, where TAG is the home's random
``feed_tag``. Watching ``from_cursor`` reports every change after it. A cursor another home
issued, or one past the newest position here, is refused (``InvalidInput``); one so old that
the rows after it were pruned (the feed keeps the last 100,000) is answered with the current
settings of each watched section, marked ``initial`` like the first items of a watch without
a cursor.

Waiting between steps uses the home's change signal (storage/notify.py), with a look at
``PRAGMA data_version`` every half second in case a writer did not announce; where the
signal cannot work (another OS, a read-only home) it looks every 50 ms.

This module imports only the standard library, evstore.storage.feed and the cursors
(evstore/consume/cursor.py), so ``evstore get`` starts fast. What only a watch needs is
loaded when a watch starts: the follower and the blocking watch in
evstore/consume/watching.py, the asyncio and trio drivers in evstore/consume/aio.py.
"""

from __future__ import annotations

import os

from evstore.consume.cursor import format_cursor, parse_cursor
from evstore.core.errors import InvalidInput, OperationalError
from evstore.storage import feed
from evstore.storage.feed import Names, Row

TYPE_CHECKING = False  # (not typing's: ``evstore get`` imports neither typing nor dataclasses)
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Iterator
    from typing import Any

    from evstore.consume.aio import Watch
    from evstore.consume.watching import Change, Follower

__all__ = ["Config", "format_cursor", "nearest", "open_config", "parse_cursor"]


def nearest(kind: str, name: str, known: Iterable[str]) -> InvalidInput:
    """The error for an unknown name, naming the closest known one."""
    import difflib

    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    if close:
        return InvalidInput(f"unknown {kind} {name!r}: did you mean {close[0]!r}?")
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return InvalidInput(f"unknown {kind} {name!r} (known: {shown or 'none'})")


class Config:
    """A machine's effective settings on one home; see the module docstring.

    ``get(section)`` and ``sections()`` read what is committed now; ``cursor`` is the
    position of the newest change, to start a later ``watch`` from. A Config holds one
    read-only database connection: close it (or use ``with``) when done.
    """

    def __init__(self, home: str, conn: sqlite3.Connection, machine_id: str,
                 names: Names) -> None:
        self.home = home
        self.machine_id = machine_id
        self._conn = conn
        self._names = names

    @property
    def machine(self) -> str:
        """The machine's hostname."""
        return self._names.hostname(self.machine_id)

    def _rows(self) -> dict[str, Row]:
        with feed.snapshot(self._conn) as conn:
            return {r.section: r for r in feed.effective(conn, self.machine_id)}

    def sections(self) -> list[str]:
        """The sections this machine has settings for, in name order."""
        return sorted(self._rows())

    def get(self, section: str) -> dict[str, Any]:
        """The machine's effective settings of ``section`` (``InvalidInput`` when unknown)."""
        rows = self._rows()
        row = rows.get(section)
        if row is None or row.settings is None:
            raise nearest("section", section, rows)
        return row.settings

    def source(self, section: str) -> str | None:
        """The mode the section's settings come from (``cluster``, ``group:NAME``...)."""
        rows = self._rows()
        if section not in rows:
            raise nearest("section", section, rows)
        return self._names.display(rows[section].source)

    @property
    def cursor(self) -> str:
        """The newest position of this home's feed: a watch from it reports later changes."""
        with feed.snapshot(self._conn) as conn:
            return format_cursor(feed.tag(conn), feed.newest(conn))

    def check_sections(self, sections: Iterable[str] | None) -> frozenset[str] | None:
        """The sections to watch (None: all), each checked to exist."""
        if sections is None:
            return None
        wanted = frozenset(sections)
        if not wanted:
            return None
        known = set(self._rows())
        for s in sorted(wanted):
            if s not in known:
                raise nearest("section", s, known)
        return wanted

    def follower(self, sections: Iterable[str] | None, from_cursor: str | None) -> Follower:
        from evstore.consume.watching import Follower

        return Follower(self.machine_id, self.check_sections(sections), from_cursor)

    def watch(self, sections: Iterable[str] | None = None,
              from_cursor: str | None = None) -> Iterator[Change]:
        """Block and yield changes: first the current settings of each watched section (or,
        ``from_cursor``, every change after it), then each change as it is applied here.

        Raises ``InvalidInput`` for an unknown section or a cursor this home never issued,
        when the iteration starts.
        """
        follower = self.follower(sections, from_cursor)
        from evstore.consume.watching import watch as follow

        return follow(self.home, follower)

    def watch_async(self, sections: Iterable[str] | None = None,
                    from_cursor: str | None = None) -> Watch:
        """``watch`` as an async iterator, under trio or asyncio (evstore/consume/aio.py);
        also an async context manager that releases its connection."""
        from evstore.consume.aio import watch as follow_async

        return follow_async(self.home, self.follower(sections, from_cursor))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Config:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- opening


def resolve_home(home: str | os.PathLike[str] | None) -> str:
    raw = home if home is not None else os.environ.get("EVSTORE_HOME")
    if not raw:
        raise InvalidInput("no home folder: pass --home DIR or set EVSTORE_HOME")
    return os.fspath(raw)


def _own_machine(home: str, conn: sqlite3.Connection) -> str | None:
    mid = feed.own_machine(conn)
    if mid:
        return mid
    try:
        with open(os.path.join(home, "host.pub"), encoding="ascii") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _find_machine(name: str, names: Names, have: set[str]) -> str:
    if name in have:
        return name
    found = [mid for mid, m in names.machines.items()
             if mid in have and name in (m.get("hostname"), m.get("serial"))]
    if len(found) == 1:
        return found[0]
    if found:  # a hostname reused after a removal: the machine still a member
        live = [mid for mid in found if not names.machines[mid].get("removed")]
        if len(live) == 1:
            return live[0]
        raise InvalidInput(f"several machines are named {name!r}: give its serial")
    raise nearest("machine", name, [names.hostname(mid) for mid in have])


def open_config(home: str | os.PathLike[str] | None = None,
                machine: str | None = None) -> Config:
    """Open a home's effective settings for reading; see :class:`Config`.

    ``home`` defaults to ``EVSTORE_HOME``; ``machine`` (a hostname, serial or machine id)
    to the home's own machine. Needs no passphrase and never writes to the home.
    """
    where = resolve_home(home)
    conn = feed.open_reader(where)
    try:
        with feed.snapshot(conn):
            names = feed.names(conn)
            have = feed.machines_with_settings(conn)
        if machine is None:
            mid = _own_machine(where, conn)
            if mid is None or mid not in have:
                raise OperationalError(f"{where} holds no settings of its own machine yet")
        else:
            mid = _find_machine(machine, names, have)
    except BaseException:
        conn.close()
        raise
    return Config(where, conn, mid, names)
