"""Times on the command line and in JSON: ISO 8601 or relative to now, as UTC milliseconds.

Accepted (the contract's "Times on the command line"):

* ISO 8601: ``2026-11-20``, ``2026-11-20T10:00``, ``2026-11-20T10:00:00``, with optional
  fractional seconds and an optional zone ``Z`` or ``±HH:MM`` (``±HHMM``); no zone means UTC.
  A space may stand for the ``T``.
* relative, in the past: ``-30s``, ``-30m``, ``-2h``, ``-1d``, ``-1w`` and sums of them
  (``-1d12h``); ``now``.

The core never reads the clock, so ``now_ms`` is passed in, and it may not use ``datetime``
(tests/test_layering.py): the calendar arithmetic is done here, with Howard Hinnant's
days-from-civil algorithm, which is exact for the proleptic Gregorian calendar.
"""

from __future__ import annotations

import functools
import re

from evstore.core.errors import InvalidInput

DAY_MS = 86_400_000
_UNIT_MS = {"w": 7 * DAY_MS, "d": DAY_MS, "h": 3_600_000, "m": 60_000, "s": 1_000}
_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?P<z>Z|z|[+-]\d{2}:?\d{2})?)?"
)
_RELATIVE = re.compile(r"-(?:\d{1,9}[wdhms])+")
_PART = re.compile(r"(\d+)([wdhms])")
FORMS = "ISO 8601 such as 2026-11-20T10:00:00Z, or relative such as -30m, -2h, -1d"


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y = year - (month <= 2)
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """The (year, month, day) of a count of days since 1970-01-01."""
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _bad(text: str, why: str = "") -> InvalidInput:
    detail = f" ({why})" if why else ""
    return InvalidInput(f"{text!r} is not a time{detail}: write {FORMS}")


def _zone_ms(text: str, zone: str | None) -> int:
    if zone is None or zone in ("Z", "z"):
        return 0
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise _bad(text, "zone offset out of range")
    offset = (hours * 60 + minutes) * 60_000
    return offset if zone[0] == "+" else -offset


def _iso_ms(text: str) -> int:
    m = _ISO.fullmatch(text)
    if m is None:
        raise _bad(text)
    year, month, day = int(m["y"]), int(m["mo"]), int(m["d"])
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        raise _bad(text, "no such date")
    hour, minute, second = int(m["h"] or 0), int(m["mi"] or 0), int(m["s"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise _bad(text, "no such time of day")
    millis = int((m["f"] or "0")[:3].ljust(3, "0"))
    seconds = ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + second
    return seconds * 1000 + millis - _zone_ms(text, m["z"])


def _relative_ms(text: str, now_ms: int) -> int:
    back = sum(int(n) * _UNIT_MS[unit] for n, unit in _PART.findall(text))
    return now_ms - back


def parse_time(text: str, now_ms: int) -> int:
    """A command-line time as milliseconds since the Unix epoch (UTC)."""
    value = text.strip()
    if value.lower() == "now":
        return now_ms
    if _RELATIVE.fullmatch(value):
        return _relative_ms(value, now_ms)
    if not value:
        raise _bad(text, "empty")
    return _iso_ms(value)


@functools.lru_cache(maxsize=1024)
def _date(days: int) -> str:
    year, month, day = civil_from_days(days)
    return f"{year:04d}-{month:02d}-{day:02d}"


def format_iso(ms: int) -> str:
    """``2026-11-20T10:00:00.000Z``: how times appear in JSON (UTC, milliseconds)."""
    days, rest = divmod(ms, DAY_MS)
    seconds, millis = divmod(rest, 1000)
    hour, seconds = divmod(seconds, 3600)
    minute, second = divmod(seconds, 60)
    return f"{_date(days)}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"
