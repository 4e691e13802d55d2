"""Schema step: membership changes (issue 17).

Never edit once released: add a new step instead."""

SQL = ""
