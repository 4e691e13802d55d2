"""The trio shell: the secure channel, gossip, the serving node and its clients.

Its modules log what happens on the links. Like any library it adds no handler but a null one
to the ``evstore`` logger: the records reach a terminal only where a program configures
logging (``evstore run``, evstore/ops/logs.py), and Python's last-resort handler never prints
them beside a command's own one-line error.
"""

import logging

logging.getLogger("evstore").addHandler(logging.NullHandler())
