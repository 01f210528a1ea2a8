"""Local times: ``--since``, a user's "from when" for the inspection log and the station's
history (``30m``, ``8h``, ``2d``, ``today``, ``yesterday``, or a local date and time), the
moment a local wall time names where the clocks change, a logged time as a reader sees it, and
whether ``$TZ`` names a zone at all."""

from __future__ import annotations

import functools
import os
import re
from datetime import datetime, timedelta, timezone

from .errors import ParameterError

# ASCII digits only: "৩d" (Bengali three) was read as 3 days
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days",
          "w": "weeks"}


# a --since before the calendar's first moment: every row (no log reaches back there); past
# its last: none
FIRST_MOMENT = datetime.min.replace(tzinfo=timezone.utc)
LAST_MOMENT = datetime.max.replace(tzinfo=timezone.utc)


# a POSIX TZ rule (EST5EDT, CET-1CEST,M3.5.0,M10.5.0/3, <+0545>-5:45): a zone by its offset
_POSIX_TZ = re.compile(r"^(?:[A-Za-z]{3,}|<[-+0-9A-Za-z]+>)[-+]?[0-9]")


@functools.cache
def unknown_time_zone() -> str | None:
    """Why the machine's local times are not what ``$TZ`` asks for, else None: a ``TZ`` that
    names no zone this system has makes the C library keep time in UTC without a word, so a
    typo in a station's systemd unit shifted every time shown and every clip's name (QA).
    A zone's name, a file of the time zone database, or a POSIX rule (``EST5EDT``) is known.
    """
    tz = os.environ.get("TZ")
    if not tz:
        return None
    name = tz[1:] if tz.startswith(":") else tz
    if _POSIX_TZ.match(name):
        return None
    import zoneinfo

    folders = [os.environ.get("TZDIR") or "/usr/share/zoneinfo", *zoneinfo.TZPATH]
    # a file of the time zone database (its magic), as the C library reads it: any file passed
    # (TZ=/etc/passwd ran on UTC with no zone's name), and a path with ".." was refused
    if any(_is_tzif(os.path.join(f, name)) for f in folders):  # an absolute name: itself
        return None
    return (f"TZ={tz!r} names no time zone this system knows, so tapcheck's local times (the "
            "log's, its clips' names, --since) are UTC — set TZ to a zone such as "
            "Europe/Berlin (ls /usr/share/zoneinfo), or leave it unset for the machine's own")


def _is_tzif(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"TZif"
    except OSError:
        return False


def local_time(time: str) -> str:
    """An ISO 8601 time (a log's UTC) in the machine's time zone, to the second, with the
    zone's name (``2026-10-25 02:30:00 CEST``): the hour the clocks repeat in autumn showed two
    taps an hour apart at one time, and a reader in another zone could not tell which zone the
    table was in (QA). At the calendar's edge (year 1 west of UTC, year 9999 east of it), where the
    local time does not exist, in UTC (`tapcheck log` stopped on an OverflowError)."""
    when = datetime.fromisoformat(time)
    try:
        return when.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    except (OverflowError, ValueError):
        # isoformat, not strftime: glibc writes year 1 as "1"
        return when.astimezone(timezone.utc).isoformat(sep=" ", timespec="seconds")[:19] + " UTC"


def local_moment(when: datetime) -> datetime:
    """The moment a local wall time (naive, the machine's time zone) names, aware.

    An hour the clocks repeat (autumn) is its first time round, as before. A time the clocks
    skip (02:30 as Berlin goes from 02:00 to 03:00) is the first moment after it, the change
    itself: Python's reading, 01:30 CET, put ``--since '2026-03-29 02:30'`` an hour early, and
    ``--since 2026-09-06`` in Santiago (whose clocks skip midnight) at 23:00 the day before (QA).

    Raises
    ------
    OverflowError, ValueError
        ``when`` lies where the local time cannot be converted (the calendar's edges).
    """
    first = when.replace(fold=0).astimezone()
    if first.replace(tzinfo=None) == when:
        return first
    second = when.replace(fold=1).astimezone()
    if second.replace(tzinfo=None) == when:
        return second
    # in the gap: between its two readings lies the change; the first whole second whose wall
    # time is at or past ``when`` is it (clocks change on whole seconds)
    lo, hi = sorted((int(first.timestamp()), int(second.timestamp()) + 1))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid) >= when.replace(fold=0):
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi).astimezone()


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``--since``: a time ago (``30m``, ``8h``, ``2d``), ``today`` or ``yesterday`` (from
    midnight), or a local date/time.

    Examples
    --------
    >>> parse_since("2025-05-01 06:00").isoformat()[:16]
    '2025-05-01T06:00'
    """
    local = now is None  # midnights are the machine's, whatever offset the day has
    now = now or datetime.now().astimezone()
    if not text.strip() or not text.isprintable():  # "" once meant "no filter" without a word
        raise ParameterError(f"--since {text!r} is not a time",
                             fix="use e.g. 30m, 8h, 2d, today, yesterday or 2025-05-01, or leave "
                                 "it out")
    m = _DURATION.match(text)
    if m:
        try:
            return now - timedelta(**{_UNITS[m.group(2).lower()]: float(m.group(1))})
        except OverflowError:  # "99999999999d": before the first year there is, i.e. all
            return FIRST_MOMENT
    day = {"today": 0, "yesterday": 1}.get(text.strip().lower())  # "yesterday" was no time
    if day is not None:
        # the calendar day, then its own offset: "today minus 24 h" was an hour off on the
        # days after a daylight-saving change
        midnight = datetime.combine(now.date() - timedelta(days=day), datetime.min.time())
        return local_moment(midnight) if local else midnight.replace(tzinfo=now.tzinfo)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ParameterError(f"--since '{text}' is not a time",
                             fix="use e.g. 30m, 8h, 2d, today, yesterday, 2025-05-01, "
                                 "'2025-05-01 06:00' or, with its offset from UTC (the second "
                                 "time round of an hour the clocks repeat), "
                                 "'2025-10-26 02:30+01:00'") from None
    try:
        when = when if when.tzinfo else local_moment(when)  # naive: the machine's local time
        when.astimezone(timezone.utc)  # _where's conversion, tried here where it can be caught
        return when
    except (ValueError, OverflowError):
        # 0001-01-01 east of UTC lies before year 1 there: "from the start", as the station's
        # since= reads the calendar's first day (marks._utc_bound); it was refused here. The
        # calendar's last hours west of UTC lie past year 9999: after every row, not before
        return FIRST_MOMENT if when.year == 1 else LAST_MOMENT
