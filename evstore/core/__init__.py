"""The pure core of evstore: deterministic functions, no I/O.

Nothing under this package may import sqlite3, trio, typer or anything that reads the clock,
draws randomness or touches files and sockets ("now", keys and seeds are passed in). A test
(tests/test_layering.py) enforces it.
"""
