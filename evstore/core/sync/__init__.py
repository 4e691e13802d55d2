"""Anti-entropy between two nodes: the planner, the wire messages and a sans-I/O session.

Theory of operation
-------------------
Every node holds, per origin (author key), one contiguous run of that origin's events: from
its *anchor* (the seq where the origin's chain inside the cluster starts, not always 1) up to
its head. A *version vector* is therefore ``{origin_hex: (first_seq, last_seq)}``, and it says
exactly which events a node holds. Two nodes reconcile by exchanging vectors: each side then
sends the events it holds that the other lacks. What to send is a pure function of the two
vectors, :func:`plan`; nothing else (no clocks, no history of the link) enters the decision.

Events are immutable, signed and identified by their bytes, and the log ignores duplicates,
so sending too much is only waste, never harm. The protocol leans on that: it is optimistic
about what the peer holds, and every (re)connect and every periodic resync replaces that
belief with the peer's own vector, which makes the exchange eventually complete.

A link carries canonical JSON objects (core/encoding.py), each with a type key ``"t"``:

``hello``   ``{node, version, vv}``: first message each way. ``version`` is the software
            version; a peer running another version is refused, naming both.
``vv``      ``{vv}``: "this is what I hold now; send me what I lack" (periodic resync).
``events``  ``{items}``: events the receiver lacks, in answer to a ``hello`` or ``vv``.
``push``    ``{items}``: events that just entered the sender's log (a local commit, or a
            relay of events it ingested from another peer), sent without being asked.
``ping``    ``{nonce, wall_ms}`` and ``pong`` ``{nonce, wall_ms_echo, wall_ms}``: round-trip
            time and the peer's clock offset, ``offset = peer_wall - (sent + received) / 2``.
``bye``     ``{}``: the sender is done with this session.

Events travel in binary *batch* messages instead (``events`` and ``push``): the byte 0x00
(no JSON message starts with it), a kind byte (1: events, 2: push), the count as an unsigned
16-bit big-endian integer, then per event its length (unsigned 32-bit big-endian), its
canonical bytes and its 64-byte signature, and nothing after. A batch is the bulk of the
traffic: read this way it costs a few slices, where JSON with hex would double the bytes to
encrypt and hold the GIL for milliseconds per batch while it is parsed and re-encoded. The
session never verifies events: the log does, one by one, and a bad event is refused there
without failing the rest of the batch.

Limits. A message is at most ``MAX_MESSAGE_BYTES``; a batch of events at most ``MAX_ITEMS``
events and ``MAX_BATCH_BYTES`` of event bytes (the transport takes up to 16 MiB, but smaller
batches keep memory flat and let the receiver commit as it goes). Decoding is strict: an
unknown type, a missing or extra key, a wrong type, a non-canonical spelling or a limit
exceeded is a :class:`SyncError`, an ``InvalidInput``: a remote error, so the shell drops
that link only (like h11's RemoteProtocolError).

Relaying. When the log changes, for whatever reason, the shell tells every session
(``local_changed``); each session pushes what its peer is not known to hold. Events received
from a peer count as held by that peer, so nothing echoes back. A node thus forwards what it
ingests from one peer to its other peers, and events reach every machine as long as the live
links connect the cluster, even when some direct links are down.

The session (:class:`Session`) is sans-I/O, like h11's ``Connection``: bytes and the
current time go in, bytes to send and *actions* come out. It does not read the log: when it
needs events it asks for ranges (``NeedRanges``); the shell reads them and hands them to
``send_events``, which returns the batched messages. ``Ingest`` asks the shell to put
received events in its log.

Where each part lives: ``messages`` (the messages, ``VersionVector``, ``Item``, the limits,
``SyncError``), ``planner`` (``plan``: what to send), ``codec`` (messages to bytes and back),
``actions`` (what a session asks of its shell) and ``session`` (``Session``). Import from
the package (``from evstore.core import sync``): it re-exports them all.
"""

from __future__ import annotations

from evstore.core.sync.actions import (
    Action,
    Closed,
    Ingest,
    NeedRanges,
    PeerVersionMismatch,
    Pong,
    Ready,
    Send,
)
from evstore.core.sync.codec import decode_message, encode_message
from evstore.core.sync.messages import (
    MAX_BATCH_BYTES,
    MAX_ITEMS,
    MAX_MESSAGE_BYTES,
    MAX_ORIGINS,
    MAX_VERSION_CHARS,
    SIG_BYTES,
    ByeMsg,
    EventsMsg,
    HelloMsg,
    Item,
    Message,
    PingMsg,
    PongMsg,
    PushMsg,
    SyncError,
    VersionVector,
    VVMsg,
)
from evstore.core.sync.planner import Range, batches, chunk_ranges, plan
from evstore.core.sync.session import MAX_OUTSTANDING_PINGS, Session

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_ITEMS",
    "MAX_MESSAGE_BYTES",
    "Action",
    "ByeMsg",
    "Closed",
    "EventsMsg",
    "HelloMsg",
    "Ingest",
    "Item",
    "Message",
    "NeedRanges",
    "PeerVersionMismatch",
    "PingMsg",
    "Pong",
    "PongMsg",
    "PushMsg",
    "Range",
    "Ready",
    "Send",
    "Session",
    "SyncError",
    "VVMsg",
    "VersionVector",
    "batches",
    "chunk_ranges",
    "decode_message",
    "encode_message",
    "plan",
    # limits, as before the split
    "MAX_ORIGINS",
    "MAX_OUTSTANDING_PINGS",
    "MAX_VERSION_CHARS",
    "SIG_BYTES",
]
