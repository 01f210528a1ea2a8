"""The inspection log: every judgment ``tapcheck listen`` makes, in SQLite, with its clip.

``inspections/inspections.sqlite`` (``$TAPCHECK_INSPECTIONS`` moves the folder) has one row per
judged tap: time (UTC, ISO 8601), board, model, score, threshold, verdict, the clip's path
(relative to the folder) and how long the verdict took. The clip the model judged is saved beside
it (``clips/<date>/<time>[-boardNN].wav``, 32-bit float), so ``tapcheck judge`` on it gives the
logged score again, and a shift's results can be audited later.

A tap's warnings (clipped, two strikes in the clip, a louder room than training's: "the
verdict may be off") are rows of a table of their own, ``tap_warnings``, one per warning,
written in the tap's transaction: the terminal and the live page said them, and the log, read
later, gave the verdict as sound (QA).

``listen --taps-per-board`` adds one row per board to a table of its own, ``boards``: the board
counter of the session, the median of its taps' scores, the board threshold (for the default
``vote`` rule the tap threshold) and verdict, and the
ids of its first and last tap. The ``inspections`` table is unchanged, so the log format stays 1:
an older log gets the (empty) table when ``listen`` next opens it, reads without it as having no
board verdicts, and an older tapcheck reads a log that has it (``tap_warnings`` likewise).

Each row is committed on its own (write-ahead log, fsync'd), after its clip has been written
atomically: a killed ``listen`` loses at most the tap it was saving, and a row never points at a
missing clip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .audio import write_wav
from .errors import InspectionLogError, StorageError
from .dataset_folders import refuse_dataset_folder
from .files import storage_error
from .json_output import utf8_text
from .file_kinds import refuse_outside, refuse_special
from .locks import exclusive, lock_path
from .logcheck import (NEW_LOG, check_schema, checked_board_row, checked_row, connect_reader,
                       log_error, tap_marks, tap_warnings)
from .paths import check_folder, inspections_home
from .since import local_time, unknown_time_zone

LOG_FILE = "inspections.sqlite"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS inspections (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,             -- UTC, ISO 8601 with milliseconds
    board INTEGER,                  -- NULL when listen ran without --board
    model TEXT NOT NULL,            -- the model's registry name
    model_path TEXT NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('NORMAL', 'ANOMALOUS')),
    clip TEXT NOT NULL,             -- the judged audio, relative to the log's folder
    latency_ms REAL,                -- end of the crop window to the printed verdict
    device TEXT
);
CREATE INDEX IF NOT EXISTS inspections_time ON inspections (time);
CREATE INDEX IF NOT EXISTS inspections_board ON inspections (board, time);
CREATE TABLE IF NOT EXISTS boards (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,             -- UTC, ISO 8601: the board's last tap
    board INTEGER,                  -- listen's --board, NULL without it
    number INTEGER NOT NULL,        -- the board counter of the listen session: 1, 2, ...
    first_inspection INTEGER NOT NULL REFERENCES inspections (id),
    last_inspection INTEGER NOT NULL REFERENCES inspections (id),
    taps INTEGER NOT NULL,
    median REAL NOT NULL,           -- of the taps' scores
    threshold REAL NOT NULL,        -- the model's board threshold
    board_taps INTEGER NOT NULL,    -- taps that threshold is calibrated for
    verdict TEXT NOT NULL CHECK (verdict IN ('NORMAL', 'ANOMALOUS'))
);
CREATE TABLE IF NOT EXISTS tap_warnings (
    id INTEGER PRIMARY KEY,
    inspection INTEGER NOT NULL REFERENCES inspections (id),
    warning TEXT NOT NULL           -- as said beside the verdict
);
CREATE INDEX IF NOT EXISTS tap_warnings_inspection ON tap_warnings (inspection, id);
"""


@dataclass(frozen=True)
class Inspection:
    """One row of the log."""

    id: int
    time: str
    board: int | None
    model: str
    model_path: str
    score: float
    threshold: float
    verdict: str
    clip: str
    latency_ms: float | None
    device: str | None
    #: what was said beside the verdict (clipped, two strikes, a louder room): may be off
    warnings: tuple[str, ...] = ()
    #: the operator's mark at the station ("false alarm", "confirmed defect"), and when (UTC)
    mark: str | None = None
    marked_at: str | None = None

    def to_dict(self) -> dict:
        return {**asdict(self), "warnings": list(self.warnings)}

    @property
    def local_time(self) -> str:
        """The time in the machine's time zone, to the second, with the zone's name."""
        return local_time(self.time)


def _warn_of_time_zone() -> None:
    """A warning, once a run, when ``$TZ`` names no zone (:func:`unknown_time_zone`): the log
    shows its times, and names its clips, in local time."""
    global _TIME_ZONE_TOLD
    problem = unknown_time_zone()
    if problem and not _TIME_ZONE_TOLD:
        import warnings

        from .errors import TapcheckWarning

        _TIME_ZONE_TOLD = True
        warnings.warn(problem, TapcheckWarning, stacklevel=3)


_TIME_ZONE_TOLD = False


@dataclass(frozen=True)
class BoardInspection:
    """One row of the log's ``boards`` table: a board verdict of ``listen --taps-per-board``."""

    id: int
    time: str
    board: int | None
    number: int
    first_inspection: int
    last_inspection: int
    taps: int
    median: float
    threshold: float
    board_taps: int
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def local_time(self) -> str:
        return local_time(self.time)


def check_log_folder(root: str | os.PathLike | None = None) -> Path:
    """Before any work (``listen`` and ``station`` check it before the microphone opens): the
    folder a log may be written in, default :func:`inspections_home`. A file there is refused,
    and so are a dataset's folder, a folder inside one and the recordings folder: the log's
    clips and explanation pictures would lie among the takes, as ``judge --explain-dir``'s
    pictures once did.

    Raises
    ------
    StorageError
    """
    root = check_folder(Path(root) if root is not None else inspections_home(),
                        "the inspection log and its clips", "TAPCHECK_INSPECTIONS")
    # the default ./inspections is inside a dataset when tapcheck runs from one: "e.g.
    # inspections" named the folder just refused
    fix = ("set $TAPCHECK_INSPECTIONS to a folder of its own, e.g. inspections"
           if os.environ.get("TAPCHECK_INSPECTIONS") else
           "run tapcheck from outside the dataset's folder, or set $TAPCHECK_INSPECTIONS to a "
           "folder of its own")
    refuse_dataset_folder(
        root, why="the inspection log's clips and pictures would mix with its takes",
        home_why="the log's folders would read as datasets there", fix=fix)
    # a new folder in the recordings folder is no dataset (it holds no manifest.csv), and
    # /data/inspections beside datasets in /data is a layout of its own: both are kept
    from .paths import models_home

    if root.resolve() == models_home().resolve():  # the log and its clips among model files (QA)
        raise StorageError("is the models folder; the inspection log and its clips would mix "
                           "with the model files", path=root,
                           fix="set $TAPCHECK_INSPECTIONS (or $TAPCHECK_MODELS) to a folder "
                               "of its own, e.g. inspections")
    return root


class InspectionLog:
    """The SQLite log of one folder.

    Parameters
    ----------
    root : str or Path, optional
        The folder; default :func:`inspections_home`.
    create : bool
        Create the folder and database if missing (``listen``); otherwise a missing log reads as
        empty (``log``).
    """

    def __init__(self, root: str | os.PathLike | None = None, *, create: bool = False):
        _warn_of_time_zone()
        self.root = check_folder(Path(root) if root is not None else inspections_home(),
                                 "the inspection log and its clips", "TAPCHECK_INSPECTIONS")
        self.path = self.root / LOG_FILE
        self._db: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None  # the writer's file, as it was opened
        self._lock = contextlib.ExitStack()
        self.writer = create
        if create:
            check_log_folder(self.root)
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise storage_error(e, self.root) from None
            # one writer per log (a second listen is told who); readers never take it
            self._lock.enter_context(exclusive(lock_path(self.path), what=self.path,
                                               error=InspectionLogError, remove=True))
        try:
            if create:
                # a clips folder linked out of the log's folder: refused now, not after the
                # first tap was shown and could not be saved (QA)
                refuse_outside(self.root / "clips" / "any", self.root, InspectionLogError,
                               what="the taps' clips")
                self._db = self._connect()
            elif self.path.exists():
                self._db = connect_reader(self.path)
        except BaseException:
            self._lock.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        """The writer's connection: the schema checked first, created only in a new log."""
        refuse_special(self.path, InspectionLogError, fix=f"move it aside; {NEW_LOG}")
        try:
            # made here, 0666 less the umask as any file: SQLite makes a log 0644 whatever the
            # umask, and its -wal and -shm files as the log, so in a team's folder (umask 002)
            # no other operator's listen could write to it (QA). An empty file is a new log
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o666))
        except OSError as e:
            raise storage_error(e, self.path) from None
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=2.0)
            check_schema(db, self.path)  # before anything is written: another schema is refused
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the listener
            db.execute("PRAGMA synchronous=FULL")  # a committed row survives a power cut
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as e:
            raise log_error(e, self.path) from None
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        return db

    def _check_still_there(self) -> None:
        """Refuse to write when the log file was deleted or replaced since it was opened:
        SQLite wrote on into the deleted file, and a listen whose inspections folder was
        removed mid-shift logged its later taps nowhere, their clips in a new folder with no
        rows, and `log` found none of them (QA)."""
        try:
            st = os.stat(self.path)
            now = (st.st_dev, st.st_ino)
        except OSError:
            now = None
        if now != self._inode:
            raise InspectionLogError(
                # "deleted" of a folder renamed mid-shift, "lost with it" of a log intact
                # under its new name (QA): the path alone cannot tell which it was
                f"was {'moved or deleted' if now is None else 'replaced'} while this session "
                "wrote to it, so the taps judged from now on could not be logged", path=self.path,
                fix="keep the inspections folder where it is while a session runs, and start it "
                    "again (a moved log keeps what was logged where it went; a deleted one lost "
                    "it)")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._lock.close()

    def __enter__(self) -> "InspectionLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def clip_path(self, when: datetime, board: int | None) -> Path:
        """A new, unused clip path for a tap at ``when``, relative to the log folder."""
        local = when.astimezone()
        stem = local.strftime("%H%M%S.") + f"{local.microsecond // 1000:03d}"
        stem += "" if board is None else f"-board{board:02d}"
        rel = Path("clips") / local.strftime("%Y-%m-%d") / f"{stem}.wav"
        n = 1
        while (self.root / rel).exists():  # two taps within a millisecond: never overwrite
            n += 1
            rel = rel.with_name(f"{stem}-{n}.wav")
        return rel

    def append(self, clip: np.ndarray, *, sr: int, when: datetime, board: int | None, model: str,
               model_path: str, score: float, threshold: float, verdict: str,
               latency_ms: float | None = None, device: str | None = None,
               warnings: Sequence[str] = ()) -> Inspection:
        """Save a judged clip (atomically, float WAV) and then its row and ``warnings`` (one
        transaction)."""
        if not self.writer:
            raise InspectionLogError("was opened for reading", path=self.path,
                                     fix="open it with create=True to append")
        if self._db is None:
            self._db = self._connect()
        self._check_still_there()  # before the clip: no clip in a new folder without its row
        rel = self.clip_path(when, board)
        refuse_outside(self.root / rel, self.root, InspectionLogError, what="the taps' clips")
        write_wav(self.root / rel, clip, sr=sr, subtype="FLOAT")
        # SQLite's text is UTF-8: a model file's name that is not (surrogate escapes) raised
        # an encoding error after the clip was written, leaving it without its row (QA)
        row = dict(time=when.astimezone(timezone.utc).isoformat(timespec="milliseconds"),
                   board=board, model=utf8_text(model), model_path=utf8_text(model_path),
                   score=float(score), threshold=float(threshold), verdict=verdict,
                   clip=rel.as_posix(), latency_ms=None if latency_ms is None
                   else float(latency_ms), device=None if device is None else utf8_text(device))
        said = tuple(utf8_text(str(w)) for w in warnings)
        try:
            with self._transaction():
                cursor = self._db.execute(
                    f"INSERT INTO inspections ({', '.join(row)}) VALUES "
                    f"({', '.join('?' * len(row))})", list(row.values()))
                self._db.executemany(
                    "INSERT INTO tap_warnings (inspection, warning) VALUES (?, ?)",
                    [(cursor.lastrowid, w) for w in said])
        except sqlite3.DatabaseError as e:  # a full disk, a log locked by another program
            # no clip without its row: it stayed, named by nothing (QA); a disk that fails
            # that too must not hide the log's error
            with contextlib.suppress(OSError):
                (self.root / rel).unlink(missing_ok=True)
            raise log_error(e, self.path) from None
        return Inspection(id=cursor.lastrowid, **row, warnings=said)

    @contextlib.contextmanager
    def _transaction(self):
        """One transaction on the writer's autocommit connection: all of it, or none. The
        error that ended it is the one raised: SQLite rolls a transaction back itself on a full
        disk, and a ROLLBACK then said "no transaction is active" in place of the disk's error
        (review)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    def append_board(self, verdict, *, when: datetime, board: int | None, number: int,
                     first: int, last: int) -> BoardInspection:
        """Log a board verdict (:class:`tapcheck.boards.BoardVerdict`) of the taps whose rows
        are ``first`` to ``last``; ``number`` is the board counter, ``when`` the last tap's time."""
        if not self.writer:
            raise InspectionLogError("was opened for reading", path=self.path,
                                     fix="open it with create=True to append")
        if self._db is None:
            self._db = self._connect()
        self._check_still_there()
        row = dict(time=when.astimezone(timezone.utc).isoformat(timespec="milliseconds"),
                   board=board, number=int(number), first_inspection=int(first),
                   last_inspection=int(last), taps=int(verdict.taps),
                   median=float(verdict.median), threshold=float(verdict.threshold),
                   board_taps=int(verdict.expected_taps), verdict=verdict.verdict)
        try:
            cursor = self._db.execute(
                f"INSERT INTO boards ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()))
        except sqlite3.DatabaseError as e:
            raise log_error(e, self.path) from None
        return BoardInspection(id=cursor.lastrowid, **row)

    def query_boards(self, *, since: datetime | None = None, board: int | None = None
                     ) -> list[BoardInspection]:
        """Board verdicts in time order, as :meth:`query` selects taps; none in a log older
        than the ``boards`` table."""
        if self._db is None:
            return []
        try:
            if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                    "name = 'boards'").fetchone():
                return []
            where, args = _where(since, board)
            rows = self._db.execute("SELECT * FROM boards" + where + " ORDER BY time, id",
                                    args).fetchall()
        except sqlite3.DatabaseError as e:
            raise log_error(e, self.path) from None
        return [checked_board_row(row, self.path) for row in rows]

    def clip_of(self, inspection: int) -> str | None:
        """The clip (relative to the folder) an inspection logged; None when there is no such
        row."""
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT clip FROM inspections WHERE id = ?",
                                   (int(inspection),)).fetchone()
        except OverflowError:  # past SQLite's integers: no such row
            return None
        except sqlite3.DatabaseError as e:
            raise log_error(e, self.path) from None
        return None if row is None else str(row[0])

    def tap_rows(self, verdict: BoardInspection) -> int:
        """How many of a board verdict's tap rows the log holds: fewer when rows were deleted
        since. Its ids, board and time all: SQLite gives a deleted last row's id to the next
        row, which is another tap."""
        if self._db is None:
            return 0
        try:
            return self._db.execute(
                "SELECT COUNT(*) FROM inspections WHERE id BETWEEN ? AND ? AND board IS ? AND "
                "time <= ?", (int(verdict.first_inspection), int(verdict.last_inspection),
                              verdict.board, verdict.time)).fetchone()[0]
        except OverflowError:  # past SQLite's integers: no such rows
            return 0
        except sqlite3.DatabaseError as e:
            raise log_error(e, self.path) from None

    def query(self, *, since: datetime | None = None, board: int | None = None
              ) -> list[Inspection]:
        """Rows in time order, optionally from ``since`` on and of one board."""
        if self._db is None:
            return []
        where, args = _where(since, board)
        sql = "SELECT * FROM inspections" + where
        try:
            rows = self._db.execute(sql + " ORDER BY time, id", args).fetchall()
            said = tap_warnings(self._db, "SELECT id FROM inspections" + where, args, self.path)
            # the station's marks: `log` gave none, the page all (QA)
            marked = tap_marks(self._db, "SELECT id FROM inspections" + where, args, self.path)
        except sqlite3.DatabaseError as e:
            raise log_error(e, self.path) from None
        rows = [checked_row(row, self.path) for row in rows]
        return [dataclasses.replace(r, warnings=tuple(said.get(r.id, ())),
                                    mark=marked.get(r.id, (None, None))[0],
                                    marked_at=marked.get(r.id, (None, None))[1]) for r in rows]


def _where(since: datetime | None, board: int | None) -> tuple[str, list]:
    where, args = [], []
    if since is not None:
        where.append("time >= ?")
        args.append(since.astimezone(timezone.utc).isoformat(timespec="milliseconds"))
    if board is not None:
        where.append("board = ?")
        args.append(board)
    return (" WHERE " + " AND ".join(where) if where else ""), args
