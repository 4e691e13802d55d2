"""The ``evstore`` command line: parse, call the library, print."""
