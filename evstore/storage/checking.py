"""Check a batch of incoming events on every core, before the log places them.

An incoming event costs a canonical decode (``events.unverified``: JSON, the re-encoding
check, the envelope) and an Ed25519 signature check (``events.check_signature``). The second
is most of the cost, and PyNaCl releases the GIL while libsodium runs, so a batch is split
into chunks that worker threads decode and check while the caller goes on placing the
chunks already checked. The result is the same as checking one by one, in the same order:
each item becomes its ``Event`` or the ``InvalidInput`` that refuses it; nothing is stored
here.

Small batches (the everyday push of one commit) are checked inline: a thread hand-off would
cost more than it saves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from evstore.core import events
from evstore.core.errors import InvalidInput
from evstore.core.events import Event

Checked = Event | InvalidInput

CHUNK = 64  # events per task: large enough to amortize the hand-off, small enough to overlap
_MAX_WORKERS = 4

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def workers() -> int:
    """How many threads check signatures: the usable cores, at most four."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(_MAX_WORKERS, cores))


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="evstore-verify")
        return _pool


def check_one(raw: object, sig: object) -> Checked:
    """Decode and verify one incoming event; the refusal instead of raising it."""
    if not isinstance(raw, bytes) or not isinstance(sig, bytes):
        return InvalidInput("event bytes and signature must be bytes")
    try:
        event = events.unverified(raw, sig)
        events.check_signature(event)
    except InvalidInput as e:
        return e
    return event


def _check_chunk(chunk: Sequence[tuple[bytes, bytes]]) -> list[Checked]:
    return [check_one(raw, sig) for raw, sig in chunk]


def check_all(items: Sequence[tuple[bytes, bytes]]) -> Iterator[Checked]:
    """Each item checked, in order; later chunks are checked while earlier ones are used."""
    if len(items) < 2 * CHUNK or workers() == 1:
        for raw, sig in items:
            yield check_one(raw, sig)
        return
    pool = _executor()
    futures: list[Future[list[Checked]]] = [
        pool.submit(_check_chunk, items[i : i + CHUNK]) for i in range(0, len(items), CHUNK)
    ]
    try:
        for future in futures:
            yield from future.result()
    finally:
        for future in futures:  # the caller stopped early (an error): drop the rest
            future.cancel()
