"""Following the feed: :class:`Change`, the pure :class:`Follower`, and the blocking watch.

See evstore/consume/config.py for the theory of operation. The asyncio and trio drivers
(evstore/consume/aio.py) feed the same Follower with the same reads.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from evstore.consume.cursor import format_cursor, parse_cursor
from evstore.core.errors import InvalidInput
from evstore.storage import feed, notify
from evstore.storage.feed import Names, Row

POLL_S = 0.05  # how often to look when no signal can wake us
SIGNALLED_POLL_S = 0.5  # a look now and then even with the signal (a writer may not announce)

__all__ = ["Change", "Follower", "first_step", "next_step", "watch"]


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


@dataclass
class Follower:
    """What a watch has reported, and where it is in the feed; pure (rows in, changes out).

    The drivers (``Config.watch``, evstore/consume/aio.py) read the rows in one read
    transaction per step and hand them over: ``begin``, then ``initial`` or ``advance``,
    then ``advance`` for every later step.

    From a cursor, nothing counts as reported yet: every watched section with a row after the
    cursor is reported (its last row). Guessing what the earlier watcher printed from the rows
    before the cursor would be wrong when a burst was coalesced across it (a section's early
    row in a burst is reported only with that section's last row, after the cursors of other
    sections' changes), and would lose a change; the price is, rarely, a section reported
    again with settings equal to what the earlier watcher printed (a rebuild's churn after the
    cursor).
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


def first_step(conn: sqlite3.Connection, f: Follower) -> list[Change]:
    with feed.snapshot(conn):
        resync = f.begin(feed.tag(conn), feed.newest(conn), feed.oldest(conn))
        names = feed.names(conn)
        if resync:
            return f.initial(feed.effective(conn, f.machine), names)
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


def watch(home: str, follower: Follower) -> Iterator[Change]:
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
