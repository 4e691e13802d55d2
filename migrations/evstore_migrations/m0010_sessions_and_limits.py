"""Schema step: revocable web sessions (issue 15).

``web_sessions`` holds one row per logged-in browser session: the random id its (signed)
cookie carries, the user, the fingerprint of the user's passphrase hash and the role at login,
and when it was made and last used. A session is valid only while its row exists and still
matches the user (ops/sessions.py): logout deletes the row, so a copied cookie stops working;
a passphrase change, a deleted user or a changed role end it; so does an idle timeout.
Local to this machine (never replicated). Never edit once released: add a new step instead."""

SQL = """
CREATE TABLE web_sessions (
  id TEXT PRIMARY KEY, user TEXT NOT NULL, mark TEXT NOT NULL, role TEXT NOT NULL,
  created INTEGER NOT NULL, last_seen INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_user ON web_sessions (user);
"""
