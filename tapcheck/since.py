"""``--since``: a user's "from when" for the inspection log and the station's history, as a
time: ``30m``, ``8h``, ``2d``, ``today``, ``yesterday``, or a local date and time."""

from __future__ import annotations

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
        return midnight.astimezone() if local else midnight.replace(tzinfo=now.tzinfo)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ParameterError(f"--since '{text}' is not a time",
                             fix="use e.g. 30m, 8h, 2d, today, yesterday, 2025-05-01 or "
                                 "'2025-05-01 06:00'") from None
    try:
        when = when if when.tzinfo else when.astimezone()  # naive: the machine's local time
        when.astimezone(timezone.utc)  # _where's conversion, tried here where it can be caught
        return when
    except (ValueError, OverflowError):
        # 0001-01-01 east of UTC lies before year 1 there: "from the start", as the station's
        # since= reads the calendar's first day (marks._utc_bound); it was refused here. The
        # calendar's last hours west of UTC lie past year 9999: after every row, not before
        return FIRST_MOMENT if when.year == 1 else LAST_MOMENT
