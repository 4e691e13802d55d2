"""`evstore --help` on a pipe is drawn without typer (cli/evstore_cli/helpindex.py): it must be
exactly what typer draws there, at every width the fast path takes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from evstore_cli import app as app_module
from evstore_cli import helpindex, shell


def typer_help(width: int) -> str:
    res = CliRunner().invoke(app_module._index(), ["--help"], env={"COLUMNS": str(width)})
    assert res.exit_code == 0
    return res.stdout


# `make check` compares a few widths (the default, each side of where the tables start to
# wrap, the ends); `make test` every width up to where nothing wraps any more, then every 7th
# (every width of 60-240 was compared when the module was written)
SAMPLE = {60, 61, 79, 80, 81, 100, 119, 120, 121, 122, 160, 240}
WIDTHS = [w for w in helpindex.WIDTHS if w <= 125 or w % 7 == 0 or w in SAMPLE]


@pytest.mark.parametrize("width", [w if w in SAMPLE else pytest.param(w, marks=pytest.mark.slow)
                                   for w in WIDTHS])
def test_the_top_level_help_is_typers_at_every_width(width: int) -> None:
    assert helpindex.render(app_module.HELP_INDEX, width) == typer_help(width)


def test_the_root_help_is_the_shells() -> None:
    assert helpindex.ROOT_HELP == shell.HELP


def test_the_fast_path_prints_it_and_imports_no_typer() -> None:
    import json
    import os
    import subprocess
    import sys

    probe = ("import sys, json\nfrom evstore_cli.app import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert not e.code\n"
             "sys.stderr.write(json.dumps(sorted(sys.modules)))\n")
    env = {k: v for k, v in os.environ.items() if k not in helpindex._FORCING}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**env, "COLUMNS": "100"}, check=True)
    assert done.stdout == typer_help(100)
    modules = json.loads(done.stderr)
    assert not [m for m in modules if m.split(".")[0] in ("typer", "rich", "click")]
