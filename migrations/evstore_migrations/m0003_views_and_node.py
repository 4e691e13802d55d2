"""Materialized views (see evstore/storage/views.py), the node's own settings, staged changes,
modes per user, alerts and link states. Never edit once released: add a new step instead."""

SQL = """
CREATE TABLE reg_writes (
  scope TEXT NOT NULL, section TEXT NOT NULL, field TEXT NOT NULL, event TEXT NOT NULL,
  clock INTEGER NOT NULL, origin TEXT NOT NULL, seq INTEGER NOT NULL, present INTEGER NOT NULL,
  value TEXT NOT NULL, base TEXT, user TEXT NOT NULL, wall INTEGER NOT NULL,
  PRIMARY KEY (scope, section, field, event)
);
CREATE INDEX reg_writes_origin ON reg_writes (origin, scope, section, field);
CREATE TABLE reg_winners (
  scope TEXT NOT NULL, section TEXT NOT NULL, field TEXT NOT NULL, event TEXT NOT NULL,
  clock INTEGER NOT NULL, origin TEXT NOT NULL, seq INTEGER NOT NULL, present INTEGER NOT NULL,
  value TEXT NOT NULL, base TEXT, user TEXT NOT NULL, wall INTEGER NOT NULL,
  PRIMARY KEY (scope, section, field)
);
CREATE INDEX reg_winners_section ON reg_winners (section, scope);
CREATE TABLE mode_sections (
  mode TEXT NOT NULL, section TEXT NOT NULL, value TEXT NOT NULL, event TEXT,
  PRIMARY KEY (mode, section)
);
CREATE TABLE effective (
  machine TEXT NOT NULL, section TEXT NOT NULL, value TEXT NOT NULL, source TEXT NOT NULL,
  event TEXT, PRIMARY KEY (machine, section)
);
CREATE TABLE superseded (
  scope TEXT NOT NULL, section TEXT NOT NULL, field TEXT NOT NULL, loser TEXT NOT NULL,
  winner TEXT NOT NULL, PRIMARY KEY (scope, section, field, loser)
);

CREATE TABLE node (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE user_modes (user TEXT PRIMARY KEY, mode TEXT NOT NULL);
CREATE TABLE staged (
  user TEXT NOT NULL, mode TEXT NOT NULL, section TEXT NOT NULL, value TEXT, orig TEXT,
  base TEXT, staged_at INTEGER NOT NULL, PRIMARY KEY (user, mode, section)
);
CREATE TABLE alerts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, kind TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE TABLE links (
  machine TEXT PRIMARY KEY, state TEXT NOT NULL, since INTEGER, last_seen INTEGER,
  clock_offset_ms INTEGER, address TEXT
);
"""
