"""Numbered schema migrations of evstore's SQLite database, shipped inside the wheel."""
