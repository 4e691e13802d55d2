"""One ``evstore run`` per home: ``HOME/run.pid`` under an exclusive flock."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from evstore.core.errors import OperationalError

__all__ = ["HomeLock"]


class HomeLock:
    """``HOME/run.pid`` under an exclusive flock, held for the life of the process."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / "run.pid"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            f.close()
            raise OperationalError(
                f"{self.home} is already served by `evstore run` (PID {pid}); stop that "
                "process first (a home is served by one node at a time)") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        """Empty the file and unlock; the file stays, so no two processes lock two inodes."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.truncate(0)
        self._file.close()
        self._file = None
