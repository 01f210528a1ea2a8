"""Operator marks beside the inspection log: filters, append-only marks, export, safe clip paths."""

import sqlite3
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from tapcheck.errors import InspectionLogError, ParameterError
from tapcheck.inspections import InspectionLog
from tapcheck.marks import Filter, MarkBook


@pytest.fixture
def book(tmp_path):
    """A real log with three judgments: board 3 on 1 and 2 May, board 4 on 2 May."""
    clip = np.zeros(4410, np.float32)
    with InspectionLog(tmp_path, create=True) as log:
        for day, board, verdict in ((1, 3, "NORMAL"), (2, 3, "ANOMALOUS"), (2, 4, "NORMAL")):
            log.append(clip, sr=44100, when=datetime(2025, 5, day, 10, 0).astimezone(),
                       board=board, model="m", model_path="m.pt", score=0.1, threshold=0.2,
                       verdict=verdict)
    b = MarkBook(tmp_path)
    yield b
    b.close()


def test_filters(book):
    assert [r["id"] for r in book.rows()] == [3, 2, 1]  # newest first
    assert [r["id"] for r in book.rows(Filter(board=3))] == [2, 1]
    assert [r["id"] for r in book.rows(Filter(verdict="ANOMALOUS"))] == [2]
    assert [r["id"] for r in book.rows(Filter(since="2025-05-02"))] == [3, 2]
    assert [r["id"] for r in book.rows(Filter(until="2025-05-01"))] == [1]
    assert [r["id"] for r in book.rows(Filter(since="2025-05-02", board=4))] == [3]
    with pytest.raises(ParameterError, match="is not a date"):
        book.rows(Filter(since="May 2"))
    # a reversed range read as "no inspections then" (QA)
    with pytest.raises(ParameterError, match="since 2025-05-02 is after until 2025-05-01"):
        book.rows(Filter(since="2025-05-02", until="2025-05-01"))
    with pytest.raises(ParameterError, match="until 'May 1' is not a date"):
        book.rows(Filter(since="2025-05-02", until="May 1"))
    # as days, not strings: "2025-5-2" sorts after "2025-05-10" (review)
    assert [r["id"] for r in book.rows(Filter(since="2025-5-2", until="2025-05-10"))] == [3, 2]
    with pytest.raises(ParameterError, match="is after until"):
        book.rows(Filter(since="2025-5-2", until="2025-5-1"))


@pytest.mark.parametrize("tz", ["UTC", "Asia/Tokyo", "America/New_York"])
def test_dates_at_the_calendars_ends_are_no_error(book, tz, monkeypatch):
    # until 9999-12-31 ended in year 10000 (OverflowError, an HTTP 500); since 0001-01-01 began
    # in year 0 east of Greenwich ("year 0 is out of range", a 400 with no way out)
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        everything = [r["id"] for r in book.rows()]
        assert [r["id"] for r in book.rows(Filter(until="9999-12-31"))] == everything
        assert [r["id"] for r in book.rows(Filter(since="0001-01-01"))] == everything
        assert book.rows(Filter(since="9999-12-31")) == []
        assert book.rows(Filter(until="0001-01-01")) == []
        assert book.export_csv(Filter(since="0001-01-01", until="9999-12-31")).startswith("clip,")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_marks_are_appended_and_the_judgment_never_changes(book, tmp_path):
    assert book.mark(2, "false alarm")["mark"] == "false alarm"
    assert book.mark(2, "confirmed defect")["mark"] == "confirmed defect"
    assert book.mark(1, "false alarm")["mark"] == "false alarm"
    assert book.mark(1, "cleared")["mark"] is None
    with pytest.raises(ParameterError, match="unknown mark"):
        book.mark(2, "fine")
    with pytest.raises(ParameterError, match="no inspection with id 9"):
        book.mark(9, "false alarm")
    db = sqlite3.connect(tmp_path / "inspections.sqlite")
    assert db.execute("SELECT inspection, mark FROM marks ORDER BY id").fetchall() == [
        (2, "false alarm"), (2, "confirmed defect"), (1, "false alarm"), (1, "cleared")]
    assert db.execute("SELECT verdict FROM inspections WHERE id = 2").fetchone() == (
        "ANOMALOUS",)
    lines = book.export_csv().splitlines()
    assert len(lines) == 2 and lines[1].startswith(str(tmp_path / "clips" / "2025-05-02"))
    assert ",ANOMALOUS,0.1,0.2,m,confirmed defect," in lines[1]


def test_clips_only_from_inside_the_folder(book, tmp_path):
    assert book.clip_file(1).is_file() and book.clip_file(1).is_relative_to(tmp_path)
    (tmp_path.parent / "secret.wav").write_bytes(b"x")
    book.db.execute("UPDATE inspections SET clip = '../secret.wav' WHERE id = 2")
    book.db.execute("UPDATE inspections SET clip = '/etc/passwd' WHERE id = 3")
    assert book.clip_file(2) is None and book.clip_file(3) is None and book.clip_file(7) is None


def test_a_row_tapcheck_log_refuses_is_refused_here_too(book, tmp_path):
    """The station served a row with score 'abc' as it was (the log page's toFixed on it blanked
    the page) where `tapcheck log` names the row; now the log's readers check rows alike."""
    book.mark(1, "false alarm")
    book.db.execute("UPDATE inspections SET score = 'abc' WHERE id = 2")
    message = (f"{tmp_path / 'inspections.sqlite'}: inspections row 2: score 'abc' is not a "
               "finite number")
    with pytest.raises(InspectionLogError, match=message):
        book.rows()
    with pytest.raises(InspectionLogError, match=message):
        book.export_csv()
    assert [r["id"] for r in book.rows(ids=[1, 3])] == [3, 1]  # the good rows still read


def test_export_lists_absolute_clips_from_inside_the_folder_only(book, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)
    relative = MarkBook(tmp_path.name)  # the station's default log is a relative folder
    for inspection in (1, 2, 3):
        relative.mark(inspection, "confirmed defect")
    (tmp_path.parent / "secret.wav").write_bytes(b"x")
    book.db.execute("UPDATE inspections SET clip = '../secret.wav' WHERE id = 2")
    book.db.execute("UPDATE inspections SET clip = '../../../etc/passwd' WHERE id = 3")
    skipped = []
    lines = relative.export_csv(skipped=skipped).splitlines()
    clip = lines[1].split(",")[0]
    assert len(lines) == 2 and clip == relative.clip_file(1).as_posix()
    relative.close()
    assert Path(clip).is_absolute() and Path(clip).is_file()
    assert Path(clip).is_relative_to(tmp_path.resolve())
    assert skipped == [2, 3] and "passwd" not in "".join(lines)


def test_log_of_another_schema_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "inspections.sqlite")
    db.execute("CREATE TABLE inspections (id INTEGER PRIMARY KEY, time TEXT, result TEXT)")
    db.commit()
    with pytest.raises(InspectionLogError, match="another schema .no column board"):
        MarkBook(tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "inspections.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(InspectionLogError, match="is not a usable inspection log"):
        MarkBook(tmp_path / "junk")


@pytest.mark.parametrize("marks", [
    "CREATE TABLE marks (id INTEGER PRIMARY KEY, inspection INTEGER, mark TEXT)",
    "CREATE TABLE marks (id INTEGER PRIMARY KEY, inspection INTEGER, mark TEXT, time TEXT, "
    "who TEXT NOT NULL)"])
def test_a_marks_table_of_another_layout_is_refused_at_start(tmp_path, marks):
    """The station started on it, then every mark and the log page failed with a 500."""
    from tapcheck.inspections import InspectionLog

    with InspectionLog(tmp_path, create=True):
        pass
    db = sqlite3.connect(tmp_path / "inspections.sqlite")
    db.execute(marks)
    db.commit()
    db.close()
    with pytest.raises(InspectionLogError) as e:
        MarkBook(tmp_path)
    assert str(e.value).startswith(f"{tmp_path / 'inspections.sqlite'}: has a marks table of "
                                   "another schema (columns id, inspection, mark")
    assert str(e.value).endswith("— move it aside, or point $TAPCHECK_INSPECTIONS at another "
                                 "folder")


def test_a_long_bad_date_is_not_echoed_whole():
    """A 60 kB since= value came back whole in the station's 400."""
    from tapcheck.errors import ParameterError
    from tapcheck.marks import _utc_bound

    with pytest.raises(ParameterError) as e:
        _utc_bound("x" * 60_000, "since")
    assert str(e.value) == "since 'xxxxxxxxxxxxxxxxxxxx...' is not a date — use YYYY-MM-DD"
