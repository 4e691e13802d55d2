"""The consumer API (evstore.open_config) and the change feed under it, on real homes."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

import evstore
from evstore.consume.watching import Change, Follower
from evstore.core.errors import InvalidInput
from evstore.ops.node import open_node
from evstore.storage import feed, notify
from evstore.storage.connect import transaction
from evstore.storage.feed import Names, Row
from tests.consume.consume_helpers import commit, make_home


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path, "alpha")


def feed_rows(home: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "evstore.db") as conn:
        return conn.execute("SELECT id, section, value FROM feed ORDER BY id").fetchall()


def test_get_sections_cursor_and_source(home: Path) -> None:
    with evstore.open_config(home) as cfg:
        assert cfg.machine == "alpha"
        assert cfg.get("dns") == {"servers": []}
        assert cfg.source("hostname") == "machine:alpha"
        assert "dns" in cfg.sections() and cfg.sections() == sorted(cfg.sections())
        before = cfg.cursor
        commit(home, "dns", 'servers=["10.0.0.1"]')
        assert cfg.get("dns") == {"servers": ["10.0.0.1"]}
        assert cfg.cursor != before and cfg.cursor.split("-")[0] == before.split("-")[0]


def test_unknown_section_machine_and_home_name_what_exists(home: Path, tmp_path: Path) -> None:
    with evstore.open_config(home) as cfg:
        with pytest.raises(InvalidInput, match="did you mean 'dns'"):
            cfg.get("dsn")
        with pytest.raises(InvalidInput, match="did you mean 'ntp'"):
            cfg.watch(["ntpp"])
    with pytest.raises(InvalidInput, match="did you mean 'alpha'"):
        evstore.open_config(home, machine="alpah")
    with pytest.raises(InvalidInput, match="not an evstore home"):
        evstore.open_config(tmp_path / "nowhere")


def test_env_home_and_machine_by_serial(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVSTORE_HOME", str(home))
    with open_node(home) as node:
        serial = node.identity().serial
    with evstore.open_config() as a, evstore.open_config(machine=serial) as b:
        assert a.machine_id == b.machine_id and a.machine == "alpha"


def test_reading_never_writes_the_home(home: Path) -> None:
    db = home / "evstore.db"
    before = db.read_bytes()
    with evstore.open_config(home) as cfg:
        cfg.get("dns")
        assert cfg.sections()
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            cfg._conn.execute("DELETE FROM feed")
    assert db.read_bytes() == before


def test_a_feed_row_commits_with_its_view_change_or_not_at_all(home: Path) -> None:
    before = feed_rows(home)
    with open_node(home) as node:
        with pytest.raises(RuntimeError), transaction(node.conn):
            node.conn.execute("UPDATE effective SET value = '{\"servers\":[\"x\"]}' "
                              "WHERE section = 'dns'")
            raise RuntimeError("rolled back")
        assert feed_rows(home) == before
        with transaction(node.conn):  # the same value again: nothing changed, no row
            node.conn.execute("UPDATE effective SET value = value WHERE section = 'dns'")
        assert feed_rows(home) == before
    commit(home, "dns", 'servers=["10.0.0.2"]')
    last = feed_rows(home)[-1]
    assert last[1] == "dns" and "10.0.0.2" in last[2]


def test_a_rebuild_deletes_and_inserts_but_a_watch_sees_no_change(home: Path) -> None:
    from evstore.ops.scope import rebuild_views

    with evstore.open_config(home) as cfg:
        changes = iter(cfg.watch(["dns"]))
        assert next(changes).initial
        rows = len(feed_rows(home))
        with open_node(home) as node, transaction(node.conn):
            rebuild_views(node)
        assert len(feed_rows(home)) > rows  # every row deleted and inserted again
        commit(home, "dns", 'servers=["after.rebuild"]')
        got = next(changes)
        assert got.settings == {"servers": ["after.rebuild"]} and not got.initial


def test_the_feed_is_pruned_and_an_old_cursor_resyncs(home: Path) -> None:
    with evstore.open_config(home) as cfg:
        old = cfg.cursor
    with sqlite3.connect(home / "evstore.db") as conn:  # as if 100,000 changes had been made
        conn.execute("INSERT INTO feed (id, machine, section, value, source, event, at) "
                     "VALUES (200000, 'm', 's', NULL, NULL, NULL, 0)")
        assert conn.execute("SELECT min(id) FROM feed").fetchone()[0] == 200000
    with evstore.open_config(home) as cfg:
        first = next(iter(cfg.watch(["dns"], from_cursor=old)))
        assert first.initial and first.settings == {"servers": []}
        assert first.cursor.endswith("-200000")


def test_cursors_this_home_never_issued_are_refused(home: Path, tmp_path: Path) -> None:
    other = make_home(tmp_path, "beta")
    with evstore.open_config(other) as cfg:
        foreign = cfg.cursor
    with evstore.open_config(home) as cfg:
        tag, _, newest = cfg.cursor.rpartition("-")
        for bad, why in ((foreign, "not issued by this home"),
                         (f"{tag}-{int(newest) + 5}", "ahead of this home"),
                         ("garbage", "not a cursor"), (f"{tag}-x", "not a cursor")):
            with pytest.raises(InvalidInput, match=why):
                next(iter(cfg.watch(from_cursor=bad)))


def _watch_in_thread(cfg: evstore.Config, **kw: Any) -> queue.Queue[Change]:
    box: queue.Queue[Change] = queue.Queue()

    def pump() -> None:
        for change in cfg.watch(**kw):
            box.put(change)

    threading.Thread(target=pump, daemon=True).start()
    return box


def test_watch_reports_current_settings_then_each_change(home: Path) -> None:
    with evstore.open_config(home) as cfg:
        box = _watch_in_thread(cfg, sections=["dns", "ntp"])
        initial = [box.get(timeout=10) for _ in range(2)]
        assert [c.section for c in initial] == ["dns", "ntp"] and all(c.initial for c in initial)
        commit(home, "ntp", 'servers=["ntp.one"]')
        commit(home, "timezone", "zone=Europe/Paris")  # not watched
        commit(home, "dns", 'servers=["10.9.9.9"]')
        got = [box.get(timeout=10), box.get(timeout=10)]
        assert [(c.section, c.settings) for c in got] == [
            ("ntp", {"servers": ["ntp.one"]}), ("dns", {"servers": ["10.9.9.9"]})]
        assert got[0].cursor < got[1].cursor or len(got[0].cursor) < len(got[1].cursor)
        assert got[1].machine == "alpha" and got[1].source == "machine:alpha"
        assert got[1].to_json()["time"].endswith("Z")


def test_from_cursor_reports_each_change_after_it_once(home: Path) -> None:
    with evstore.open_config(home) as cfg:
        start = cfg.cursor
        for i in range(3):
            commit(home, "dns", f'servers=["10.0.0.{i}"]')
        commit(home, "ntp", 'servers=["ntp.x"]')
        it = iter(cfg.watch(["dns", "ntp"], from_cursor=start))
        got = [next(it), next(it)]
        # a burst read at once is coalesced: the last dns, then ntp, in feed order
        assert [(c.section, c.settings) for c in got] == [
            ("dns", {"servers": ["10.0.0.2"]}), ("ntp", {"servers": ["ntp.x"]})]
        it2 = iter(cfg.watch(["dns", "ntp"], from_cursor=got[0].cursor))
        assert [(c.section, c.settings) for c in [next(it2)]] == [("ntp", {"servers": ["ntp.x"]})]


def test_follower_coalesces_and_reports_the_effective_value_last() -> None:
    names = Names({"m1": {"hostname": "alpha"}}, {})
    f = Follower("m1", None, None)
    assert f.begin("t", 10, 1)
    f.initial([Row(0, "dns", {"servers": []}, "default", None, 0)], names)
    rows = [Row(11, "dns", None, None, None, 1), Row(12, "dns", {"servers": []}, "default", None, 1),
            Row(13, "ntp", {"a": 1}, "cluster", "e", 1), Row(14, "ntp", {"a": 2}, "cluster", "e", 1)]
    out = f.advance(rows, 14, names)  # dns deleted and put back as it was: no change
    assert [(c.section, c.settings, c.cursor) for c in out] == [("ntp", {"a": 2}, "t-14")]
    assert f.advance([], 20, names) == [] and f.position == 20
    assert f.fell_behind(22) and not f.fell_behind(21)


def test_the_log_announces_its_commits(home: Path) -> None:
    listener = notify.listen(home)
    assert listener is not None
    try:
        commit(home, "dns", 'servers=["1.2.3.4"]')
        assert listener.wait(5)
    finally:
        listener.close()


async def _async_watch(home: Path) -> list[Change]:
    got: list[Change] = []
    with evstore.open_config(home) as cfg:
        async with cfg.watch_async(["dns"]) as changes:
            async for change in changes:
                got.append(change)
                if change.initial:
                    threading.Thread(target=commit, args=(home, "dns", 'servers=["a.sync"]'),
                                     daemon=True).start()
                else:
                    break
    return got


def _check_async(got: list[Change]) -> None:
    assert [c.initial for c in got] == [True, False]
    assert got[1].settings == {"servers": ["a.sync"]}


async def test_watch_async_under_trio(home: Path) -> None:
    with trio.fail_after(30):
        _check_async(await _async_watch(home))


def test_watch_async_under_asyncio(home: Path) -> None:
    _check_async(asyncio.run(asyncio.wait_for(_async_watch(home), 30)))


def test_watch_polls_where_no_signal_can_be_heard(home: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "listen", lambda home: None)
    monkeypatch.setattr(notify, "announce", lambda home, message=b"": 0)
    test_watch_reports_current_settings_then_each_change(home)


def test_feed_reader_refuses_a_home_too_old(tmp_path: Path) -> None:
    db = tmp_path / "evstore.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 7")
    with pytest.raises(evstore.OperationalError, match="schema version 7"):
        feed.open_reader(tmp_path)


def test_a_home_where_no_shared_memory_file_can_be_made_still_reads(home: Path) -> None:
    """The nearest a test run as root gets to a read-only home: SQLite cannot create the
    ``-shm`` file beside the database (a directory holds its name)."""
    assert not (home / "evstore.db-wal").exists()  # the last writer checkpointed and left
    (home / "evstore.db-shm").mkdir()
    with evstore.open_config(home) as cfg:
        assert cfg.get("dns") == {"servers": []}
        first = next(iter(cfg.watch(["dns"])))
        assert first.initial and first.settings == {"servers": []}


def test_resuming_inside_a_coalesced_burst_loses_nothing() -> None:
    """A burst [A@5=Y, B@7, A@9 absent, A@10=Y] (a change, then a rebuild's churn) is reported
    as B (cursor 7) then A (cursor 10). A watcher killed after B and resumed from 7 must still
    report A=Y, though A's row 5 (before the cursor) already held Y."""
    names = Names({"m1": {"hostname": "alpha"}}, {})
    burst = [Row(5, "a", {"v": "Y"}, "cluster", "e1", 1), Row(7, "b", {"v": 1}, "cluster", "e2", 1),
             Row(9, "a", None, None, None, 1), Row(10, "a", {"v": "Y"}, "cluster", "e1", 1)]
    first = Follower("m1", None, None)
    first.begin("t", 4, 1)
    first.initial([Row(0, "a", {"v": "X"}, "cluster", "e0", 0)], names)
    out = first.advance(burst, 10, names)
    assert [(c.section, c.cursor) for c in out] == [("b", "t-7"), ("a", "t-10")]
    resumed = Follower("m1", None, "t-7")
    assert not resumed.begin("t", 10, 1)
    again = resumed.advance([r for r in burst if r.id > 7], 10, names)
    assert [(c.section, c.settings, c.cursor) for c in again] == [("a", {"v": "Y"}, "t-10")]


def test_resuming_inside_a_burst_on_a_real_home(home: Path) -> None:
    from evstore.consume import watching

    with evstore.open_config(home) as cfg:
        start, mid = cfg.cursor, cfg.machine_id
    with open_node(home) as node, transaction(node.conn):
        c = node.conn
        c.execute("UPDATE effective SET value = '{\"servers\":[\"Y\"]}' WHERE section = 'dns'")
        c.execute("UPDATE effective SET value = '{\"servers\":[\"Z\"]}' WHERE section = 'ntp'")
        row = c.execute("SELECT * FROM effective WHERE section = 'dns'").fetchone()
        c.execute("DELETE FROM effective WHERE section = 'dns'")
        c.execute("INSERT INTO effective VALUES (?,?,?,?,?)", tuple(row))
    conn = feed.open_reader(home)
    try:
        out = watching.first_step(conn, Follower(mid, frozenset({"dns", "ntp"}), start))
        assert [c.section for c in out] == ["ntp", "dns"]
        resumed = watching.first_step(conn, Follower(mid, frozenset({"dns", "ntp"}),
                                                     out[0].cursor))
        assert [(c.section, c.settings) for c in resumed] == [("dns", {"servers": ["Y"]})]
    finally:
        conn.close()


def test_the_consumer_package_imports_no_event_loop_web_or_network_code() -> None:
    import subprocess
    import sys

    probe = ("import sys, evstore, evstore.consume, evstore.consume.watching, "
             "evstore.consume.aio; evstore.open_config; print(' '.join(sys.modules))")
    loaded = set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                check=True, timeout=60).stdout.split())
    for banned in ("trio", "aiosqlite", "typer", "starlette", "hypercorn", "jinja2", "nacl",
                   "evstore.net", "evstore.web", "evstore.ops"):
        assert not {m for m in loaded if m == banned or m.startswith(banned + ".")}, banned
