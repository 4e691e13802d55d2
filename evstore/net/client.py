"""Reaching other machines from a command: join, disconnect, reconnect, rekey, commitdetail,
clustercheck. The CLI and the web pages call these names from here.

A command acts as its home's machine: it dials with the home's host key and transport key, so
a member recognises it exactly as it recognises that machine's node, and opens an ``rpc``
session (service.py) or, for a join, asks as a stranger. It works the same whether or not
``evstore run`` serves the home; what it writes locally reaches a serving node through SQLite.

Every function here is synchronous for the CLI (one ``trio.run`` each). An unreachable
machine is an ``OperationalError`` that names it; where a command reaches several machines
it reaches those it can and reports the others. The calls live by purpose:

* reaching.py: the caller (this home's machine, its keys, its database behind one thread),
  rpc sessions with a member, who was reached;
* joining.py: ``join`` (the fingerprint check, the credentials, taking up the cluster's log);
* detaching.py: ``set_detached`` (``disconnect`` / ``reconnect``, delivered to every member);
* reports.py: ``commit_detail`` and ``clustercheck_reports`` (every member asked at once);
* rekeying.py: ``rekey`` (a fresh host key announced through a member).
"""

from __future__ import annotations

from evstore.net.detaching import set_detached
from evstore.net.joining import JoinOptions, JoinQuestions, join, normalize_fingerprint
from evstore.net.reaching import Caller, Reach, Refused, Rpc, open_rpc
from evstore.net.rekeying import rekey
from evstore.net.reports import clustercheck_reports, commit_detail, find_commit

__all__ = [
    "Caller",
    "JoinOptions",
    "JoinQuestions",
    "Reach",
    "Refused",
    "Rpc",
    "clustercheck_reports",
    "commit_detail",
    "find_commit",
    "join",
    "normalize_fingerprint",
    "open_rpc",
    "rekey",
    "set_detached",
]
