"""Schema step: revocable web sessions and failure backoff (issue 15).

Never edit once released: add a new step instead."""

SQL = ""
