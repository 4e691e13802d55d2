"""Schema step: the change feed that watchers read (issue 14).

``feed`` lists every change of the ``effective`` view (a machine's effective settings of one
section), in the order they were applied here: ``id`` is the position a watcher's cursor
names, ``value`` the section's new settings (NULL when the section left the view, e.g. a
removed machine), ``source`` the mode it comes from, ``event`` the event it comes from and
``at`` the time it was applied (ms since the epoch, the writer's clock).

It is written by triggers on ``effective``, so the feed row commits in the same transaction
as the view change it describes, and the code that maintains the views is unchanged:

* ``INSERT`` (the views write ``INSERT OR REPLACE``): a BEFORE trigger records the row unless
  the same value from the same source is already there (a recompute that changed nothing);
  with SQLite's default ``recursive_triggers = OFF`` the REPLACE fires no DELETE trigger.
* ``UPDATE``: recorded when the value or the source changed.
* ``DELETE``: recorded as absent.

A rebuild deletes and re-inserts every row in one transaction: a watcher reads whole
transactions and keeps the last row of each section, so it sees no change there.

The feed is bounded: every 1,000th row deletes the rows 100,000 or more behind it. A cursor
older than what is kept is answered with the current settings (evstore/consume). ``id`` is
AUTOINCREMENT so a position is never reused, even after every row was pruned.

A cursor also carries ``node.feed_tag``, a random tag of this home, so a cursor issued by
another home is refused rather than misread. An existing home gets it here; a new home (whose
``node`` table is still empty when the migrations run) gets it with its first feed row.

Never edit once released: add a new step instead.
"""

SQL = """
CREATE TABLE feed (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  machine TEXT NOT NULL, section TEXT NOT NULL, value TEXT, source TEXT, event TEXT,
  at INTEGER NOT NULL
);
CREATE TRIGGER feed_effective_insert BEFORE INSERT ON effective
WHEN NOT EXISTS (
  SELECT 1 FROM effective AS e WHERE e.machine = NEW.machine AND e.section = NEW.section
    AND e.value = NEW.value AND e.source = NEW.source
)
BEGIN
  INSERT INTO feed (machine, section, value, source, event, at)
  VALUES (NEW.machine, NEW.section, NEW.value, NEW.source, NEW.event,
          CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
CREATE TRIGGER feed_effective_update AFTER UPDATE ON effective
WHEN OLD.value IS NOT NEW.value OR OLD.source IS NOT NEW.source
  OR OLD.machine IS NOT NEW.machine OR OLD.section IS NOT NEW.section
BEGIN
  INSERT INTO feed (machine, section, value, source, event, at)
  SELECT OLD.machine, OLD.section, NULL, NULL, NULL,
         CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
  WHERE OLD.machine IS NOT NEW.machine OR OLD.section IS NOT NEW.section;
  INSERT INTO feed (machine, section, value, source, event, at)
  VALUES (NEW.machine, NEW.section, NEW.value, NEW.source, NEW.event,
          CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
CREATE TRIGGER feed_effective_delete AFTER DELETE ON effective
BEGIN
  INSERT INTO feed (machine, section, value, source, event, at)
  VALUES (OLD.machine, OLD.section, NULL, NULL, NULL,
          CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
CREATE TRIGGER feed_first_row AFTER INSERT ON feed WHEN NEW.id = 1
BEGIN
  INSERT OR IGNORE INTO node (key, value) VALUES ('feed_tag', lower(hex(randomblob(5))));
END;
CREATE TRIGGER feed_prune AFTER INSERT ON feed WHEN NEW.id % 1000 = 0
BEGIN
  DELETE FROM feed WHERE id <= NEW.id - 100000;
END;
INSERT OR IGNORE INTO node (key, value)
  SELECT 'feed_tag', lower(hex(randomblob(5))) WHERE EXISTS (SELECT 1 FROM node);
"""
