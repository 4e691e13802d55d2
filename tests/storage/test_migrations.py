"""Schema migrations: applied once, in order, atomically; old homes upgrade; newer refused."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import make_fixtures
import pytest

from evstore.core.errors import OperationalError
from evstore.storage import schema
from evstore.storage.connect import open_db
from evstore.storage.log import EventLog
from evstore.storage.migrate import (
    TABLE,
    Migration,
    execute_script,
    known_migrations,
    migrate,
    recorded,
    schema_version,
)

KNOWN = known_migrations()
NEWEST = KNOWN[-1].version
DATA = Path(__file__).parent / "data"


def fixture_versions() -> list[int]:
    return list(range(1, NEWEST))


def test_shipped_steps_are_numbered_without_gaps() -> None:
    assert [m.version for m in KNOWN] == list(range(1, NEWEST + 1))
    assert KNOWN[0].name == "m0001_event_log" and KNOWN[1].name == "m0002_chain_heads"


def test_a_new_database_gets_every_step_once(db_path: Path) -> None:
    conn = open_db(db_path)
    assert recorded(conn) == {m.version: m.name for m in KNOWN}
    assert conn.execute("PRAGMA user_version").fetchone()[0] == NEWEST
    assert migrate(conn) == []  # nothing left to do
    conn.close()
    conn = open_db(db_path)
    assert schema_version(conn) == NEWEST
    assert conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0] == NEWEST
    conn.close()


def test_a_newer_database_is_refused(db_path: Path) -> None:
    conn = open_db(db_path)
    conn.execute(
        f"INSERT INTO {TABLE} VALUES (?, 'm9999_from_the_future', 'x')", (NEWEST + 1,)
    )
    conn.close()
    with pytest.raises(OperationalError) as err:
        open_db(db_path)
    message = str(err.value)
    assert f"schema version {NEWEST + 1}" in message
    assert f"up to {NEWEST}" in message and "upgrade evstore" in message


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "evstore.db"
    junk.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(OperationalError, match="cannot open the database"):
        open_db(junk)


def test_a_renamed_step_is_refused(db_path: Path) -> None:
    conn = open_db(db_path)
    conn.execute(f"UPDATE {TABLE} SET name = 'm0001_renamed' WHERE version = 1")
    conn.close()
    with pytest.raises(OperationalError, match="different build"):
        open_db(db_path)


def test_a_failing_step_leaves_the_previous_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)

    def broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half (x)")
        raise RuntimeError("step 2 failed")

    steps = [
        Migration(1, "m0001_a", lambda c: execute_script(c, "CREATE TABLE a (x);")),
        Migration(2, "m0002_b", broken),
    ]
    with pytest.raises(RuntimeError):
        migrate(conn, migrations=steps)
    assert recorded(conn) == {1: "m0001_a"}
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "a" in tables and "half" not in tables
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()


def test_a_step_written_with_sqlite_utils_joins_the_runners_transaction(tmp_path: Path) -> None:
    """``evstore_migrations.database``: what a step makes through sqlite-utils commits with
    the step's record or not at all, and the connection's settings are left as they were."""
    from evstore_migrations import database

    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)

    def made(c: sqlite3.Connection, name: str, fail: bool) -> None:
        db = database(c)
        db[name].create({"id": str, "at": int}, pk="id", not_null={"at"})
        db[name].create_index(["at"], index_name=f"{name}_at")
        if fail:
            raise RuntimeError("step 2 failed")

    steps = [Migration(1, "m0001_t", lambda c: made(c, "t", False)),
             Migration(2, "m0002_u", lambda c: made(c, "u", True))]
    with pytest.raises(RuntimeError):
        migrate(conn, migrations=steps)
    assert recorded(conn) == {1: "m0001_t"}
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "t_at" in indexes and "u_at" not in indexes
    assert conn.execute("PRAGMA recursive_triggers").fetchone()[0] == 0
    with pytest.raises(RuntimeError, match="inside the runner's transaction"):
        database(conn)
    conn.close()


def test_execute_script_stays_inside_the_transaction(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("BEGIN")
    execute_script(conn, "CREATE TABLE t (x TEXT);\nINSERT INTO t VALUES ('a;b');\n")
    assert conn.in_transaction
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='t'").fetchone() is None
    with pytest.raises(ValueError, match="incomplete"):
        execute_script(conn, "CREATE TABLE u (x")
    conn.close()


def test_every_earlier_schema_has_a_fixture() -> None:
    missing = [v for v in fixture_versions() if not (DATA / f"schema_v{v}.db").exists()]
    assert not missing, (
        f"no fixture for schema versions {missing}: run "
        ".venv/bin/python tests/storage/make_fixtures.py and commit tests/storage/data"
    )


@pytest.mark.parametrize("version", fixture_versions())
def test_fixtures_are_reproducible(version: int, tmp_path: Path) -> None:
    """Regenerating gives the committed content: released steps were not edited."""
    fresh = make_fixtures.make(version, tmp_path)
    committed = DATA / f"schema_v{version}.db"

    def dump(path: Path) -> list[str]:
        conn = sqlite3.connect(path)
        lines = list(conn.iterdump())
        conn.close()
        return lines

    assert dump(fresh) == dump(committed)


@pytest.mark.parametrize("version", fixture_versions())
def test_an_old_home_upgrades_and_keeps_working(version: int, tmp_path: Path) -> None:
    copy = tmp_path / "evstore.db"
    shutil.copyfile(DATA / f"schema_v{version}.db", copy)
    conn = open_db(copy)
    assert schema_version(conn) == NEWEST
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    evs = make_fixtures.fixture_events()
    alpha, bravo = evs["applied"][0].origin, evs["applied"][-1].origin
    log = EventLog(conn)
    assert log.version_vector() == {alpha: 3, bravo: 6}
    assert (log.first_seq(alpha), log.first_seq(bravo)) == (1, 5)
    assert log.hlc_hwm() == max(e.clock for e in evs["applied"])
    assert [e.id for e in log.iter_all(verify=True)] == [
        e.id for e in sorted(evs["applied"], key=lambda e: e.order_key)
    ]
    (fork,) = log.forks()
    assert (fork.applied.id, fork.forked.id) == (evs["applied"][1].id, evs["fork"][0].id)
    assert log.pending_count() == 1 and len(log.held()) == 1

    r = log.ingest([(e.raw, e.sig) for e in evs["missing"]], now_ms=make_fixtures.T0)
    assert [e.seq for e in r.applied] == [7, 8] and log.version_vector()[bravo] == 8
    released = log.release_held(make_fixtures.T0 + make_fixtures.DAY)
    assert [e.id for e in released] == [e.id for e in evs["held"]]
    mine = log.append(make_fixtures.key("alpha"), user="admin", kind="config.commit",
                      payload={}, now_ms=make_fixtures.T0 + make_fixtures.DAY)
    assert (mine.seq, mine.prev) == (5, evs["held"][0].id)
    assert mine.clock > evs["held"][0].clock
    conn.close()
    assert (DATA / f"schema_v{version}.db").read_bytes()[:16] == b"SQLite format 3\x00"


@pytest.mark.parametrize("version", fixture_versions())
def test_an_upgraded_home_has_the_schema_of_a_new_one(version: int, tmp_path: Path) -> None:
    """Tables, columns and indexes, as sqlite-utils reads them (storage/schema.py): a step
    that forgot, for old homes, what a new home gets would show here."""
    copy = tmp_path / "old.db"
    shutil.copyfile(DATA / f"schema_v{version}.db", copy)
    old, new = open_db(copy), open_db(tmp_path / "new.db")
    assert schema.shape(old) == schema.shape(new)
    old.close()
    new.close()


def test_upgrading_an_old_home_says_so_once(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """Some steps convert every row of a view (seconds on a long log, with the home locked):
    an upgrade is announced; a home already up to date, or a new one, opens silently."""
    copy = tmp_path / "evstore.db"
    shutil.copyfile(DATA / "schema_v5.db", copy)
    with caplog.at_level(logging.WARNING, logger="evstore.storage.migrate"):
        open_db(copy).close()
        open_db(copy).close()
        open_db(tmp_path / "new.db").close()
    said = [r.getMessage() for r in caplog.records if r.name == "evstore.storage.migrate"]
    assert len(said) == 1 and f"from schema version 5 to {NEWEST}" in said[0]
