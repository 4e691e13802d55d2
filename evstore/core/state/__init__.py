"""The configuration state: a CRDT of last-writer-wins registers, projected from events.

Theory of operation
-------------------
Every event is turned, by a pure function of that event alone (``writes_of``), into *writes*
to *registers*. A register is named ``(scope, section, field)``:

* settings: scope is a mode (``cluster``, ``group:GID``, ``machine:MID``), section a catalog
  section, field either ``@defined`` (is the section defined at this mode?), ``@reset`` (the
  moment the section's content was last replaced or cleared), a top-level key, or
  ``LISTKEY/ITEMNAME`` for one named entry of an items list. So concurrent changes to
  different keys or entries of one section land in different registers and both survive.
* structure: section ``@structure`` holds the cluster name and main group, each group's name and
  deletion, each machine's group, hostname, serial, addresses and removal; ``@cutoff`` holds
  the last sequence number of a removed origin (or of a key a rekey replaced) that still
  counts.

A register's value is the write with the greatest ``order`` — ``(clock, origin, event id)``,
the one total order of core/events.py — among writes that are not *excluded*. A write is
excluded when its origin was removed and its seq is past the removal's cutoff (a seq cutoff,
never a timestamp, which a removed machine could backdate). ``@cutoff`` registers merge by
maximum instead (two removals of one machine keep everything either still counted).

Because each register is a pure max over a set of writes, the state depends only on the *set*
of events applied, never on their order, duplication or delay: that is the convergence
argument, and tests/core/test_state.py checks it with hypothesis.

A section's content at a mode is the set of its field registers written at or after its
``@reset`` register, over the factory default; items lists are sorted by name. Effective
settings of a machine follow the seed's inheritance: machine, then its group, then cluster,
then the factory default; a section *defined but empty* at a mode overrides with empty.

A write that lost its register to a later write whose author had not seen it (the winner's
``base``, the newest change of that section the author had seen when staging, is older than
the loser) is a *superseded concurrent change*; clustercheck reports it unless ignored.

The ``Store`` protocol keeps where the registers and views live out of the rules: a dict-based
``MemoryStore`` here, and a SQLite store in evstore/storage/views.py, fed the same way.

Where each part lives. The register rules are modules of the core beside this package,
because the admissibility rule (evstore/core/admit.py) folds the user database with them
too, and the fold here imports that rule:

* evstore/core/registers.py -- ``Write``, the register names, ``winner``, ``excluded``,
  ``superseded``;
* evstore/core/writes.py -- what each kind of event writes (``writes_of``, ``pair_writes``);
* evstore/core/materialize.py -- a section's value split into registers and made back.

This package holds what is built on them: ``structure`` (groups, machines, membership),
``store`` (the ``Store`` protocol and ``MemoryStore``), ``fold`` (``apply``) and
``effective`` (``resolve``, effective settings per machine). Import from the package
(``from evstore.core import state``): it re-exports them all.
"""

from __future__ import annotations

from evstore.core.materialize import default_of, fields_of, last_event, materialize
from evstore.core.registers import (
    CUTOFF,
    DEFINED,
    IGNORED,
    RESET,
    STRUCT,
    Order,
    Reg,
    Write,
    excluded,
    superseded,
    winner,
)
from evstore.core.state.effective import Reads, refresh_machine, resolve
from evstore.core.state.fold import apply
from evstore.core.state.store import MemoryStore, Store
from evstore.core.state.structure import (
    ALWAYS_ADMITTED,
    Machine,
    Structure,
    may_write,
    structure_from,
)
from evstore.core.writes import (
    SETTINGS_KINDS,
    FieldWrite,
    RawWrite,
    W,
    _base,
    pair_writes,
    raw_writes,
    writes_of,
)

__all__ = [
    "ALWAYS_ADMITTED",
    "CUTOFF",
    "DEFINED",
    "IGNORED",
    "RESET",
    "SETTINGS_KINDS",
    "STRUCT",
    "FieldWrite",
    "Machine",
    "MemoryStore",
    "Order",
    "RawWrite",
    "Reads",
    "Reg",
    "Store",
    "Structure",
    "W",
    "Write",
    "_base",
    "apply",
    "default_of",
    "excluded",
    "fields_of",
    "last_event",
    "materialize",
    "may_write",
    "pair_writes",
    "raw_writes",
    "refresh_machine",
    "resolve",
    "structure_from",
    "superseded",
    "winner",
    "writes_of",
]
