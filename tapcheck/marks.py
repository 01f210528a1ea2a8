"""The operator's marks on logged judgments: "false alarm" or "confirmed defect".

A mark is stored beside the judgment, in its own table ``marks`` of the inspection log's SQLite
file; the ``inspections`` row is never changed. Marks are only ever appended (the latest one of
an inspection is its mark; "cleared" withdraws it), so who thought what and when stays on record.
The marked clips can be exported as a list (CSV) for re-use, e.g. as training or test takes.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .errors import InspectionLogError, ParameterError
from .inspections import LOG_FILE, SCHEMA_VERSION
from .logcheck import checked_row, tap_warnings

FALSE_ALARM, CONFIRMED, CLEARED = "false alarm", "confirmed defect", "cleared"
MARKS = (FALSE_ALARM, CONFIRMED, CLEARED)
VERDICTS = ("NORMAL", "ANOMALOUS")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS marks (
    id INTEGER PRIMARY KEY,
    inspection INTEGER NOT NULL REFERENCES inspections (id),
    mark TEXT NOT NULL CHECK (mark IN ('false alarm', 'confirmed defect', 'cleared')),
    time TEXT NOT NULL              -- UTC, ISO 8601, when the operator marked it
);
CREATE INDEX IF NOT EXISTS marks_inspection ON marks (inspection, id);
"""
MARK_COLUMNS = ("id", "inspection", "mark", "time")  # _SCHEMA's, in its order
#: the columns of the inspection log this code reads; a log without them has another schema
COLUMNS = ("id", "time", "board", "model", "model_path", "score", "threshold", "verdict", "clip",
           "latency_ms", "device")


@dataclass(frozen=True)
class Filter:
    """What the log page shows: a board, a date range (local dates, inclusive), a verdict."""

    board: int | None = None
    since: str | None = None  # YYYY-MM-DD
    until: str | None = None  # YYYY-MM-DD
    verdict: str | None = None
    limit: int = 500

    def where(self) -> tuple[str, list]:
        if (self.since is not None and self.until is not None
                and _day(self.since, "since") > _day(self.until, "until")):
            # an empty page read as "no inspections in that time" (QA); as days, not strings:
            # 2024-1-5 is a date strptime reads, and sorts after 2024-01-10
            raise ParameterError(f"since {self.since} is after until {self.until}",
                                 fix="swap the two dates")
        sql, args = [], []
        if self.board is not None:
            sql.append("i.board = ?")
            args.append(self.board)
        if self.verdict is not None:
            sql.append("i.verdict = ?")
            args.append(self.verdict)
        for bound, op, day in (("since", ">=", self.since), ("until", "<", self.until)):
            if day is not None:
                start = _utc_bound(day, bound)
                if start is not None:
                    sql.append(f"i.time {op} ?")
                    args.append(start)
        return (" WHERE " + " AND ".join(sql)) if sql else "", args


def _day(text: str, what: str) -> datetime:
    """``text`` (YYYY-MM-DD) as a date, or a ParameterError naming ``what``."""
    try:
        return datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        shown = text if len(text) <= 20 else text[:20] + "..."  # a 60 kB value came back whole
        raise ParameterError(f"{what} '{shown}' is not a date", fix="use YYYY-MM-DD") from None


def _utc_bound(text: str, what: str) -> str | None:
    """The UTC time (ISO 8601) where a local day ``since`` starts or ``until`` ends; None: no
    bound.

    A day at the calendar's ends (0001-01-01, 9999-12-31) is taken as a UTC day: its local
    midnight can lie outside the calendar (year 0 east of Greenwich; Python's local-time
    conversion fails on year 1 anywhere), and hours there matter to no log. ``until`` 9999-12-31
    ends in year 10000: no upper bound, "to the end", as the user meant, not an error.

    Raises
    ------
    ParameterError
        ``text`` is not a YYYY-MM-DD date.
    """
    from .since import local_moment

    day = _day(text, what)
    try:
        # midnight, the station's local time; "until" is inclusive: up to the next day's. The
        # next day's own midnight: the first day's offset plus a day was an hour off on the
        # days the clocks change (QA)
        start = local_moment(day + timedelta(days=what == "until")).astimezone(timezone.utc)
    except (OverflowError, ValueError):  # "date value out of range", "year 0 is out of range"
        try:
            start = day.replace(tzinfo=timezone.utc) + timedelta(days=what == "until")
        except OverflowError:  # until 9999-12-31
            return None
    return start.isoformat(timespec="milliseconds")


class MarkBook:
    """Marks of one inspection log (a connection of its own, shared by threads under a lock).

    Raises
    ------
    InspectionLogError
        The file is not an SQLite database, or its ``inspections`` table is of another schema.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / LOG_FILE
        # the web app reads and marks from its worker threads (heavy requests run off its
        # event loop): one statement at a time on the shared connection
        self._lock = threading.RLock()
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a mark survives a power cut
            check_schema(self.db, self.path)
            self.db.executescript(_SCHEMA)
            # one of another layout started, then every mark and the log page failed with 500s
            marks = tuple(r[1] for r in self.db.execute("PRAGMA table_info(marks)"))
            if marks != MARK_COLUMNS:
                raise InspectionLogError(
                    f"has a marks table of another schema (columns {', '.join(marks)}; this "
                    f"tapcheck writes {', '.join(MARK_COLUMNS)})", path=self.path,
                    fix="move it aside, or point $TAPCHECK_INSPECTIONS at another folder")
        except sqlite3.DatabaseError as e:
            raise InspectionLogError(f"is not a usable inspection log ({e})", path=self.path,
                                     fix="move it aside; the station then starts a new one"
                                     ) from None

    def close(self) -> None:
        self.db.close()

    def mark(self, inspection: int, mark: str) -> dict:
        """Record a mark; returns the inspection with its mark.

        Raises
        ------
        ParameterError
            An unknown mark or inspection id.
        """
        if mark not in MARKS:
            raise ParameterError(f"unknown mark {mark!r}", fix=f"use one of {', '.join(MARKS)}")
        with self._lock:
            # the row is checked before the mark is stored: a row with score 'abc' answered
            # 400 and was marked all the same (QA)
            if not self.rows(ids=[inspection]):
                raise ParameterError(f"no inspection with id {inspection}")
            now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            self.db.execute("INSERT INTO marks (inspection, mark, time) VALUES (?, ?, ?)",
                            (inspection, mark, now))
            return self.rows(ids=[inspection])[0]

    def rows(self, flt: Filter = Filter(), *, ids: list[int] | None = None) -> list[dict]:
        """Inspections, newest first, each with its current ``mark`` (None if never or
        cleared) and ``marked_at``."""
        where, args = flt.where()
        if ids is not None:
            where = " WHERE i.id IN (%s)" % ",".join("?" * len(ids))
            args = list(ids)
        order = f"{where} ORDER BY i.time DESC, i.id DESC LIMIT ?"
        sql = (f"SELECT {', '.join('i.' + c for c in COLUMNS)}, m.mark, m.time FROM inspections i "
               "LEFT JOIN marks m ON m.id = (SELECT max(id) FROM marks WHERE inspection = i.id)"
               + order)
        out = []
        with self._lock:
            found = self.db.execute(sql, [*args, flt.limit]).fetchall()
            # what was said beside each verdict: the page gave a clipped tap's as sound (QA)
            said = tap_warnings(self.db, "SELECT i.id FROM inspections i" + order,
                                [*args, flt.limit], self.path)
        for row in found:
            # as `tapcheck log` checks them: a row with score 'abc' (anything can write an
            # SQLite file) was served as it was, and the log page's toFixed on it blanked the page
            checked_row(row[:len(COLUMNS)], self.path)
            d = dict(zip((*COLUMNS, "mark", "marked_at"), row, strict=True))
            if d["mark"] == CLEARED:
                d["mark"] = d["marked_at"] = None
            d["warnings"] = said.get(d["id"], [])
            out.append(d)
        return out

    def clip_file(self, inspection: int) -> Path | None:
        """The logged clip of an inspection, if it is a file inside the log's folder."""
        with self._lock:
            row = self.db.execute("SELECT clip FROM inspections WHERE id = ?", (inspection,)
                                  ).fetchone()
        return None if row is None else self._inside(row[0])

    def _inside(self, clip: str) -> Path | None:
        root = self.root.resolve()
        try:
            path = (root / clip).resolve()
            # a row pointing elsewhere (edited by hand, ../ or absolute) is never served or
            # exported; nor one no file can have (a NUL byte, past the system's length), which
            # was a 500 that took the whole log page down (QA); nor one that is no clip: a row
            # naming the log itself served the database, and the reader's connection took its
            # -wal file from under the station's (QA)
            return (path if path.is_relative_to(root) and path.suffix.lower() == ".wav"
                    and path.is_file() else None)
        except (OSError, ValueError):
            return None

    def export_csv(self, flt: Filter = Filter(limit=1_000_000),
                   skipped: list[int] | None = None) -> str:
        """Marked inspections as CSV: clip (absolute, resolved), time, board, verdict, score,
        mark.

        Only clips :meth:`clip_file` would serve are listed: a row whose clip is gone or lies
        outside the log's folder (``../../etc/passwd`` edited in by hand) is left out, and its
        id appended to ``skipped`` when given.
        """
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["clip", "time", "board", "verdict", "score", "threshold", "model",
                         "mark", "marked_at"])
        for r in reversed(self.rows(flt)):
            if not r["mark"]:
                continue
            path = self._inside(r["clip"])
            if path is None:
                if skipped is not None:
                    skipped.append(r["id"])
                continue
            writer.writerow([path.as_posix(), r["time"], r["board"], r["verdict"], r["score"],
                             r["threshold"], r["model"], r["mark"], r["marked_at"]])
        return out.getvalue()


def check_schema(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a log whose ``inspections`` table lacks the columns this tapcheck reads."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise InspectionLogError(f"was written by a newer tapcheck (log format {version})",
                                 path=path, fix="upgrade tapcheck, or start a new log with "
                                                "$TAPCHECK_INSPECTIONS")
    have = {r[1] for r in db.execute("PRAGMA table_info(inspections)")}
    missing = [c for c in COLUMNS if c not in have]
    if have and missing:
        raise InspectionLogError(
            f"has an inspections table of another schema (no column {missing[0]})", path=path,
            fix="move it aside, or point $TAPCHECK_INSPECTIONS at another folder")
