"""A consistent copy of a home's database, for ``replay``, ``verify`` or a restore.

A plain file copy of a live database misses what sits in its write-ahead file (``-wal``), so
``replay`` of it silently shows an older state (docs/PITFALLS #11). SQLite's online backup API
copies the database as one reader sees it, in one step, so the copy is exactly some committed
state even while ``evstore run`` or another command writes. The copy is written beside its
destination under a temporary name (created 0600: it holds passphrase hashes), switched to
rollback-journal mode so it is one self-contained file, flushed, and only then renamed over
the destination: a crash leaves the old destination or the new one, never half of one.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from evstore.core.errors import InvalidInput, OperationalError
from evstore.storage.connect import BUSY_TIMEOUT_MS

_HEADER = b"SQLite format 3\x00"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_destination(db: Path, dest: Path) -> None:
    """Refuse the home's own files, a folder, and a file that is not an SQLite database."""
    own = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    if any(dest.resolve() == p.resolve() or _same_file(dest, p) for p in own):
        raise InvalidInput(f"{dest} is this home's own database: give another file")
    if dest.is_dir():
        raise InvalidInput(f"{dest} is a folder: give the name of the file to write")
    if not dest.parent.is_dir():
        raise InvalidInput(f"{dest.parent}: no such folder")
    if dest.exists() and dest.stat().st_size > 0:
        with dest.open("rb") as f:
            if f.read(16) != _HEADER:
                raise InvalidInput(f"{dest} exists and is not an SQLite database: refusing to "
                                   "overwrite it (give a new file name)")


def _private_temp(dest: Path) -> Path:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    return tmp


def _copy(db: Path, tmp: Path) -> int:
    """Back ``db`` up into ``tmp`` in one step; return the number of events the copy holds."""
    src = sqlite3.connect(str(db), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    dst = sqlite3.connect(str(tmp), isolation_level=None)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE")
        row = dst.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(row[0])
    finally:
        dst.close()
        src.close()


def _flush(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(db: Path, dest: Path) -> dict[str, Any]:
    """Write a consistent copy of the database ``db`` to ``dest`` (mode 0600)."""
    _check_destination(db, dest)
    tmp = _private_temp(dest)
    try:
        events = _copy(db, tmp)
        _flush(tmp)
        os.replace(tmp, dest)
        os.chmod(dest, 0o600)
        _flush(dest.parent)
    except sqlite3.Error as e:
        raise OperationalError(f"the backup of {db} failed: {e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"file": str(dest), "bytes": dest.stat().st_size, "events": events,
            "source": str(db)}
