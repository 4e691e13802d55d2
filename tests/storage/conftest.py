"""Fixtures for the storage tests: a fresh database and an event log over it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from evstore.storage.connect import open_db
from evstore.storage.log import EventLog


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "evstore.db"


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    c = open_db(db_path)
    yield c
    c.close()


@pytest.fixture
def log(conn: sqlite3.Connection) -> EventLog:
    return EventLog(conn)
