"""Helpers to drive the real ``evstore`` command on real homes (typer's CliRunner)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evstore_cli.app import app

PASS = "correct horse battery"


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runner = CliRunner()
        self.passfile = tmp / "pass.txt"
        self.passfile.write_text(PASS + "\n")

    def __call__(self, home: Path, *args: str, code: int = 0, env: dict[str, str] | None = None) -> Any:
        full = ["--home", str(home), *args]
        res = self.runner.invoke(app, full, env={"EVSTORE_PASSPHRASE": PASS, **(env or {})},
                                 catch_exceptions=False)
        assert res.exit_code == code, (full, res.exit_code, res.stdout, res.stderr)
        if "--json" in args and code == 0:
            return json.loads(res.stdout)
        return res

    def init(self, name: str, *extra: str) -> Path:
        home = self.tmp / name
        self(home, "init", "--hostname", name, "--admin-passphrase-file", str(self.passfile),
             *extra)
        return home


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """In-process commands hash and check passphrases with argon2id's smallest cost (the
    interactive cost is about 0.1 s a call, and these tests make hundreds): a hash records its
    own cost, so checking stays exact. tests/ops/test_weak_hashes.py keeps the real cost."""
    from evstore.ops import secrets

    monkeypatch.setattr(secrets, "OPSLIMIT", 1)
    monkeypatch.setattr(secrets, "MEMLIMIT", 8192)
    return Cli(tmp_path)


Runner = Callable[..., Any]
