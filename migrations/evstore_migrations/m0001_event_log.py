"""Schema 1: the signed event log and the places an event waits or is refused.

``events`` holds applied events only: the signed bytes (``raw``) verbatim with their
signature, plus columns derived from them for queries (``verify`` checks they still match).
``status`` is ``applied`` or ``forked`` (applied, but another event claims its position).
``pending`` holds verified events that wait for their predecessor or for their author's
admission to the cluster; ``held`` verified events stamped too far in the future; ``forks``
the second event at a taken (origin, seq), kept as evidence and never applied; ``rejected``
validly signed events refused because their author is not a member.
"""

SQL = """
CREATE TABLE events (
  id TEXT PRIMARY KEY,
  origin TEXT NOT NULL,
  seq INTEGER NOT NULL,
  prev TEXT,
  clock INTEGER NOT NULL,
  wall INTEGER NOT NULL,
  user TEXT NOT NULL,
  kind TEXT NOT NULL,
  raw BLOB NOT NULL,
  sig BLOB NOT NULL,
  received_at INTEGER NOT NULL,
  status TEXT NOT NULL DEFAULT 'applied' CHECK (status IN ('applied', 'forked')),
  UNIQUE (origin, seq)
);
CREATE TABLE pending (
  id TEXT PRIMARY KEY,
  origin TEXT NOT NULL,
  seq INTEGER NOT NULL,
  prev TEXT,
  clock INTEGER NOT NULL,
  kind TEXT NOT NULL,
  raw BLOB NOT NULL,
  sig BLOB NOT NULL,
  received_at INTEGER NOT NULL,
  reason TEXT NOT NULL CHECK (reason IN ('predecessor', 'membership'))
);
CREATE TABLE held (
  id TEXT PRIMARY KEY,
  origin TEXT NOT NULL,
  seq INTEGER NOT NULL,
  clock INTEGER NOT NULL,
  raw BLOB NOT NULL,
  sig BLOB NOT NULL,
  received_at INTEGER NOT NULL,
  reason TEXT NOT NULL
);
CREATE TABLE forks (
  id TEXT PRIMARY KEY,
  origin TEXT NOT NULL,
  seq INTEGER NOT NULL,
  applied_id TEXT NOT NULL REFERENCES events (id),
  raw BLOB NOT NULL,
  sig BLOB NOT NULL,
  detected_at INTEGER NOT NULL
);
CREATE TABLE rejected (
  id TEXT PRIMARY KEY,
  origin TEXT NOT NULL,
  seq INTEGER NOT NULL,
  reason TEXT NOT NULL,
  raw BLOB NOT NULL,
  sig BLOB NOT NULL,
  rejected_at INTEGER NOT NULL
);
"""
