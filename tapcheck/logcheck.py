"""Opening the inspection log safely, and checking what comes out of it.

Reading must never change the log: ``tapcheck log`` opens it read-only (an SQLite ``mode=ro``
URI; on a read-only mount, where SQLite cannot make its shared-memory file, ``immutable=1``) and
runs no PRAGMA that writes. Before anything is written, the schema is checked: a database of
another program or version is refused as it is (no index added, ``user_version`` untouched). A
log locked by another process is one clear line after a short wait, not "move it aside".

Rows are outside input too (anything can write an SQLite file): each one is checked for the types
the log's readers rely on, and a bad one is an :class:`InspectionLogError` naming it.
"""

from __future__ import annotations

import math
import os
import sqlite3
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import InspectionLogError
from .file_kinds import refuse_special
from .manifest import MAX_BOARD

COLUMNS = ("id", "time", "board", "model", "model_path", "score", "threshold", "verdict", "clip",
           "latency_ms", "device")
#: the ``boards`` table (``listen --taps-per-board``); a log may lack it (written before it)
BOARD_COLUMNS = ("id", "time", "board", "number", "first_inspection", "last_inspection", "taps",
                 "median", "threshold", "board_taps", "verdict")
#: the ``tap_warnings`` table (a tap's warnings); a log may lack it (written before it)
WARNING_COLUMNS = ("id", "inspection", "warning")
NEW_LOG = "`tapcheck listen` then starts a new one (or set $TAPCHECK_INSPECTIONS)"
WAIT_S = 2.0  # how long a locked log is waited for before saying so


def _schema_version() -> int:
    from .inspections import SCHEMA_VERSION

    return SCHEMA_VERSION


def check_schema(db: sqlite3.Connection, path: Path) -> bool:
    """Whether the log holds our table (False: a new, empty database); refuse anything else.

    Raises
    ------
    InspectionLogError
        Another program's database, a newer or older log format, or other columns.
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if version == 0 and not tables:
        return False
    ours = _schema_version()
    if version > ours:
        raise InspectionLogError(
            f"was written by a newer tapcheck (log format {version})", path=path,
            fix="upgrade tapcheck, or start a new log with $TAPCHECK_INSPECTIONS")
    columns = tuple(r[1] for r in db.execute("PRAGMA table_info(inspections)"))
    boards = tuple(r[1] for r in db.execute("PRAGMA table_info(boards)"))
    said = tuple(r[1] for r in db.execute("PRAGMA table_info(tap_warnings)"))
    if (version != ours or columns != COLUMNS or boards not in ((), BOARD_COLUMNS)
            or said not in ((), WARNING_COLUMNS)):
        raise InspectionLogError(
            f"is not a tapcheck inspection log of format {ours} (format {version}, tables "
            f"{', '.join(sorted(tables)) or 'none'})", path=path,
            fix=f"move it aside; {NEW_LOG}")  # as for any log that cannot be used
    return True


def connect_reader(path: Path) -> sqlite3.Connection | None:
    """A read-only connection to an existing log (None: an empty database, nothing to read)."""
    refuse_special(path, InspectionLogError, fix=f"move it aside; {NEW_LOG}")
    if path.is_dir():  # it read "is not a usable inspection log (disk I/O error)" (QA)
        raise InspectionLogError("is a folder, not the log file", path=path,
                                 fix=f"move the folder aside; {NEW_LOG}")
    # the path's bytes: a folder name that is not UTF-8 raised an encoding error (QA)
    uri = "file:" + urllib.parse.quote(os.fsencode(path.absolute()))
    last: sqlite3.DatabaseError | None = None
    # With no write-ahead log beside it, everything is in the file itself: immutable=1 reads
    # it without creating the -shm/-wal files a plain read-only connection leaves behind (and
    # cannot create on a read-only mount). With one (a listen is running), mode=ro sees the rows
    # it has committed there; immutable=1 is the fallback when that fails
    # (a -journal file: a writer in rollback mode is mid-transaction, so honour its locks)
    busy = any(path.with_name(path.name + end).exists() for end in ("-wal", "-journal"))
    queries = ("?mode=ro", "?mode=ro&immutable=1") if busy else ("?mode=ro&immutable=1",)
    for query in queries:
        db = None
        try:
            db = sqlite3.connect(uri + query, uri=True, timeout=WAIT_S, isolation_level=None)
            if not check_schema(db, path):
                db.close()
                return None
            return db
        except InspectionLogError:
            db.close()
            raise
        except sqlite3.DatabaseError as e:
            if db is not None:
                db.close()
            last = e
            if "locked" in str(e) or "not a database" in str(e) or "malformed" in str(e):
                break
    raise log_error(last, path)


def log_error(e: sqlite3.DatabaseError | None, path: Path) -> InspectionLogError:
    """The one line for an SQLite error on the log."""
    text = str(e)
    if "locked" in text or "busy" in text:
        return InspectionLogError(
            f"is locked by another process ({text}) for more than {WAIT_S:g} s", path=path,
            fix="wait until the program holding it (a `tapcheck listen`?) is done, then retry")
    if "full" in text:
        return InspectionLogError(f"cannot be written ({text})", path=path,
                                  fix="the disk is full; free some space and try again")
    if "readonly" in text or "unable to open" in text:
        return InspectionLogError(f"cannot be opened ({text})", path=path,
                                  fix="check the folder's permissions, or that the disk is "
                                      "mounted")
    return InspectionLogError(f"is not a usable inspection log ({text})", path=path,
                              fix=f"move it aside; {NEW_LOG}")


def _bad(row: Any, what: str, path: Path, table: str) -> InspectionLogError:
    # the table named: "row 1" of boards sent a user to row 1 of inspections, which was fine
    return InspectionLogError(f"{table} row {row[0]!r}: {what}", path=path,
                              fix=f"delete or fix the row (sqlite3: DELETE FROM {table} WHERE "
                                  f"id = {row[0]!r}), or move the log aside")


def _common(row: tuple, columns, path: Path, table: str) -> dict:
    """The row as a dict of ``columns``, its column count, time and board number checked (what
    tap rows and board rows share)."""
    if len(row) != len(columns):
        raise _bad(row, f"has {len(row)} columns, not {len(columns)}", path, table)
    values = dict(zip(columns, row, strict=True))
    try:
        when = datetime.fromisoformat(values["time"])
    except (TypeError, ValueError):
        raise _bad(row, f"time {values['time']!r} is not an ISO 8601 time", path, table) from None
    if values["time"] != when.astimezone(timezone.utc).isoformat(timespec="milliseconds"):
        # rows are ordered and --since applied by their times as text, as tapcheck writes them
        # (UTC, milliseconds, "+00:00"; every tapcheck has): a 14:00 UTC row written 23:00+09:00
        # passed a 15:30 UTC --since and sorted after 16:01 (QA), and "2025-05-01 09:00:00+00:00"
        # sorted before 07:00 (review)
        raise _bad(row, f"time {values['time']!r} is not written as tapcheck writes it (UTC: "
                        "2025-05-01T06:00:00.000+00:00)", path, table)
    if values["board"] is not None and (not isinstance(values["board"], int)
                                        or not 0 <= values["board"] <= MAX_BOARD):
        raise _bad(row, f"board {values['board']!r} is not a board number (0 to {MAX_BOARD})",
                   path, table)
    return values


def checked_row(row: tuple, path: Path):
    """An :class:`~tapcheck.inspections.Inspection` from a row, its types checked."""
    from .inspections import Inspection

    table = "inspections"
    values = _common(row, COLUMNS, path, table)
    for key in ("score", "threshold", "latency_ms"):
        value = values[key]
        if value is None and key == "latency_ms":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            raise _bad(row, f"{key} {value!r} is not a finite number", path, table)
    if values["verdict"] not in ("NORMAL", "ANOMALOUS"):
        raise _bad(row, f"verdict {values['verdict']!r} is not NORMAL or ANOMALOUS", path, table)
    for key in ("model", "model_path", "clip"):
        if not isinstance(values[key], str):
            raise _bad(row, f"{key} {values[key]!r} is not text", path, table)
    if values["device"] is not None and not isinstance(values["device"], str):
        raise _bad(row, f"device {values['device']!r} is not text", path, table)
    return Inspection(**values)


def tap_warnings(db: sqlite3.Connection, ids_sql: str, args: list, path: Path
                 ) -> dict[int, list[str]]:
    """The warnings of the inspections whose ids ``ids_sql`` (with ``args``) selects, by id, in
    the order said; none in a log older than the ``tap_warnings`` table. A row that is not an
    id and a text (anything can write an SQLite file) is an :class:`InspectionLogError`."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                      "name = 'tap_warnings'").fetchone():
        return {}
    found: dict[int, list[str]] = {}
    for row in db.execute(f"SELECT id, inspection, warning FROM tap_warnings WHERE inspection "
                          f"IN ({ids_sql}) ORDER BY id", args):
        _, inspection, warning = row
        if not isinstance(inspection, int) or not isinstance(warning, str):
            raise _bad(row, "is not an inspection's id and a warning's text", path,
                       "tap_warnings")
        found.setdefault(inspection, []).append(warning)
    return found


def tap_marks(db: sqlite3.Connection, ids_sql: str, args: list, path: Path
              ) -> dict[int, tuple[str, str]]:
    """The operator's current mark and its time (:mod:`tapcheck.marks`: the latest of an
    inspection, none when it is "cleared") of the inspections ``ids_sql`` selects, by id; none
    in a log the station never marked.

    Parameters
    ----------
    db : sqlite3.Connection
    ids_sql : str
        A SELECT of inspection ids, with ``?`` for ``args``.
    args : list
    path : Path
        The log, named in an error.

    Returns
    -------
    dict
        Inspection id to (mark, UTC time of the mark).

    Raises
    ------
    InspectionLogError
        A row that is not an id, a known mark and a text.
    """
    from .marks import CLEARED, MARKS

    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                      "name = 'marks'").fetchone():
        return {}
    found: dict[int, tuple[str, str]] = {}
    for row in db.execute(f"SELECT id, inspection, mark, time FROM marks WHERE inspection "
                          f"IN ({ids_sql}) ORDER BY id", args):
        _, inspection, mark, time = row
        if not isinstance(inspection, int) or mark not in MARKS or not isinstance(time, str):
            raise _bad(row, "is not an inspection's id, a mark and its time", path, "marks")
        found[inspection] = (mark, time)  # the latest stands
    return {i: m for i, m in found.items() if m[0] != CLEARED}


def checked_board_row(row: tuple, path: Path):
    """A :class:`~tapcheck.inspections.BoardInspection` from a ``boards`` row, its types
    checked."""
    from .inspections import BoardInspection

    table = "boards"
    values = _common(row, BOARD_COLUMNS, path, table)
    for key in ("number", "first_inspection", "last_inspection", "taps", "board_taps"):
        if isinstance(values[key], bool) or not isinstance(values[key], int) or values[key] < 0:
            raise _bad(row, f"{key} {values[key]!r} is not a count", path, table)
    for key in ("median", "threshold"):
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            raise _bad(row, f"{key} {value!r} is not a finite number", path, table)
    if values["verdict"] not in ("NORMAL", "ANOMALOUS"):
        raise _bad(row, f"verdict {values['verdict']!r} is not NORMAL or ANOMALOUS", path, table)
    return BoardInspection(**values)


def clip_inside(clip: str) -> bool:
    """Whether a row's clip path lies inside the log's folder, as listen writes it (relative,
    no ``..``): the station serves and exports no other, and `log` listed ``/etc/passwd`` as a
    tap's clip (QA)."""
    return bool(clip) and not clip.startswith("/") and ".." not in clip.split("/") \
        and "\0" not in clip
