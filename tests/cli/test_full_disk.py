"""Full disks, half-made homes and read-only homes (issue 15, item 5).

Before: ``init`` on a full disk printed a traceback and left a home that ``status`` crashed on
and ``init`` refused to redo; a full disk read "disk I/O error … check that it is an evstore
database", and ``verify`` exited 2 for it. Now ``init`` is all or nothing, a full disk is named
(exit 1) everywhere, and a read-only home serves every read.

The disk is a real 2 MiB tmpfs and the read-only home a real read-only bind mount, which need
root (this test's machine runs as root); elsewhere these tests are skipped.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from evstore.storage import space
from tests.cli.conftest import Cli


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def _tmpfs(where: Path, size: str = "2m") -> Iterator[Path]:
    where.mkdir()
    if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@contextlib.contextmanager
def _read_only_view(source: Path, where: Path) -> Iterator[Path]:
    where.mkdir()
    if not _mount("--bind", str(source), str(where)):
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        if not _mount("-o", "remount,bind,ro", str(where)):
            pytest.skip("cannot remount read-only here")
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def _fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def test_a_full_disk_is_named_and_init_leaves_nothing_behind(cli: Cli, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "disk") as disk:
        home = disk / "lab1"
        cli(home, "init", "--hostname", "lab1", "--admin-passphrase-file", str(cli.passfile))
        _fill(disk)
        res = cli(home, "set", "dns", 'servers=["192.0.2.9"]', "--mode", "machine:lab1", code=1)
        assert res.stderr.startswith("error: the disk is full: free space on ")
        assert "Traceback" not in res.stderr and "check that it is" not in res.stderr
        res = cli(home, "verify", code=1)
        assert "the disk is full" in res.stderr
        other = disk / "lab2"
        res = cli(other, "init", "--hostname", "lab2", "--admin-passphrase-file",
                  str(cli.passfile), code=1)
        assert "the disk is full" in res.stderr and "Traceback" not in res.stderr
        assert not other.exists()  # all or nothing: no half-made home
        assert [p.name for p in disk.iterdir() if p.name.startswith(".")] == []
        (disk / "filler").unlink()
        cli(other, "init", "--hostname", "lab2", "--admin-passphrase-file", str(cli.passfile))
        assert cli(other, "status", "--json")["hostname"] == "lab2"


def test_a_read_only_home_serves_every_read(cli: Cli, tmp_path: Path) -> None:
    home = cli.init("lab1")
    cli(home, "set", "dns", 'servers=["192.0.2.1"]', "--mode", "machine:lab1")
    cli(home, "commit", "-m", "dns")
    with _read_only_view(tmp_path, tmp_path.parent / f"{tmp_path.name}-ro") as view:
        ro = view / "lab1"
        assert cli(ro, "status", "--json")["hostname"] == "lab1"
        assert cli(ro, "show", "dns", "--mode", "machine:lab1", "--json") is not None
        assert cli(ro, "get", "dns", "--json")["servers"] == ["192.0.2.1"]
        rows = cli(ro, "audit", "--json")
        assert any("dns" in str(r) for r in rows)
        cli(ro, "verify")
        res = cli(ro, "set", "dns", 'servers=["192.0.2.2"]', "--mode", "machine:lab1", code=1)
        assert "is read-only" in res.stderr and "Traceback" not in res.stderr


def test_disk_full_errors_are_recognised(tmp_path: Path) -> None:
    import sqlite3

    assert space.is_full(sqlite3.OperationalError("database or disk is full"), tmp_path)
    assert space.is_full(OSError(28, "No space left on device"), tmp_path)
    # "disk I/O error" counts only when the disk is really (nearly) full
    assert not space.is_full(sqlite3.OperationalError("disk I/O error"), tmp_path)
    assert "the disk is full" in str(space.full_error(tmp_path))
