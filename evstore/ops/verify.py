"""``verify``: check a log's every signature, id, derived column and chain, and its members.

Problems are reported by kind (the contract's names):

``forged``      the signature does not verify against the origin key in the signed bytes;
``altered``     the stored bytes no longer hash to the event's id, are not a canonical event,
                or a stored column (origin, seq, prev, clock, wall, user, kind) disagrees
                with them;
``gap``         an origin's chain misses a seq: an event whose predecessor is absent and that is
                no anchor (init, create, join, rekey, standalone), a chain head below the one
                recorded in ``anchors``, or a chain start above it;
``fork``        two different events signed by one key at one seq (the evidence kept in
                ``forks``, a ``forked`` flag, or an event whose ``prev`` names another event
                than the one stored before it);
``non_member``  events signed by a key that no create, admit or join ever brought in, by a
                removed machine past its removal's cutoff, or by a key a rekey replaced past
                the cutoff its successor's admission names (the database's own machine is
                exempt: its standalone history is its own).
``invalid``     a validly signed event of the database's current scope that the admissibility
                rule (evstore/core/admit.py) refuses: unknown kind, a value the catalog
                refuses, a user who does not exist or whose role may not make the change.
                It is kept in the log and applied nowhere; the detail gives the reason.
``view``        (with ``views=True``) a row of a materialized view that differs from the
                views rebuilt in memory from the log (a hand-edited ``effective`` row...).

The events table is streamed in (origin, seq) order, so memory stays flat on large logs.
Held and pending events are checked for forgery and alteration too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evstore.core import admit, encoding, events
from evstore.core.errors import EncodingError, OperationalError, VerificationError
from evstore.ops import history
from evstore.ops.history import Progress, open_copy, owner_keys
from evstore.ops.node import DB_NAME, Node
from evstore.storage import integrity, rebuild, views
from evstore.storage.connect import open_db
from evstore.storage.log import ANCHOR_KINDS, EventLog

_MEMBER_KINDS = ("node.init", "cluster.create", "cluster.admit", "cluster.join", "node.rekey",
                 "machine.remove")
_COLUMNS = ("id", "origin", "seq", "prev", "clock", "wall", "user", "kind")


@dataclass
class Members:
    """Who may write: admitted keys, removal cutoffs, this database's own keys, hostnames."""

    keys: set[str] = field(default_factory=set)
    cutoffs: dict[str, int] = field(default_factory=dict)
    replaced: set[str] = field(default_factory=set)  # old keys a rekey retired (a cutoff each)
    owners: set[str] = field(default_factory=set)
    hosts: dict[str, str] = field(default_factory=dict)

    def _cut(self, key: str, seq: int) -> None:
        self.cutoffs[key] = max(self.cutoffs.get(key, 0), seq)  # as ``@cutoff`` merges

    def note(self, kind: str, origin: str, payload: dict[str, Any]) -> None:
        machine = payload.get("machine")
        host = machine.get("hostname") if isinstance(machine, dict) else None
        if kind == "cluster.admit":
            for key in (payload.get("key"), payload.get("machine_id")):
                if isinstance(key, str):
                    self.keys.add(key)
                    if host:
                        self.hosts[key] = host
            old, cut = payload.get("replaces"), payload.get("cutoff")
            if isinstance(old, str) and type(cut) is int:
                self._cut(old, cut)
                self.replaced.add(old)
        elif kind == "machine.remove":
            for key, seq in payload.get("cutoffs", {}).items():
                self._cut(key, int(seq))
        elif kind != "node.init":
            self.keys.add(origin)
        if host and kind != "cluster.admit":
            self.hosts.setdefault(origin, host)

    def why_not(self, origin: str, seq: int) -> str | None:
        if origin in self.owners:
            return None
        if origin not in self.keys:
            return "signed by a key that was never admitted to the cluster"
        cut = self.cutoffs.get(origin)
        if cut is not None and seq > cut:
            if origin in self.replaced:
                return f"signed with a key that a rekey replaced, after its cutoff (seq {cut})"
            return f"signed by a removed machine after its removal (cutoff seq {cut})"
        return None

    def host(self, origin: str) -> str:
        return self.hosts.get(origin, origin)


def _members(conn: sqlite3.Connection) -> Members:
    m = Members(owners=owner_keys(conn))
    rows = integrity.events_of_kinds(conn, _MEMBER_KINDS)
    for origin, kind, raw in rows:
        m.note(kind, origin, _payload(raw))
    m.keys |= m.owners
    return m


def _payload(raw: bytes) -> dict[str, Any]:
    try:
        env = encoding.loads_json(raw)
    except EncodingError:
        return {}
    p = env.get("payload") if isinstance(env, dict) else None
    return p if isinstance(p, dict) else {}


# --------------------------------------------------------------------------- one event


def check_bytes(event_id: str, raw: bytes, sig: bytes) -> tuple[str, str] | events.Event:
    """The parsed event, or (kind, detail) when its bytes or signature do not check out."""
    if events.event_id(raw) != event_id:
        return "altered", "its bytes were changed: the id is not the SHA-256 of the stored bytes"
    try:
        return events.parse(raw, sig)
    except VerificationError:
        return "forged", "the signature does not verify against the origin key"
    except EncodingError as e:
        return "altered", f"its bytes are not a canonical event ({e})"


def _check_columns(row: tuple[Any, ...], ev: events.Event) -> tuple[str, str] | None:
    derived = (ev.id, ev.origin, ev.seq, ev.prev, ev.clock, ev.wall, ev.user, ev.kind)
    wrong = [c for c, a, b in zip(_COLUMNS, row[:8], derived, strict=True) if a != b]
    if wrong:
        return "altered", f"stored column(s) {', '.join(wrong)} disagree with the signed bytes"
    return None


# --------------------------------------------------------------------------- the report


@dataclass
class _Report:
    members: Members
    problems: list[dict[str, Any]] = field(default_factory=list)
    strangers: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    events: int = 0

    def add(self, kind: str, origin: str, seq: int | None, detail: str) -> None:
        self.problems.append({"kind": kind, "origin": self.members.host(origin), "key": origin,
                              "seq": seq, "detail": detail})

    def stranger(self, origin: str, seq: int, why: str) -> None:
        self.strangers.setdefault((origin, why), []).append(seq)

    def finish(self) -> dict[str, Any]:
        for (origin, why), seqs in sorted(self.strangers.items()):
            self.add("non_member", origin, seqs[0],
                     f"{len(seqs)} event(s), seq {seqs[0]}..{seqs[-1]}: {why}")
        order = sorted(self.problems, key=lambda p: (p["key"], p["seq"] or 0, p["kind"]))
        return {"ok": not order, "events": self.events, "problems": order}


@dataclass
class _Chain:
    """What the previous row of the same origin was (for chain and gap checks)."""

    origin: str = ""
    seq: int = 0
    id: str = ""
    trusted: bool = False


def _check_link(rep: _Report, prev: _Chain, row: tuple[Any, ...], ok: bool) -> None:
    event_id, origin, seq, prev_id, _, _, _, kind = row[:8]
    if prev.origin != origin:
        if seq > 1 and kind not in ANCHOR_KINDS:
            rep.add("gap", origin, seq - 1, f"the chain starts at seq {seq}, which is no anchor: "
                    f"seq {seq - 1} and before are missing")
        return
    if seq > prev.seq + 1 and kind not in ANCHOR_KINDS:
        rep.add("gap", origin, prev.seq + 1, f"seq {prev.seq + 1}..{seq - 1} missing")
    elif seq == prev.seq + 1 and ok and prev.trusted and prev_id != prev.id:
        rep.add("fork", origin, seq - 1, f"seq {seq} names a predecessor other than the stored "
                f"seq {seq - 1} ({prev.id[:12]}): the key signed two histories")


def _check_row(rep: _Report, prev: _Chain, row: tuple[Any, ...]) -> _Chain:
    event_id, origin, seq = row[0], row[1], row[2]
    got = check_bytes(event_id, row[8], row[9])
    bad = got if isinstance(got, tuple) else _check_columns(row, got)
    if bad is not None:
        rep.add(bad[0], origin, seq, bad[1])
    _check_link(rep, prev, row, bad is None)
    why = rep.members.why_not(origin, seq) if bad is None else None
    if why:
        rep.stranger(origin, seq, why)
    return _Chain(origin, seq, event_id, bad is None)


def _rows(conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    yield from integrity.events_in_chain_order(conn)


def _check_heads(rep: _Report, conn: sqlite3.Connection) -> None:
    """The recorded chain (anchors) against the events actually held."""
    rows = integrity.heads_against_events(conn)
    for origin, first, last, low, high in rows:
        if high is None or high < last:
            rep.add("gap", origin, (high or 0) + 1,
                    f"the recorded head is seq {last} but the newest event held is {high}")
        elif low > first:
            rep.add("gap", origin, first, f"the recorded chain starts at seq {first} but the "
                    f"oldest event held is {low}")


def _check_forks(rep: _Report, conn: sqlite3.Connection) -> None:
    rows = integrity.fork_rows(conn)
    for fid, origin, seq, applied, raw, sig in rows:
        got = check_bytes(fid, raw, sig)
        if isinstance(got, tuple) or got.origin != origin or got.seq != seq:
            rep.add("forged", origin, seq, "fork evidence that does not verify")
            continue
        rep.add("fork", origin, seq, f"two different events signed at seq {seq}: applied "
                f"{applied[:12]}, other {fid[:12]}")
    for origin, seq in integrity.forked_without_evidence(conn):
        rep.add("fork", origin, seq, "flagged as forked, but the other event is missing")


def _check_waiting(rep: _Report, conn: sqlite3.Connection) -> None:
    for table in ("pending", "held"):
        for event_id, origin, seq, raw, sig in integrity.waiting_rows(conn, table):
            got = check_bytes(event_id, raw, sig)
            if isinstance(got, tuple):
                rep.add(got[0], origin, seq, f"{table} event: {got[1]}")


def scoped_events(conn: sqlite3.Connection) -> Iterator[events.Event]:
    """The events that make up the database owner's configuration now (its scope: its
    cluster's chains from their anchors, or its own standalone chain), as replay reads them,
    one chunk at a time."""
    log = EventLog(conn)
    _, chains = history.scope_at(log, owner_keys(conn), history.EVERYTHING)
    try:
        yield from history.events_in(log, chains, history.EVERYTHING)
    except OperationalError:  # damaged bytes: reported as altered by the byte checks
        return


def _check_admissible(rep: _Report, conn: sqlite3.Connection) -> None:
    """Two passes over the scoped events (memory stays flat): the user database from the
    events that change it, then each event's verdict (evstore/core/admit.py)."""
    auth = admit.Authority(e for e in scoped_events(conn) if admit.is_authority(e))
    for ev in scoped_events(conn):
        why = auth.judge(ev)
        if why is not None:
            rep.add("invalid", ev.origin, ev.seq, f"{ev.kind} by user {ev.user!r}, applied "
                    f"nowhere: {why}")


# (``authority_events`` is an index of the log, not a view anyone reads: a home upgraded to
# schema 9 lists every event of its log there, those out of its scope too.)
_KEY_COLS = {"reg_winners": 3, "mode_sections": 2, "effective": 2, "superseded": 4,
             "section_events": 4, "inadmissible": 1}
MAX_VIEW_PROBLEMS = 50  # per table: a wholly stale table says so in one line past this


def _table(conn: sqlite3.Connection, table: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    k = _KEY_COLS[table]
    return {tuple(r[:k]): tuple(r) for r in integrity.view_rows(conn, table)}


def check_schema(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The ``schema`` problems: where the database's tables, columns or indexes are not what
    this release's migrations make (read with sqlite-utils, storage/schema.py)."""
    from evstore.storage import schema

    return [{"kind": "schema", "origin": None, "key": None, "seq": None, "detail": d}
            for d in schema.differences(schema.shape(conn), schema.expected())]


def check_views(conn: sqlite3.Connection, scoped: list[events.Event]) -> list[dict[str, Any]]:
    """Rebuild the views of ``scoped`` in an in-memory database and compare them, row by row,
    with the stored ones. Returns the ``view`` problems (empty when they agree)."""
    mem = open_db(":memory:")
    try:
        views.keep_events(mem, scoped)
        rebuild.rebuild(mem, scoped)
        out: list[dict[str, Any]] = []
        for table in integrity.VIEW_TABLES:
            try:
                stored = _table(conn, table)
            except sqlite3.OperationalError as e:
                out.append({"kind": "view", "origin": None, "key": None, "seq": None,
                            "detail": f"{table}: cannot be read ({e})"})
                continue
            fresh = _table(mem, table)
            diffs = []
            for key in sorted(set(stored) | set(fresh), key=repr):
                a, b = stored.get(key), fresh.get(key)
                if a == b:
                    continue
                where = "/".join(str(x)[:24] for x in key)
                k = _KEY_COLS[table]
                if a is None and b is not None:
                    diffs.append(f"{table} {where}: missing (the log makes {b[k:]!r})"
                                 if k < len(b) else f"{table} {where}: missing")
                elif b is None:
                    diffs.append(f"{table} {where}: stored, but the log makes no such row")
                elif a is not None:
                    diffs.append(f"{table} {where}: stored {a[k:]!r}, the log makes {b[k:]!r}")
            for d in diffs[:MAX_VIEW_PROBLEMS]:
                out.append({"kind": "view", "origin": None, "key": None, "seq": None,
                            "detail": d})
            if len(diffs) > MAX_VIEW_PROBLEMS:
                out.append({"kind": "view", "origin": None, "key": None, "seq": None,
                            "detail": f"{table}: {len(diffs) - MAX_VIEW_PROBLEMS} more rows "
                                      "differ"})
        return out
    finally:
        mem.close()


def verify_conn(conn: sqlite3.Connection, progress: Progress | None = None, *,
                views_too: bool = False) -> dict[str, Any]:
    """Check a whole database; returns {ok, events, problems}."""
    rep = _Report(_members(conn))
    total = integrity.count_events(conn)
    prev = _Chain()
    for row in _rows(conn):
        prev = _check_row(rep, prev, row)
        rep.events += 1
        if progress is not None and rep.events % 1000 == 0:
            progress(rep.events, total)
    if progress is not None:
        progress(rep.events, total)
    _check_heads(rep, conn)
    _check_forks(rep, conn)
    _check_waiting(rep, conn)
    _check_admissible(rep, conn)
    out = rep.finish()
    if views_too:
        extra = check_schema(conn) + check_views(conn, list(scoped_events(conn)))
        out["problems"] = out["problems"] + extra
        out["ok"] = out["ok"] and not extra
    return out


def verify_db(path: str | Path, progress: Progress | None = None, *,
              views_too: bool = False) -> dict[str, Any]:
    """Verify a database file (or a home folder's), read whole and never modified."""
    conn = open_copy(Path(path))
    try:
        return verify_conn(conn, progress, views_too=views_too)
    finally:
        conn.close()


def verify_node(node: Node, progress: Progress | None = None, *,
                views_too: bool = False) -> dict[str, Any]:
    """Verify a home's own database, from a consistent copy (the node keeps running)."""
    return verify_db(node.home / DB_NAME, progress, views_too=views_too)
