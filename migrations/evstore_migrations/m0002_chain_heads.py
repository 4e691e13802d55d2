"""Schema 2: persisted clock high-water mark, per-origin chain heads, read indexes.

``meta`` is a key/value table; ``hlc_hwm`` is the highest clock this node has stamped or
applied, so the clock never goes backwards across restarts. It is seeded from the log.

``anchors`` has one row per origin: the chain this node holds for it, from ``first_seq`` (the
anchor: the origin's join, init or rekey event, where its chain in this cluster starts) to
``last_seq`` (its head, the origin's entry in the version vector), with both ids. It is
seeded from the log: the head is the highest applied seq, the anchor the lowest seq from which
every seq up to the head is applied.

The indexes serve the reads that run often: events in their total order (clock, origin, id),
pending events by chain position, held events by clock, fork evidence by position.
"""

SQL = """
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value
);
INSERT INTO meta (key, value) SELECT 'hlc_hwm', COALESCE(MAX(clock), 0) FROM events;
CREATE TABLE anchors (
  origin TEXT PRIMARY KEY,
  first_seq INTEGER NOT NULL,
  first_id TEXT NOT NULL REFERENCES events (id),
  last_seq INTEGER NOT NULL,
  last_id TEXT NOT NULL REFERENCES events (id)
);
INSERT INTO anchors (origin, first_seq, first_id, last_seq, last_id)
SELECT head.origin, start.seq, start.id, head.seq, head.id
FROM events AS head JOIN events AS start ON start.origin = head.origin
WHERE head.seq = (SELECT MAX(seq) FROM events WHERE origin = head.origin)
  AND start.seq = (
    SELECT MAX(e.seq) FROM events AS e
    WHERE e.origin = head.origin AND NOT EXISTS (
      SELECT 1 FROM events AS p WHERE p.origin = e.origin AND p.seq = e.seq - 1));
CREATE INDEX events_order ON events (clock, origin, id);
CREATE INDEX pending_position ON pending (origin, seq);
CREATE INDEX held_clock ON held (clock);
CREATE INDEX forks_position ON forks (origin, seq);
"""
