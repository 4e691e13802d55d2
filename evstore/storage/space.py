"""A full disk, named as such.

SQLite reports a full disk as "database or disk is full", or, when the write-ahead log or its
index cannot grow, as "disk I/O error"; the operating system as ENOSPC (or EDQUOT, a quota).
Any of these, with little space left where the home lives, becomes one operational error that
says what happened and where: "the disk is full: free space on DIR is N KiB; …" (exit 1).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from evstore.core.errors import OperationalError

__all__ = ["LOW_BYTES", "explain", "full_error", "is_full"]

LOW_BYTES = 1024 * 1024  # "disk I/O error" counts as a full disk when less than this is free
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _free_bytes(where: Path) -> int | None:
    for candidate in (where, *where.parents):
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def is_full(exc: BaseException, where: Path) -> bool:
    """Is ``exc`` (raised while working on the home at ``where``) a full disk?"""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:  # the cause may be wrapped
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return True
        if isinstance(e, sqlite3.Error):
            text = str(e).lower()
            if "database or disk is full" in text:
                return True
            if "disk i/o error" in text:
                free = _free_bytes(where)
                return free is not None and free < LOW_BYTES
        e = e.__cause__ or e.__context__
    return False


def full_error(where: Path) -> OperationalError:
    free = _free_bytes(where)
    left = "unknown" if free is None else f"{free // 1024} KiB"
    return OperationalError(f"the disk is full: free space on {where} is {left}; free some "
                            "space (or move the home to a bigger disk) and retry; nothing "
                            "was changed by the command that failed")


def explain(exc: BaseException, where: Path) -> OperationalError | None:
    """The full-disk error for ``exc``, or None when it is something else."""
    return full_error(where) if is_full(exc, where) else None
