"""The bulk rebuild (storage/rebuild.py) writes byte-identical views to incremental application.

Random logs of a few hundred events (cluster structure, commits at every level with define,
patch and delete, group moves and deletions, removals with cutoffs, concurrent changes with
stale bases, duplicates) are applied incrementally through ``state.apply`` + ``SqliteStore``
in random order and batches, and rebuilt in one pass: from events, and from the log; every
row of every view table must be equal, with orjson and with the json module alike.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evstore.core import encoding, events, state
from evstore.core.modes import group_id_of, group_mode, machine_mode
from evstore.storage import rebuild as rebuild_mod
from evstore.storage import views
from evstore.storage.connect import open_db
from evstore.storage.rebuild import canonical_text, rebuild, rebuild_stored, stored_events
from evstore.storage.views import SqliteStore

KEYS = [nacl.signing.SigningKey(bytes([0x40 + i]) * 32) for i in range(4)]
ORIGINS = [k.verify_key.encode().hex() for k in KEYS]
VIEW_TABLES = views.VIEW_TABLES


class LogMaker:
    """A seeded random log of one cluster: its structure first, then random changes."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seqs = [0] * len(KEYS)
        self.prev: list[str | None] = [None] * len(KEYS)
        self.clock = 1 << 16
        self.events: list[events.Event] = []
        self.groups: list[str] = []

    def emit(self, k: int, kind: str, payload: dict[str, Any]) -> events.Event:
        self.clock += self.rng.choice([1, 1, 1 << 16, 5 << 16])
        self.seqs[k] += 1
        ev = events.create(KEYS[k], seq=self.seqs[k], prev=self.prev[k], clock=self.clock,
                           wall=self.clock >> 16, user="admin", kind=kind, payload=payload)
        self.prev[k] = ev.id
        self.events.append(ev)
        return ev

    def genesis(self) -> None:
        create = self.emit(0, "cluster.create", {
            "name": "bench", "group_name": "Main_Group",
            "machine": {"hostname": "m0", "serial": "S0"},
            "cluster_settings": {"dns": {"servers": ["10.0.0.1"]},
                                 "users": {"users": [{"name": "admin", "role": "admin",
                                                      "passphrase_hash": "x"}]}},
            "machine_settings": {"interfaces": {"interfaces": [
                {"name": "eth0", "address": "10.1.0.1", "netmask": "/24"}]}},
        })
        self.groups = [group_id_of(create.id)]
        for name in ("Paris", "Lyon"):
            self.groups.append(group_id_of(self.emit(0, "group.add", {"name": name}).id))
        for i in (1, 2, 3):
            self.emit(0, "cluster.admit", {
                "machine_id": ORIGINS[i], "key": ORIGINS[i], "group": self.groups[i % 3],
                "machine": {"hostname": f"m{i}", "serial": f"S{i}"},
            })

    # ------------------------------------------------------------------ random changes

    def mode(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return "cluster"
        if r < 0.6:
            return group_mode(self.rng.choice(self.groups))
        return machine_mode(self.rng.choice(ORIGINS))

    def base(self) -> list[Any] | None:
        if not self.events or self.rng.random() < 0.2:
            return None
        ev = self.rng.choice(self.events[-20:])
        return list(ev.order_key)

    def value(self, section: str) -> dict[str, Any]:
        n = self.rng.randrange(6)
        values: dict[str, dict[str, Any]] = {
            "dns": {"servers": [f"10.0.{n}.1"]},
            "timezone": {"zone": ["UTC", "Europe/Paris"][n % 2]},
            "ldap": {"servers": [{"name": f"s{n % 2}", "host": f"h{n}", "port": 389}],
                     "queries": [{"name": f"q{n % 3}", "server": f"s{n % 2}", "base": "",
                                  "filter": f"(n={n})\n"}]},
            "listeners": {"listeners": [{"name": f"l{n % 2}", "interface": "eth0",
                                         "port": 25 + n}]},
            "interfaces": {"interfaces": [{"name": f"eth{n % 2}", "address": f"10.1.0.{n}",
                                           "netmask": "/24"}]},
        }
        return values[section]

    def change(self) -> dict[str, Any]:
        section = self.rng.choice(["dns", "timezone", "ldap", "listeners", "interfaces"])
        mode = machine_mode(self.rng.choice(ORIGINS)) if section == "interfaces" else self.mode()
        op = self.rng.choice(["define", "patch", "patch", "delete"])
        ch: dict[str, Any] = {"mode": mode, "section": section, "op": op, "base": self.base()}
        if op == "define":
            ch["value"] = self.value(section)
        elif op == "patch":
            fields = state.fields_of(section, self.value(section))
            ch["set"] = dict(self.rng.sample(sorted(fields.items()), 1))
            ch["unset"] = self.rng.sample(sorted(fields), self.rng.randrange(2))
        return ch

    def random_event(self) -> None:
        k = self.rng.randrange(len(KEYS))
        kind = self.rng.choices(
            ["config.commit", "machine.setgroup", "group.rename", "group.add", "group.delete",
             "machine.remove", "clustercheck.ignore", "cluster.setname"],
            weights=[60, 8, 5, 3, 2, 3, 2, 2])[0]
        self.emit(k, kind, self.payload(kind))

    def payload(self, kind: str) -> dict[str, Any]:
        rng = self.rng
        if kind == "config.commit":
            return {"comment": "", "changes": [self.change() for _ in range(rng.randint(1, 3))]}
        if kind == "machine.setgroup":
            return {"machine": rng.choice(ORIGINS[1:]), "group": rng.choice(self.groups),
                    "base": self.base()}
        if kind == "group.rename":
            return {"group": rng.choice(self.groups), "name": f"G{rng.randrange(9)}",
                    "base": self.base()}
        if kind == "group.add":
            return {"name": f"N{rng.randrange(99)}"}
        if kind == "group.delete":
            mid = rng.choice(ORIGINS)
            return {"group": rng.choice(self.groups[1:]), "move_to": self.groups[0],
                    "copies": [{"machine": mid, "section": "dns", "value": self.value("dns")}]}
        if kind == "machine.remove":
            return {"machine": ORIGINS[3], "cutoffs": {ORIGINS[3]: rng.randrange(12)}}
        if kind == "clustercheck.ignore":
            a, b = rng.sample(self.events, 2)
            return {"records": [{"loser": a.id, "winner": b.id}]}
        return {"name": f"C{rng.randrange(5)}", "base": self.base()}


def random_log(seed: int, n: int) -> list[events.Event]:
    maker = LogMaker(seed)
    maker.genesis()
    for _ in range(n):
        maker.random_event()
    return maker.events


def dump(conn: sqlite3.Connection) -> bytes:
    """Every row of every view table, in a fixed order, as canonical bytes."""
    out = {}
    for table in VIEW_TABLES:
        ncols = len(conn.execute(f"PRAGMA table_info({table})").fetchall())
        order = ", ".join(str(i + 1) for i in range(ncols))
        rows = conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
        out[table] = [list(r) for r in rows]
    return encoding.encode(out)


def incremental(evs: list[events.Event], rng: random.Random) -> sqlite3.Connection:
    conn = open_db(":memory:")
    views.keep_events(conn, evs)  # a history is read from the events (views.py)
    store = SqliteStore(conn)
    shuffled = evs + rng.sample(evs, len(evs) // 10)
    rng.shuffle(shuffled)
    i = 0
    while i < len(shuffled):
        n = rng.randint(1, 25)
        state.apply(store, shuffled[i : i + n])
        i += n
    return conn


def batches(evs: list[events.Event], size: int) -> Iterator[list[events.Event]]:
    for i in range(0, len(evs), size):
        yield evs[i : i + size]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_rebuild_equals_incremental(seed: int) -> None:
    evs = random_log(seed, 300)
    rng = random.Random(seed)
    expected = dump(incremental(evs, rng))
    conn = open_db(":memory:")
    with_dupes = evs + rng.sample(evs, 30)
    rng.shuffle(with_dupes)
    rebuild(conn, with_dupes)
    assert dump(conn) == expected
    assert conn.execute("SELECT COUNT(*) FROM superseded").fetchone()[0] > 0  # exercised


def test_rebuild_replaces_stale_views() -> None:
    evs = random_log(7, 200)
    expected = dump(incremental(evs, random.Random(7)))
    conn = open_db(":memory:")
    state.apply(SqliteStore(conn), random_log(8, 50))  # other content, to be replaced
    rebuild(conn, evs)
    assert dump(conn) == expected


def stored(path: Path, evs: list[events.Event]) -> sqlite3.Connection:
    """A home whose log holds ``evs`` (inserted as the log stores them) and no views."""
    conn = open_db(path)
    conn.executemany(
        "INSERT INTO events (id, origin, seq, prev, clock, wall, user, kind, raw, sig, "
        "received_at) VALUES (?,?,?,?,?,?,?,?,?,?,0)",
        [(e.id, e.origin, e.seq, e.prev, e.clock, e.wall, e.user, e.kind, e.raw, e.sig)
         for e in evs],
    )
    return conn


def test_stored_events_round_trip(tmp_path: Path) -> None:
    """Events read back as stored rebuild the same views as the events themselves."""
    evs = random_log(9, 100)
    conn = stored(tmp_path / "e.db", evs)
    assert [e.as_dict() for e in stored_events(conn)] == [e.as_dict() for e in evs]
    other = open_db(":memory:")
    rebuild(conn, stored_events(conn))
    rebuild(other, evs)
    assert dump(conn) == dump(other)


def phases_of(conn: sqlite3.Connection, **kw: Any) -> list[str]:
    seen: list[str] = []
    rebuild_stored(conn, phase=seen.append, **kw)
    return seen


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_rebuild_from_the_log(seed: int, tmp_path: Path) -> None:
    """``rebuild_stored`` writes the incremental path's tables, byte for byte."""
    evs = random_log(seed, 300)
    expected = dump(incremental(evs, random.Random(seed)))
    conn = stored(tmp_path / "home.db", evs)
    assert phases_of(conn) == ["admit", "fold", "resolve", "write", "commit", "done"]
    assert dump(conn) == expected
    assert not conn.in_transaction


def settings_of(conn: sqlite3.Connection) -> tuple[Any, ...]:
    return tuple(conn.execute(f"PRAGMA {name}").fetchone()
                 for name in ("cache_size", "mmap_size"))


def test_a_rebuild_leaves_the_connection_settings_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rebuild maps the log and widens the page cache for itself only: afterwards, and
    after a failure, the connection has its own cache size and map size again."""
    evs = random_log(28, 120)
    expected = dump(incremental(evs, random.Random(28)))
    conn = stored(tmp_path / "home.db", evs)
    conn.execute("PRAGMA cache_size = 500")
    before = settings_of(conn)
    seen: list[tuple[Any, ...]] = []
    rebuild_stored(conn, phase=lambda name: seen.append(settings_of(conn)))
    assert settings_of(conn) == before
    assert seen[0] != before  # during the rebuild
    assert dump(conn) == expected

    def broken(*args: Any) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(rebuild_mod, "insert_rows", broken)
    with pytest.raises(RuntimeError):
        rebuild_stored(conn)
    assert settings_of(conn) == before
    assert dump(conn) == expected


def test_a_log_in_memory_or_in_a_transaction_is_rebuilt(tmp_path: Path) -> None:
    evs = random_log(26, 80)
    expected = dump(incremental(evs, random.Random(26)))
    mem = stored(Path(":memory:"), evs)
    phases_of(mem)
    assert dump(mem) == expected
    conn = stored(tmp_path / "home.db", evs)
    conn.execute("BEGIN")
    phases_of(conn)
    assert conn.in_transaction  # the caller's, left open
    conn.execute("COMMIT")
    assert dump(conn) == expected


def test_the_json_module_writes_what_orjson_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """orjson is an optional accelerator: without it every table is the same."""
    evs = random_log(27, 250)
    with_orjson = dump(incremental(evs, random.Random(27)))
    monkeypatch.setattr(views, "_FAST_TEXT", views._json_module_text())
    monkeypatch.setattr(views, "fast_loads", json.loads)
    assert dump(incremental(evs, random.Random(27))) == with_orjson
    conn = stored(tmp_path / "home.db", evs)
    rebuild_stored(conn)
    assert dump(conn) == with_orjson


def test_pair_writes_keep_the_last_write_of_an_event_to_each_field() -> None:
    maker = LogMaker(28)
    maker.genesis()
    for _ in range(200):
        maker.random_event()
    for ev in maker.events:
        grouped: dict[tuple[str, str], dict[str, Any]] = {}
        for scope, section, fld, present, value, base in state.raw_writes(
            ev.kind, ev.id, ev.origin, ev.payload
        ):
            grouped.setdefault((scope, section), {})[fld] = (present, value, base)
        assert state.pair_writes(ev.kind, ev.id, ev.origin, ev.payload) == grouped


def test_entries_hold_the_writes() -> None:
    """The entries of a fold give back (``entry_writes``) the last write of each event to
    each field, whether the fast path or the general path made them, and name those fields."""
    for ev in random_log(29, 150):
        writes = state.writes_of(ev)
        last = {(w.reg, w.event): w for w in writes}
        folded = rebuild_mod.Fold().add([ev, ev])  # a repeat changes nothing
        back = [w for pair, entries in folded.pairs.items() for e in entries
                for w in rebuild_mod.entry_writes(pair, e)]
        assert sorted(back, key=repr) == sorted(last.values(), key=repr)
        assert {(*pair, f) for pair, entries in folded.pairs.items() for e in entries
                for f in e[4]} == {w.reg for w in writes}


TEXT = st.text(st.characters(exclude_categories=["Cs"]))  # no lone surrogates
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(encoding.INT_MIN, encoding.INT_MAX) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300)
@given(json_values)
def test_canonical_text_is_the_canonical_encoding(value: Any) -> None:
    assert canonical_text(value) == encoding.encode(value).decode()
    assert views.fast_loads(canonical_text(value)) == value


@settings(max_examples=200)
@given(json_values)
def test_canonical_text_without_orjson_too(value: Any) -> None:
    plain = views._json_module_text()
    text = plain(value)
    assert (text if "\\" not in text else encoding.encode(value).decode()) == canonical_text(value)


def entries_of(rows: list[tuple[Any, ...]]) -> rebuild_mod.Ordered:
    out: rebuild_mod.Ordered = []
    for scope, section, clock, event in sorted(rows):
        if not out or out[-1][0] != (scope, section):
            out.append(((scope, section), []))
        out[-1][1].append((clock, "ab", event, b"", ()))
    return out


def some_rows(rng: random.Random) -> list[tuple[Any, ...]]:
    """Rows of a few pairs, one of them longer than a statement holds."""
    sizes = [1, 2, rebuild_mod.ROWS_PER_INSERT * 2 + 37, 255, 3]
    return [(f"scope{p}", "dns", rng.randrange(1 << 40), f"e{p}-{i}")
            for p, n in enumerate(sizes) for i in range(n)]


def test_insert_rows_writes_every_row() -> None:
    rows = some_rows(random.Random(33))
    conn = open_db(":memory:")
    with conn:
        rebuild_mod.insert_rows(conn, entries_of(rows))
    got = conn.execute(f"SELECT {views.SECTION_COLS} FROM section_events").fetchall()
    assert got == sorted(rows)
