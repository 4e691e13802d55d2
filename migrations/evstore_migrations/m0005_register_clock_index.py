"""Register writes by clock, so a register's update reads only the writes between a winner's
base and the winner (evstore/core/state.py), not its whole history. Never edit once released."""

SQL = """
CREATE INDEX reg_writes_clock ON reg_writes (scope, section, field, clock);
"""
