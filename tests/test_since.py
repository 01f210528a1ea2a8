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


@pytest.mark.parametrize("zone, text, moment", [
    # Berlin skips 02:00-03:00 on 2026-03-29: a time in the gap is the change, 03:00 CEST
    ("Europe/Berlin", "2026-03-29 02:30", "2026-03-29T03:00:00+02:00"),
    ("Europe/Berlin", "2026-03-29 02:00", "2026-03-29T03:00:00+02:00"),
    ("Europe/Berlin", "2026-10-25 02:30", "2026-10-25T02:30:00+02:00"),  # repeated: first
    ("Europe/Berlin", "2026-03-29", "2026-03-29T00:00:00+01:00"),
    # Santiago's clocks skip midnight: the day starts at 01:00, not at 23:00 the day before
    ("America/Santiago", "2026-09-06", "2026-09-06T01:00:00-03:00"),
    ("America/Havana", "2026-03-08", "2026-03-08T01:00:00-04:00"),
])
def test_a_local_time_the_clocks_skip_is_the_first_moment_after_it(zone, text, moment,
                                                                   monkeypatch):
    """Python read a skipped time by the offset before the change: --since '2026-03-29 02:30'
    in Berlin started at 01:30, and a day Santiago's clocks start at 01:00 included the last
    hour of the day before (QA)."""
    import time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert parse_since(text).isoformat() == moment
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_station_s_days_end_at_the_next_days_own_midnight(monkeypatch):
    """The log page's "to" day ended a day after its start at the first day's offset: on the
    days the clocks change an hour of the next day was in, or the last hour out (QA)."""
    import time

    from tapcheck.marks import _utc_bound

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert _utc_bound("2026-03-29", "until") == "2026-03-29T22:00:00.000+00:00"
        assert _utc_bound("2026-10-25", "until") == "2026-10-25T23:00:00.000+00:00"
        assert _utc_bound("2026-10-25", "since") == "2026-10-24T22:00:00.000+00:00"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("tz, known", [("Europe/Berlin", True), (":UTC", True),
                                       ("EST5EDT", True), ("CET-1CEST,M3.5.0,M10.5.0/3", True),
                                       ("<+0545>-5:45", True), ("", True),
                                       ("../zoneinfo/Europe/Berlin", True),
                                       ("/usr/share/zoneinfo/Asia/Kolkata", True),
                                       ("Nowhere/Bogus", False), ("Europe/Berlni", False),
                                       ("../../etc/passwd", False), ("/etc/passwd", False)])
def test_a_tz_that_names_no_zone_is_told(tz, known, monkeypatch):
    from tapcheck.since import unknown_time_zone

    monkeypatch.setenv("TZ", tz)
    unknown_time_zone.cache_clear()
    try:
        assert (unknown_time_zone() is None) == known
    finally:
        unknown_time_zone.cache_clear()
