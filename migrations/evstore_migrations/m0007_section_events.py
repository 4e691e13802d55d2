"""Schema 7: the register history names the events instead of copying their writes.

``section_writes`` (schema 6) held, per event and (scope, section), a copy of what the event
wrote there: its values, bases, seq, user and wall, 500 bytes a row on average. Every one of
those is a pure function of the event (``state.pair_writes``), and the event is in ``events``
beside it, in the same transaction. ``section_events`` keeps only the key:
``(scope, section, clock, event)``, the events that wrote each (scope, section) in clock order
(a register's writes between two clocks are still one key range). The writes are derived from
the event when a register's history is read (evstore/storage/views.py), which happens only
when a winner has a base, when a removal moves a cutoff and when ``clustercheck`` lists
superseded changes. A full rebuild writes a tenth of the bytes it wrote (storage/rebuild.py).
``origin_sections`` (where an origin's registers were found when a removal moved its cutoff)
goes too: the origin's events in ``events`` say it, through their (origin, seq) index.

A row whose event is not in ``events`` is not copied: no store ever had one (the views are
fed inside the log's transaction, and the log only deletes events before rebuilding the
views), and such a row could not be read under the new schema. Never edit once released:
add a new step instead.
"""

SQL = """
CREATE TABLE section_events (
  scope TEXT NOT NULL, section TEXT NOT NULL, clock INTEGER NOT NULL, event TEXT NOT NULL,
  PRIMARY KEY (scope, section, clock, event)
) WITHOUT ROWID;
INSERT INTO section_events (scope, section, clock, event)
  SELECT s.scope, s.section, s.clock, s.event FROM section_writes AS s
  WHERE EXISTS (SELECT 1 FROM events AS e WHERE e.id = s.event);
DROP TABLE section_writes;
DROP TABLE origin_sections;
"""
