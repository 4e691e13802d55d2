"""Schema 4: the audit index (see evstore/storage/audit.py).

``audit`` has one row per change of every applied event: one per (mode, section) a commit,
load or resolve changed, one per structure or node event. ``time`` is the wall-time part of the
event's clock in ms; ``mode`` is the internal mode (ids, so renames do not rewrite history);
``origin`` the author's key. It is filled lazily, from the events whose rowid is above
``meta.audit_pos``, by the first audit query after they were applied; this step only creates
it, empty, so upgrading a large home stays quick. Each filter of ``evstore audit`` has an index
that also yields the rows in time order, and "this user's changes to this section" has its own.
"""

SQL = """
CREATE TABLE audit (
  event TEXT NOT NULL,
  idx INTEGER NOT NULL,
  time INTEGER NOT NULL,
  clock INTEGER NOT NULL,
  origin TEXT NOT NULL,
  user TEXT NOT NULL,
  kind TEXT NOT NULL,
  section TEXT,
  mode TEXT,
  summary TEXT NOT NULL,
  PRIMARY KEY (event, idx)
);
CREATE INDEX audit_time ON audit (time, clock);
CREATE INDEX audit_user ON audit (user, time, clock);
CREATE INDEX audit_user_section ON audit (user, section, time, clock);
CREATE INDEX audit_section ON audit (section, time, clock);
CREATE INDEX audit_mode ON audit (mode, time, clock);
CREATE INDEX audit_origin ON audit (origin, time, clock);
CREATE INDEX audit_kind ON audit (kind, time, clock);
INSERT OR REPLACE INTO meta (key, value) VALUES ('audit_pos', 0);
"""
