"""Operations of one node, shared by the CLI and the web pages: open a home, read and stage
settings, commit, administer the cluster. The rules live in evstore/core; this layer wires
the core to the storage shell and keeps nothing of its own."""
