"""The catalog of configuration sections: what can be set, where, and what a valid value is.

Theory of operation
-------------------
A *section* is one table of settings, the counterpart of one AsyncOS configuration command
(``ldap`` models ``ldapconfig``, ``listeners`` models ``listenerconfig``...). A section is
defined, whole, at a mode: ``cluster``, ``group:NAME`` or ``machine:HOSTNAME``; a machine uses
the most specific definition that applies to it, else the factory default. Where a section may
be defined is fixed by its *levels*: most sections may be defined at any level; those that only
make sense for one box (its interfaces, hostname, feature keys, clock) are *machine only* and are
never clustered: they stay with the machine when it creates or joins a cluster; the user
database and SSH keys are *cluster only*, so one login works everywhere.

A section's value is a JSON object without floats. Its schema is written in the small
declarative language below (``Str``, ``Int``, ``Bool``, ``Choice``, ``StrList``, ``Obj``,
``Items``, each key wrapped in a ``Field``). Every top-level key is either a plain value (a
string, integer, boolean, list of strings or small object) or an *items list*: a list of objects
identified by a unique ``name``. The merge engine relies on that split: it keeps one
last-writer-wins register per plain top-level key and one per named item, so two people who
change different keys, or different items of one list, both keep their change.

``validate`` accepts keys the schema does not name: they are kept as given, checked only to be
float-free JSON, so an event signed with one keeps its meaning. A value a person enters goes
through ``accept`` instead, which refuses a key the value did not have already, naming the
nearest known key (a typo must not empty a list for the whole cluster). ``validate`` returns the *normalized* value: fields that
have a default and were left out (or given as null) get their default, optional fields given as
null are dropped, list order is kept. Validating a normalized value changes nothing.

Sections may refer to items of other sections (a listener names an interface and a footer, an
LDAP query names an LDAP server). Those are resolved per machine, against that machine's
effective settings, which may come from different modes: a reference that does not resolve
there does not make the value invalid, it *disables* the referring item on that machine (the
seed's "interdependent settings"). ``check_references`` lists them; ``broken_references``
tells what a change newly breaks, for ``commit --dry-run``.

This package is pure: stdlib only, no files, clock or randomness. Its modules:

* ``schema`` -- the schema language (``Kind``, ``Str``... ``Items``, ``Field``, ``Section``);
* ``formats`` -- the named string formats a ``Str`` may refer to;
* ``plain`` -- the check of values no schema names, and bad values shown in messages;
* ``levels`` -- modes and levels, ``WrongMode``;
* ``sections`` -- the section definitions, ``SECTIONS``, ``get``;
* ``values`` -- ``validate`` and ``accept``;
* ``references`` -- references between sections, checked per machine;
* ``paths`` -- ``set_path`` and ``apply_assignments``, for ``evstore set``;
* ``export`` -- ``describe``, for ``evstore sections --json``.

Import from the package (``from evstore.core import catalog``): it re-exports them all.
"""

from __future__ import annotations

from evstore.core.catalog.export import describe
from evstore.core.catalog.formats import FORMATS
from evstore.core.catalog.levels import (
    ANY_LEVEL,
    CLUSTER,
    CLUSTER_ONLY,
    GROUP,
    LEVELS,
    MACHINE,
    MACHINE_ONLY,
    WrongMode,
    level_of,
    parse_mode,
)
from evstore.core.catalog.paths import apply_assignments, parse_value, set_path
from evstore.core.catalog.references import (
    REFERENCES,
    BrokenReference,
    Disabled,
    Reference,
    broken_references,
    check_references,
    dependents,
    find_broken,
)
from evstore.core.catalog.schema import (
    MISSING,
    NAME,
    Bool,
    Choice,
    Field,
    Int,
    Items,
    Kind,
    Obj,
    Section,
    Str,
    StrList,
    opt,
    req,
)
from evstore.core.catalog.sections import (
    HOST_OR_IP,
    MAX_TEXT,
    MEDIA,
    PORT,
    ROLES,
    SECTIONS,
    TEXT_KINDS,
    TLS_MODES,
    USERNAME,
    check_mode_allowed,
    factory_default,
    get,
    item_fields,
)
from evstore.core.catalog.values import accept, unknown_keys, validate
from evstore.core.errors import InvalidInput

__all__ = [
    "ANY_LEVEL",
    "CLUSTER",
    "FORMATS",
    "CLUSTER_ONLY",
    "GROUP",
    "LEVELS",
    "MACHINE",
    "MACHINE_ONLY",
    "MISSING",
    "REFERENCES",
    "SECTIONS",
    "Bool",
    "BrokenReference",
    "Choice",
    "Disabled",
    "Field",
    "Int",
    "Items",
    "Kind",
    "Obj",
    "Reference",
    "Section",
    "Str",
    "StrList",
    "WrongMode",
    "accept",
    "apply_assignments",
    "broken_references",
    "check_mode_allowed",
    "check_references",
    "dependents",
    "describe",
    "factory_default",
    "find_broken",
    "get",
    "item_fields",
    "level_of",
    "parse_mode",
    "parse_value",
    "set_path",
    "unknown_keys",
    "validate",
    # shared kinds and vocabularies of the section definitions
    "HOST_OR_IP",
    "MAX_TEXT",
    "MEDIA",
    "NAME",
    "PORT",
    "ROLES",
    "TEXT_KINDS",
    "TLS_MODES",
    "USERNAME",
    "opt",
    "req",
    # the error the catalog raises, as before the split
    "InvalidInput",
]
