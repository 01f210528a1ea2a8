"""``--since``: durations, days and local times, at the calendar's edges and clock changes."""

from datetime import datetime, timedelta, timezone

import pytest

from tapcheck.errors import ParameterError
from tapcheck.since import parse_since


def test_parse_since():
    now = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_since("30m", now=now) == now - timedelta(minutes=30)
    assert parse_since("8h", now=now) == now - timedelta(hours=8)
    assert parse_since("2d", now=now) == now - timedelta(days=2)
    assert parse_since("today", now=now) == datetime(2025, 5, 1, tzinfo=timezone.utc)
    assert parse_since("Yesterday", now=now) == datetime(2025, 4, 30, tzinfo=timezone.utc)
    assert parse_since("2025-05-01T06:00+00:00") == datetime(2025, 5, 1, 6, tzinfo=timezone.utc)
    naive = parse_since("2025-05-01 06:00")
    assert naive == datetime(2025, 5, 1, 6).astimezone()  # the machine's local time
    with pytest.raises(ParameterError, match="--since 'yesterdayish' is not a time"):
        parse_since("yesterdayish")
    for empty in ("", "  ", "\t"):  # once silently "no filter"
        with pytest.raises(ParameterError, match="is not a time"):
            parse_since(empty)

def test_midnights_are_the_days_own_across_a_clock_change(monkeypatch):
    """"yesterday" as today's midnight minus 24 h was 23:00 the day before, the day after the
    clocks went forward (Europe/Berlin, 2025-03-30)."""
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        for when, day, hours in [(datetime(2025, 3, 31, 10), 30, 1), (datetime(2025, 10, 27, 10),
                                                                        26, 2)]:
            monkeypatch.setattr("tapcheck.since.datetime", _frozen(when.astimezone()))
            got = parse_since("yesterday")
            assert got.isoformat() == f"{when.year}-{when.month:02d}-{day}T00:00:00+0{hours}:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def _frozen(now: datetime):
    """datetime whose now() is ``now`` (local); the rest is datetime's."""
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return now if tz is None else now.astimezone(tz)
    return Frozen


@pytest.mark.parametrize("text", ["৩d", "１d"])
def test_since_takes_ascii_digits_only(text):
    """Digits of other scripts were read as numbers ("৩d" as 3 days); board numbers refuse them."""
    with pytest.raises(ParameterError, match="is not a time"):
        parse_since(text)
