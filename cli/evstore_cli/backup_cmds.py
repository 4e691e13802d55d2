"""``evstore backup FILE``: a consistent copy of this home's database (SQLite's online backup)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evstore_cli.common import HomeOpt, JsonOpt, YesOpt
from evstore_cli.output import handled


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(name="backup")(backup)


@handled
def backup(
    file: Annotated[Path, typer.Argument(help="Where to write the copy (mode 0600).")],
    home: HomeOpt = None, json_out: JsonOpt = False, yes: YesOpt = False,
) -> None:
    """A consistent copy of this home's database, for `replay`, `verify` or a restore.

    Safe while `evstore run` serves the home; a plain file copy is not (it misses the
    write-ahead file)."""
    from evstore.ops.node import resolve_home
    from evstore.storage.backup import backup as backup_db
    from evstore_cli import output
    from evstore_cli.global_options import GLOBAL

    db = resolve_home(home or GLOBAL.home) / "evstore.db"
    if not db.is_file():
        raise output.fail(f"no evstore home at {db.parent} (see `evstore init`)")
    data = backup_db(db, file)
    output.emit(data, json_out, lambda d: output.say(
        f"backed up {d['events']} events to {d['file']} ({d['bytes']} bytes, mode 0600; it "
        "holds passphrase hashes: keep it private)"))
