"""Schema step: inadmissible events kept in the log but applied nowhere (issue 15).

Never edit once released: add a new step instead."""

SQL = ""
