"""Make tests/storage/data/schema_vN.db: a small home at each schema version before the newest.

Run ``.venv/bin/python tests/storage/make_fixtures.py`` after adding a migration, and commit the
new file. Output is deterministic (fixed keys, fixed times, fixed ``applied_at``), so running it
again reproduces the committed files; test_migrations.py checks that, which also catches an
edit to a released migration.

The data is written with plain SQL in the shape schema 1 had (the log code of this release
needs the newest schema); version N > 1 is that home upgraded by the steps up to N. It covers
every place an event can sit: applied chains (one starting at an anchor), a fork, an event
waiting for its predecessor, one held for its clock and one refused as a non-member.
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from pathlib import Path

import nacl.signing

from evstore.core import clock, events
from evstore.core.events import Event
from evstore.storage.migrate import known_migrations, migrate

DATA = Path(__file__).parent / "data"
T0 = 1767225600000  # 2026-01-01T00:00:00Z
APPLIED_AT = "2026-01-01T00:00:00+00:00"
DAY = 86_400_000


def key(name: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(f"fixture/{name}".encode()).digest())


def chain(k: nacl.signing.SigningKey, n: int, kinds: dict[int, str], t0: int) -> list[Event]:
    out: list[Event] = []
    for seq in range(1, n + 1):
        out.append(events.create(
            k, seq=seq, prev=out[-1].id if out else None, clock=clock.pack(t0 + seq),
            wall=t0 + seq, user="admin", kind=kinds.get(seq, "config.commit"),
            payload={"section": "dns", "value": seq},
        ))
    return out


def fixture_events() -> dict[str, list[Event]]:
    """Every event of the fixture, by role (also used by the tests to continue the story)."""
    alpha = chain(key("alpha"), 3, {1: "node.init"}, T0)
    alpha.append(events.create(  # stamped a day ahead
        key("alpha"), seq=4, prev=alpha[2].id, clock=clock.pack(T0 + DAY), wall=T0 + DAY,
        user="admin", kind="config.commit", payload={"section": "dns", "value": 4},
    ))
    bravo = chain(key("bravo"), 8, {1: "node.init", 5: "cluster.join"}, T0 + 100)
    fork = events.create(
        key("alpha"), seq=2, prev=alpha[0].id, clock=clock.pack(T0 + 50), wall=T0 + 50,
        user="admin", kind="config.commit", payload={"section": "dns", "value": "rival"},
    )
    stranger = chain(key("charlie"), 1, {1: "node.init"}, T0 + 200)
    return {
        "applied": alpha[:3] + bravo[4:6],  # bravo's chain starts at its join, seq 5
        "fork": [fork],  # a second seq 2 of alpha
        "missing": [bravo[6]],  # seq 7 of bravo, not in the fixture
        "pending": [bravo[7]],  # seq 8 of bravo, waiting for seq 7
        "held": alpha[3:],  # seq 4 of alpha, stamped a day ahead
        "rejected": [stranger[0]],
    }


def _insert_v1_data(conn: sqlite3.Connection) -> None:
    evs = fixture_events()
    at = T0 + 1_000
    for e in evs["applied"]:
        status = "forked" if e.id == evs["applied"][1].id else "applied"
        conn.execute(
            "INSERT INTO events (id, origin, seq, prev, clock, wall, user, kind, raw, sig, "
            "received_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e.id, e.origin, e.seq, e.prev, e.clock, e.wall, e.user, e.kind, e.raw, e.sig,
             at, status),
        )
    for e in evs["pending"]:
        conn.execute(
            "INSERT INTO pending (id, origin, seq, prev, clock, kind, raw, sig, received_at, "
            "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'predecessor')",
            (e.id, e.origin, e.seq, e.prev, e.clock, e.kind, e.raw, e.sig, at),
        )
    for e in evs["held"]:
        conn.execute(
            "INSERT INTO held (id, origin, seq, clock, raw, sig, received_at, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'stamped a day ahead of local time')",
            (e.id, e.origin, e.seq, e.clock, e.raw, e.sig, at),
        )
    for e in evs["fork"]:
        conn.execute(
            "INSERT INTO forks (id, origin, seq, applied_id, raw, sig, detected_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (e.id, e.origin, e.seq, evs["applied"][1].id, e.raw, e.sig, at),
        )
    for e in evs["rejected"]:
        conn.execute(
            "INSERT INTO rejected (id, origin, seq, reason, raw, sig, rejected_at) "
            "VALUES (?, ?, ?, 'not a member', ?, ?, ?)",
            (e.id, e.origin, e.seq, e.raw, e.sig, at),
        )


def make(version: int, out_dir: Path) -> Path:
    """Write schema_v{version}.db into ``out_dir`` (replacing it) and return its path."""
    path = out_dir / f"schema_v{version}.db"
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)  # rollback journal: one self-contained file
    migrate(conn, target=1, applied_at=APPLIED_AT)
    conn.execute("BEGIN IMMEDIATE")
    _insert_v1_data(conn)
    conn.execute("COMMIT")
    migrate(conn, target=version, applied_at=APPLIED_AT)
    conn.execute("VACUUM")
    conn.close()
    return path


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else DATA
    out_dir.mkdir(parents=True, exist_ok=True)
    newest = known_migrations()[-1].version
    for version in range(1, newest):
        print(make(version, out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
