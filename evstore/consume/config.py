"""The consumer API: a machine's effective settings, read and followed.

Theory of operation
-------------------
``open_config(home, machine)`` opens the home's database read-only (storage/feed.py) and
names the machine whose settings it reads: this home's own machine unless told otherwise.
``get`` and ``sections`` read the ``effective`` view, as committed and applied here.

``watch`` follows the ``feed`` table (migration m0008), which lists each change of that view
with an increasing id. A :class:`Follower` (pure: rows in, changes out) remembers the last id
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

This module imports only the standard library and evstore.storage.feed/notify, so
``evstore get`` starts fast; the asyncio and trio drivers live in evstore/consume/aio.py.
"""

from __future__ import annotations

import difflib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evstore.core.errors import InvalidInput, OperationalError
from evstore.storage import feed, notify
from evstore.storage.feed import Names, Row

if TYPE_CHECKING:
    from evstore.consume.aio import Watch

POLL_S = 0.05  # how often to look when no signal can wake us
SIGNALLED_POLL_S = 0.5  # a look now and then even with the signal (a writer may not announce)

__all__ = ["Change", "Config", "Follower", "nearest", "open_config"]


def nearest(kind: str, name: str, known: Iterable[str]) -> InvalidInput:
    """The error for an unknown name, naming the closest known one."""
    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    if close:
        return InvalidInput(f"unknown {kind} {name!r}: did you mean {close[0]!r}?")
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return InvalidInput(f"unknown {kind} {name!r} (known: {shown or 'none'})")


@dataclass(frozen=True)
class Change:
    """One section's effective settings on one machine, at one position of the feed.

    ``settings`` is None when the section left the machine's settings (e.g. the machine was
    removed from the cluster). ``initial`` marks the current settings a watch starts with (or
    falls back to for a cursor older than the feed keeps), as opposed to a change.
    """

    section: str
    machine: str
    source: str | None
    settings: dict[str, Any] | None
    cursor: str
    time: datetime
    event: str | None = None
    initial: bool = False

    def to_json(self) -> dict[str, Any]:
        """The change as ``evstore watch --json`` prints it."""
        return {
            "section": self.section, "machine": self.machine, "source": self.source,
            "settings": self.settings, "cursor": self.cursor,
            "time": self.time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": self.event, "initial": self.initial,
        }


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def format_cursor(tag: str | None, position: int) -> str:
    return f"{tag or 'none'}-{position}"


def parse_cursor(text: str, tag: str | None) -> int:
    """The position a cursor names on this home; ``InvalidInput`` for one it never issued."""
    prefix, sep, digits = text.strip().rpartition("-")
    if not sep or not digits.isdigit() or not prefix:
        raise InvalidInput(f"{text!r} is not a cursor (a cursor looks like "
                           f"{format_cursor(tag, 42)!r}: use one that watch printed)")
    if prefix != (tag or "none"):
        raise InvalidInput(f"the cursor {text!r} was not issued by this home (its cursors "
                           f"start with {(tag or 'none') + '-'!r})")
    return int(digits)


@dataclass
class Follower:
    """What a watch has reported, and where it is in the feed; pure (rows in, changes out).

    The drivers (``Config.watch``, evstore/consume/aio.py) read the rows in one read
    transaction per step and hand them over: ``begin`` then either ``initial`` or ``seed``
    and ``advance``, then ``advance`` for every later step.
    """

    machine: str
    sections: frozenset[str] | None
    start: str | None
    tag: str | None = None
    position: int = 0
    reported: dict[str, tuple[dict[str, Any] | None, str | None]] = field(default_factory=dict)

    def begin(self, tag: str | None, newest: int, oldest: int | None) -> bool:
        """Check the start cursor against the feed; True when the current settings are needed
        (no cursor, or one older than the rows kept)."""
        self.tag = tag
        if self.start is None:
            self.position = newest
            return True
        at = parse_cursor(self.start, tag)
        if at > newest:
            raise InvalidInput(f"the cursor {self.start!r} is ahead of this home's newest "
                               f"position ({format_cursor(tag, newest)}): it was not issued "
                               "here (a home restored from a backup forgets later cursors)")
        pruned = oldest - 1 if oldest is not None else newest
        self.position = newest if at < pruned else at
        return at < pruned

    def fell_behind(self, oldest: int | None) -> bool:
        """Were rows after ``position`` pruned before this watch read them?"""
        return oldest is not None and oldest > self.position + 1

    def _wanted(self, section: str) -> bool:
        return self.sections is None or section in self.sections

    def initial(self, rows: list[Row], names: Names) -> list[Change]:
        """The current settings of each watched section (a start without a usable cursor)."""
        at = _now()
        out = []
        for r in rows:
            if self._wanted(r.section):
                self.reported[r.section] = (r.settings, r.source)
                out.append(self._change(r, names, at, initial=True))
        return out

    def seed(self, rows: list[Row]) -> None:
        """What was last reported per section, as of the start cursor (the rows still kept)."""
        for r in rows:
            self.reported[r.section] = (r.settings, r.source)

    def advance(self, rows: list[Row], newest: int, names: Names) -> list[Change]:
        """The changes among ``rows`` (the feed after ``position`` up to ``newest``)."""
        self.position = max(self.position, newest)
        last: dict[str, Row] = {}
        for r in rows:
            if self._wanted(r.section):
                last[r.section] = r
        out = []
        for r in sorted(last.values(), key=lambda r: r.id):
            if self.reported.get(r.section, (None, "?")) != (r.settings, r.source):
                self.reported[r.section] = (r.settings, r.source)
                out.append(self._change(r, names, _utc(r.at_ms)))
        return out

    def _change(self, r: Row, names: Names, at: datetime, *, initial: bool = False) -> Change:
        position = self.position if initial else r.id
        return Change(r.section, names.hostname(self.machine), names.display(r.source),
                      r.settings, format_cursor(self.tag, position), at, r.event, initial)


class Config:
    """A machine's effective settings on one home; see the module docstring.

    ``get(section)`` and ``sections()`` read what is committed now; ``cursor`` is the
    position of the newest change, to start a later ``watch`` from. A Config holds one
    read-only database connection: close it (or use ``with``) when done.
    """

    def __init__(self, home: Path, conn: sqlite3.Connection, machine_id: str,
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
        return Follower(self.machine_id, self.check_sections(sections), from_cursor)

    def watch(self, sections: Iterable[str] | None = None,
              from_cursor: str | None = None) -> Iterator[Change]:
        """Block and yield changes: first the current settings of each watched section (or,
        ``from_cursor``, every change after it), then each change as it is applied here.

        Raises ``InvalidInput`` for an unknown section or a cursor this home never issued,
        when the iteration starts.
        """
        follower = self.follower(sections, from_cursor)
        return _watch(self.home, follower)

    def watch_async(self, sections: Iterable[str] | None = None,
                    from_cursor: str | None = None) -> Watch:
        """``watch`` as an async iterator, under trio or asyncio (evstore/consume/aio.py);
        also an async context manager that releases its connection."""
        from evstore.consume import aio

        return aio.watch(self.home, self.follower(sections, from_cursor))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Config:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- the blocking driver


def first_step(conn: sqlite3.Connection, f: Follower) -> list[Change]:
    with feed.snapshot(conn):
        resync = f.begin(feed.tag(conn), feed.newest(conn), feed.oldest(conn))
        names = feed.names(conn)
        if resync:
            return f.initial(feed.effective(conn, f.machine), names)
        f.seed(feed.as_of(conn, f.machine, f.position))
        newest = feed.newest(conn)
        return f.advance(feed.changes(conn, f.machine, f.position, newest), newest, names)


def next_step(conn: sqlite3.Connection, f: Follower) -> list[Change] | None:
    """The changes since the last step; None when the feed did not move."""
    with feed.snapshot(conn):
        newest = feed.newest(conn)
        if newest <= f.position:
            return None
        if f.fell_behind(feed.oldest(conn)):
            f.position = newest
            return f.initial(feed.effective(conn, f.machine), feed.names(conn))
        rows = feed.changes(conn, f.machine, f.position, newest)
        return f.advance(rows, newest, feed.names(conn) if rows else Names({}, {}))


def _watch(home: Path, follower: Follower) -> Iterator[Change]:
    conn = feed.open_reader(home)
    listener = None
    try:
        listener = notify.listen(home)  # before the first read: no change falls in between
        yield from first_step(conn, follower)
        seen = feed.data_version(conn)
        while True:
            if listener is not None:
                listener.drain()
            changes = next_step(conn, follower)
            if changes:
                yield from changes
                continue
            seen = _wait(conn, listener, seen)
    finally:
        if listener is not None:
            listener.close()
        conn.close()


def _wait(conn: sqlite3.Connection, listener: notify.Listener | None, seen: int) -> int:
    """Until a change is announced, or another connection committed (``data_version``)."""
    while True:
        if listener is not None:
            if listener.wait(SIGNALLED_POLL_S):
                return seen
        else:
            time.sleep(POLL_S)
        now = feed.data_version(conn)
        if now != seen:
            return now


# ---------------------------------------------------------------------- opening


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    raw = home if home is not None else os.environ.get("EVSTORE_HOME")
    if not raw:
        raise InvalidInput("no home folder: pass --home DIR or set EVSTORE_HOME")
    return Path(raw)


def _own_machine(home: Path, conn: sqlite3.Connection) -> str | None:
    mid = feed.own_machine(conn)
    if mid:
        return mid
    try:
        return (home / "host.pub").read_text().strip() or None
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
