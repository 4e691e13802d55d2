"""Check a batch of incoming events on every core, before the log places them.

An incoming event costs a canonical decode (``events.unverified``: JSON, the re-encoding
check, the envelope) and an Ed25519 signature check (``events.check_signature``). The second
is most of the cost, and PyNaCl releases the GIL while libsodium runs, so a batch is split
into chunks whose signatures worker threads check while the caller decodes the next chunks
and then places the ones already checked. The result is the same as checking one by one, in the same order:
each item becomes its ``Event`` or the ``InvalidInput`` that refuses it; nothing is stored
here.

Small batches (the everyday push of one commit) are checked inline: a thread hand-off would
cost more than it saves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from evstore.core import events
from evstore.core.errors import InvalidInput
from evstore.core.events import Event

if TYPE_CHECKING:  # loaded by the first large batch: opening a home to read it needs no pool
    from concurrent.futures import Future, ThreadPoolExecutor

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
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="evstore-verify")
        return _pool


def _decode(raw: object, sig: object) -> Checked:
    if not isinstance(raw, bytes) or not isinstance(sig, bytes):
        return InvalidInput("event bytes and signature must be bytes")
    try:
        return events.unverified(raw, sig)
    except InvalidInput as e:
        return e


def _verify(decoded: Checked) -> Checked:
    if isinstance(decoded, InvalidInput):
        return decoded
    try:
        events.check_signature(decoded)
    except InvalidInput as e:
        return e
    return decoded


def check_one(raw: object, sig: object) -> Checked:
    """Decode and verify one incoming event; the refusal instead of raising it."""
    return _verify(_decode(raw, sig))


def _verify_chunk(chunk: list[Checked]) -> list[Checked]:
    return [_verify(d) for d in chunk]


def check_all(items: Sequence[tuple[bytes, bytes]]) -> Iterator[Checked]:
    """Each item checked, in order.

    The caller's thread decodes (JSON needs the GIL) and hands each decoded chunk to the
    workers, which check signatures (libsodium runs without the GIL) while the caller decodes
    the next chunk and then uses the first results. Workers that only verify hold the GIL
    for a few microseconds per event, so the caller's SQLite work is seldom kept waiting.
    """
    if len(items) < 2 * CHUNK or workers() == 1:
        for raw, sig in items:
            yield check_one(raw, sig)
        return
    pool = _executor()
    futures: list[Future[list[Checked]]] = []
    try:
        for i in range(0, len(items), CHUNK):
            decoded = [_decode(raw, sig) for raw, sig in items[i : i + CHUNK]]
            futures.append(pool.submit(_verify_chunk, decoded))
        for future in futures:
            yield from future.result()
    finally:
        for future in futures:  # the caller stopped early (an error): drop the rest
            future.cancel()
