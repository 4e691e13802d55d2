"""`evstore backup FILE` (issue 17, item 18): a consistent copy, 0600, that replay and verify read."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path
from typing import Any as Cli


def _lab_with_unflushed_commits(cli: Cli) -> Path:
    lab: Path = cli.init("lab1")
    cli(lab, "clusterconfig", "create", "Lab")
    # keep the write-ahead file from being checkpointed, as a serving node's open reader does
    hold = sqlite3.connect(lab / "evstore.db")
    hold.execute("PRAGMA wal_autocheckpoint = 0")
    hold.execute("BEGIN")
    hold.execute("SELECT COUNT(*) FROM events").fetchone()
    cli.holder = hold
    cli(lab, "set", "dns", 'servers=["10.0.0.9"]', "--mode", "cluster")
    cli(lab, "commit", "-m", "in the wal")
    return lab


def test_backup_is_consistent_private_and_replayable(cli: Cli, tmp_path: Path) -> None:
    lab = _lab_with_unflushed_commits(cli)
    try:
        status = cli(lab, "status", "--json")
        out = tmp_path / "backup.db"
        data = cli(lab, "backup", str(out), "--json")
        assert data["events"] == status["events"]
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        assert not Path(str(out) + "-wal").exists()
        replayed = cli(lab, "replay", str(out), "--json")
        assert replayed["state_digest"] == status["state_digest"]
        assert replayed["settings"]["cluster"]["dns"] == {"servers": ["10.0.0.9"]}
        assert cli(lab, "verify", str(out), "--json")["ok"] is True
        assert not Path(str(out) + "-wal").exists()  # reading it left no files beside it
        # the trap the command avoids: a plain copy of the file alone misses the last commit
        plain = tmp_path / "plain" / "evstore.db"
        plain.parent.mkdir()
        shutil.copyfile(lab / "evstore.db", plain)
        stale = cli(lab, "replay", str(plain), "--json")
        assert stale["state_digest"] != status["state_digest"]
        again = cli(lab, "backup", str(out), "--json")  # an earlier backup may be replaced
        assert again["events"] == status["events"]
    finally:
        cli.holder.close()


def test_backup_refuses_the_homes_own_database_and_other_files(cli: Cli, tmp_path: Path) -> None:
    lab: Path = cli.init("lab1")
    res = cli(lab, "backup", str(lab / "evstore.db"), code=2)
    assert "this home's own database" in res.stderr
    res = cli(lab, "backup", str(lab / ".." / lab.name / "evstore.db-wal"), code=2)
    assert "own database" in res.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    res = cli(lab, "backup", str(notes), code=2)
    assert "not an SQLite database" in res.stderr and notes.read_text() == "precious"
    res = cli(lab, "backup", str(tmp_path), code=2)
    assert "is a folder" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob(".*.tmp"))
