"""Schema step: the change feed that watchers read (issue 14).

Never edit once released: add a new step instead."""

SQL = ""
