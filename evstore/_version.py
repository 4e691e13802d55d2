"""The software version, in a module of its own so that anything may import it cheaply
(``evstore --version`` answers from here before typer or the store is imported)."""

__version__ = "0.1.0"
