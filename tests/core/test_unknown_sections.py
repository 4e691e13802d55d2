"""A section the catalog does not know (a newer or hostile peer's) makes its event
inadmissible (evstore/core/admit.py, issue 15): the event is recorded as such and writes
nothing, whichever way the events were batched."""

from __future__ import annotations

import sqlite3

from test_state import ORIGINS, _ev, _genesis

from evstore.core import catalog, events, state
from evstore.storage.connect import open_db
from evstore.storage.views import SqliteStore, keep_events

FUTURE = "futuresection"


def _events() -> list[events.Event]:
    evs = _genesis()
    evs.append(_ev(1, 1, 10 << 16, "config.commit", {"comment": "", "changes": [
        {"mode": "cluster", "section": FUTURE, "op": "define", "base": None,
         "value": {"knob": 1}},
        {"mode": f"machine:{ORIGINS[1]}", "section": FUTURE, "op": "define", "base": None,
         "value": {"knob": 2}},
    ]}))
    evs.append(_ev(0, 4, 11 << 16, "group.add", {"name": "later"}))
    return evs


def _tables(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    rows = []
    for table in ("mode_sections", "effective", "inadmissible"):
        rows += [(table, *r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
    return rows


def _applied(batches: list[list[events.Event]]) -> list[tuple[object, ...]]:
    conn = open_db(":memory:")
    keep_events(conn, [e for batch in batches for e in batch])
    store = SqliteStore(conn)
    conn.execute("BEGIN")
    for batch in batches:
        state.apply(store, batch)
    conn.execute("COMMIT")
    return _tables(conn)


def test_an_unknown_section_gives_the_same_views_in_any_batching() -> None:
    assert FUTURE not in catalog.SECTIONS
    evs = _events()
    one = _applied([evs])
    each = _applied([[e] for e in evs])
    without_structure = _applied([evs[:-1], evs[-1:]])
    assert one == each == without_structure
    assert not any(r[0] == "mode_sections" and r[2] == FUTURE for r in one)
    assert not any(r[0] == "effective" and r[2] == FUTURE for r in one)
    refused = [r for r in one if r[0] == "inadmissible"]
    assert len(refused) == 1 and "unknown section 'futuresection'" in str(refused[0][3])
