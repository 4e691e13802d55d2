"""Guessing the admin passphrase through ``join`` (issue 15, item 3).

Before: guesses went on about twice a second without limit, and each one ran argon2 under
the node's one database limiter, delaying gossip. Now failures back off per source address
(refused unchecked once locked) and overall, the hash runs under a limiter of its own, and the
failure alerts are rate-limited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evstore.core.errors import EvstoreError
from evstore.net import joins
from tests.net.cluster_helpers import PASS, alerts, join, make_box, running_cluster


async def test_join_guesses_back_off_per_address_and_hash_off_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_cluster(tmp_path, ("a",)) as (a,):
        assert a.handle is not None and a.handle.runtime is not None
        rt = a.handle.runtime
        held: list[int] = []
        real = joins.secrets.check_passphrase

        def spy(stored: str, passphrase: str) -> bool:
            held.append(rt.work.limiter.borrowed_tokens)  # the database limiter, while hashing
            return real(stored, passphrase)

        monkeypatch.setattr(joins.secrets, "check_passphrase", spy)
        d = make_box(tmp_path, "d")
        messages: list[str] = []
        for _ in range(rt.admission.guard.per_source.free + 3):
            with pytest.raises(EvstoreError) as err:
                await join(d, a, passphrase="not it")
            messages.append(str(err.value))
        assert "wrong user or passphrase" in messages[0]
        assert "too many wrong passphrases from 127.0.0.1" in messages[-1], messages
        checked = len(held)
        with pytest.raises(EvstoreError, match="too many wrong passphrases"):
            await join(d, a)  # locked: even the right passphrase is not checked
        assert len(held) == checked
        assert held and all(n == 0 for n in held)  # never hashed under the database limiter
        failed = [x for x in alerts(a.home) if "wrong passphrase" in x]
        assert len(failed) == 1, failed  # the rest were held back, counted in the next one

        rt.admission.guard.per_source.succeeded("127.0.0.1")  # the lockout is over (time passes)
        done: dict[str, Any] = await join(d, a, passphrase=PASS)
        assert done["cluster"] == "testcluster"
