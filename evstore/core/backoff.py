"""Slowing down passphrase guessing: exponential backoff per source and overall.

Pure: the caller passes "now" (seconds on a monotonic clock). Used by the node for failed
joins and by the web pages for failed logins (evstore/net/service.py, evstore/web/auth_pages.py).

* **Per source** (a client address, whatever user name it tries): the first ``free`` failures
  cost nothing; each later one doubles a lockout (``base``, 2x, 4x … up to ``cap``) during
  which that source's attempts are refused without being checked. A success clears the
  source; a source quiet for ``forget`` seconds starts afresh.
* **Overall** (every source together, so many addresses do not multiply the rate): past
  ``overall_free`` recent failures, checks are paced, one per ``interval`` seconds, the
  interval doubling with each further failure up to ``overall_cap``. An attempt waits for its
  slot; one whose slot is more than ``max_wait`` away is refused at once ("busy"). The count
  is forgotten after ``overall_forget`` quiet seconds; a success does not clear it (one good
  login must not reopen the door for a spray).

``Throttle`` keeps failure *alerts* to one per key per ``every`` seconds, counting the ones
it held back so the next alert can say how many there were.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Backoff", "Guard", "Throttle", "Verdict"]


@dataclass
class _Tries:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


@dataclass
class Backoff:
    """An exponential lockout per key (see the module docstring)."""

    free: int = 5
    base: float = 1.0
    cap: float = 60.0
    forget: float = 900.0
    most: int = 10_000
    _tries: dict[str, _Tries] = field(default_factory=dict)

    def wait_for(self, key: str, now: float) -> float:
        t = self._tries.get(key)
        return max(0.0, t.locked_until - now) if t else 0.0

    def failed(self, key: str, now: float) -> float:
        """Record a failure; returns the lockout it starts, in seconds."""
        self._prune(now)
        t = self._tries.setdefault(key, _Tries())
        if now - t.last > self.forget:
            t.failures = 0
        t.failures += 1
        t.last = now
        over = t.failures - self.free
        lockout = 0.0 if over <= 0 else min(self.cap, self.base * 2.0 ** min(over - 1, 60))
        t.locked_until = now + lockout
        return lockout

    def succeeded(self, key: str) -> None:
        self._tries.pop(key, None)

    def _prune(self, now: float) -> None:
        if len(self._tries) < self.most:
            return
        for k in [k for k, t in self._tries.items() if now - t.last > self.forget]:
            del self._tries[k]
        while len(self._tries) >= self.most:  # still full: the longest quiet go first
            del self._tries[min(self._tries, key=lambda k: self._tries[k].last)]


@dataclass(frozen=True)
class Verdict:
    """May an attempt be checked? ``wait`` seconds first; or refused (``why`` says so)."""

    wait: float
    why: str | None = None  # "source": this address is locked out; "overall": too busy

    @property
    def refused(self) -> bool:
        return self.why is not None


@dataclass
class Guard:
    """Failed attempts per source and overall (see the module docstring)."""

    per_source: Backoff = field(default_factory=Backoff)
    overall_free: int = 10
    overall_base: float = 0.05
    overall_cap: float = 1.0
    overall_forget: float = 60.0
    max_wait: float = 5.0
    _overall_failures: int = 0
    _overall_last: float = 0.0
    _next_slot: float = 0.0

    def check(self, source: str, now: float) -> Verdict:
        """Before checking a passphrase from ``source``: wait, or refuse."""
        locked = self.per_source.wait_for(source, now)
        if locked > 0:
            return Verdict(locked, "source")
        interval = self.interval(now)
        if interval <= 0:
            return Verdict(0.0)
        slot = max(now, self._next_slot)
        if slot - now > self.max_wait:
            return Verdict(slot - now, "overall")
        self._next_slot = slot + interval
        return Verdict(slot - now)

    def interval(self, now: float) -> float:
        """The pacing of checks now (0: none)."""
        if now - self._overall_last > self.overall_forget:
            self._overall_failures = 0
        over = self._overall_failures - self.overall_free
        if over <= 0:
            return 0.0
        return min(self.overall_cap, self.overall_base * 2.0 ** min(over - 1, 60))

    def failed(self, source: str, now: float) -> float:
        if now - self._overall_last > self.overall_forget:
            self._overall_failures = 0
        self._overall_failures += 1
        self._overall_last = now
        return self.per_source.failed(source, now)

    def succeeded(self, source: str) -> None:
        self.per_source.succeeded(source)


@dataclass
class Throttle:
    """At most one alert per key per ``every`` seconds; counts the ones held back."""

    every: float = 10.0
    most: int = 1000
    _last: dict[str, float] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)

    def take(self, key: str, now: float) -> int | None:
        """None: hold this alert back; else write it, saying how many were held back."""
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        if len(self._last) >= self.most:
            for k in [k for k, t in self._last.items() if now - t >= self.every]:
                self._last.pop(k, None)
                self._held.pop(k, None)
        self._last[key] = now
        return self._held.pop(key, 0)
