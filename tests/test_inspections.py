"""The inspection log: real SQLite, real clips, `tapcheck log`."""

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tapcheck.errors import InspectionLogError
from tapcheck.inspections import InspectionLog, inspections_home

T0 = datetime(2025, 5, 1, 6, 0, 0, 250000, tzinfo=timezone.utc)


def _fill(log):
    clip = np.linspace(-0.5, 0.5, 4410, dtype=np.float32)
    rows = []
    for i, (board, verdict, score) in enumerate([(3, "NORMAL", 0.01), (3, "ANOMALOUS", 0.31),
                                                (4, "NORMAL", 0.02), (None, "NORMAL", 0.03)]):
        rows.append(log.append(clip * (i + 1) / 4, sr=44100, when=T0 + timedelta(hours=i),
                               board=board, model="arcface-resnet18", model_path="m.pt",
                               score=score, threshold=0.07, verdict=verdict, latency_ms=40.0 + i,
                               device="pulse"))
    return clip, rows


def test_append_writes_the_clip_then_the_row(tmp_path):
    with InspectionLog(tmp_path / "log", create=True) as log:
        clip, rows = _fill(log)
    assert [r.id for r in rows] == [1, 2, 3, 4]
    assert rows[0].time == "2025-05-01T06:00:00.250+00:00"
    local = T0.astimezone()
    assert rows[0].clip == (f"clips/{local:%Y-%m-%d}/{local:%H%M%S}.250-board03.wav")
    assert not rows[3].clip.endswith("board.wav") and "board" not in rows[3].clip
    # the clip is exactly what was judged: 32-bit float, the same samples
    y, sr = sf.read(tmp_path / "log" / rows[1].clip, dtype="float32")
    assert sr == 44100 and sf.info(tmp_path / "log" / rows[1].clip).subtype == "FLOAT"
    np.testing.assert_array_equal(y, clip * 2 / 4)
    # readable by plain SQLite, as an auditor would
    db = sqlite3.connect(tmp_path / "log" / "inspections.sqlite")
    assert db.execute("SELECT board, verdict, score, threshold, model, clip FROM inspections "
                      "WHERE id = 2").fetchone() == (3, "ANOMALOUS", 0.31, 0.07,
                                                     "arcface-resnet18", rows[1].clip)


def test_query_since_and_board(tmp_path):
    with InspectionLog(tmp_path, create=True) as log:
        _fill(log)
    log = InspectionLog(tmp_path)
    assert len(log.query()) == 4
    assert [r.score for r in log.query(board=3)] == [0.01, 0.31]
    assert [r.score for r in log.query(since=T0 + timedelta(minutes=90))] == [0.02, 0.03]
    assert [r.score for r in log.query(since=T0 + timedelta(hours=1), board=3)] == [0.31]


def test_two_taps_in_the_same_millisecond_never_share_a_clip(tmp_path):
    with InspectionLog(tmp_path, create=True) as log:
        a = log.append(np.zeros(10, np.float32), sr=44100, when=T0, board=1, model="m",
                       model_path="m.pt", score=0, threshold=1, verdict="NORMAL")
        b = log.append(np.ones(10, np.float32) / 2, sr=44100, when=T0, board=1, model="m",
                       model_path="m.pt", score=0, threshold=1, verdict="NORMAL")
    assert a.clip != b.clip and b.clip.endswith("-board01-2.wav")
    assert sf.read(tmp_path / a.clip)[0].max() == 0.0


@pytest.mark.parametrize("link", ["clips", "day"])
def test_a_clip_folder_linked_out_of_the_log_folder_is_not_written_through(tmp_path, link):
    """A link planted for clips/ (or today's folder in it) had the station write its taps
    outside the inspection folder, where it could no longer serve them."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "log"
    day = T0.astimezone().strftime("%Y-%m-%d")
    with InspectionLog(root, create=True) as log:
        planted = root / "clips" if link == "clips" else root / "clips" / day
        planted.parent.mkdir(parents=True, exist_ok=True)
        planted.symlink_to(outside)
        with pytest.raises(InspectionLogError) as e:
            log.append(np.zeros(10, np.float32), sr=44100, when=T0, board=1, model="m",
                       model_path="m.pt", score=0, threshold=1, verdict="NORMAL")
        assert str(e.value) == (f"{planted}: is a link to {outside}, outside {root}; the taps' "
                                "clips are kept inside it — remove the link (tapcheck makes "
                                "the folder)")
        assert log.query() == []
    assert list(outside.iterdir()) == []
    if link == "clips":  # planted before listen starts: refused then, before any tap (QA)
        with pytest.raises(InspectionLogError, match="is a link to .*, outside"):
            InspectionLog(root, create=True)
        with InspectionLog(root) as log:  # and the writer's lock was let go
            assert log.query() == []
        (root / "clips").unlink()
        InspectionLog(root, create=True).close()


def test_a_clip_is_not_left_without_its_row(tmp_path):
    """A row that could not be written (a full disk: here, a log another program holds
    locked) left its clip on disk, named by no row (QA)."""
    import sqlite3

    root = tmp_path / "log"
    with InspectionLog(root, create=True) as log:
        other = sqlite3.connect(root / "inspections.sqlite", timeout=0)
        other.execute("BEGIN EXCLUSIVE")
        log._db.execute("PRAGMA busy_timeout = 0")
        with pytest.raises(InspectionLogError):
            log.append(np.zeros(10, np.float32), sr=44100, when=T0, board=1, model="m",
                       model_path="m.pt", score=0, threshold=1, verdict="NORMAL")
        other.rollback()
        other.close()
        assert list((root / "clips").rglob("*.wav")) == []
        log.append(np.zeros(10, np.float32), sr=44100, when=T0, board=1, model="m",
                   model_path="m.pt", score=0, threshold=1, verdict="NORMAL")
        assert len(list((root / "clips").rglob("*.wav"))) == 1 and len(log.query()) == 1


def test_a_full_disk_mid_tap_says_so_and_the_next_tap_is_logged(tmp_path):
    """A tap's row and warnings are one transaction, which SQLite rolls back itself when the
    disk fills: the ROLLBACK after it said "no transaction is active", and the log was called
    unusable instead of full (review). Nothing of the tap stays; the next one is logged."""
    root = tmp_path / "log"
    tap = dict(sr=44100, when=T0, board=1, model="m", model_path="m.pt", score=0, threshold=1,
               verdict="NORMAL")
    with InspectionLog(root, create=True) as log:
        log.append(np.zeros(10, np.float32), **tap)
        pages = log._db.execute("PRAGMA page_count").fetchone()[0]
        log._db.execute(f"PRAGMA max_page_count = {pages}")  # a disk with no page left
        with pytest.raises(InspectionLogError) as e:
            log.append(np.zeros(10, np.float32), **tap, warnings=["x" * 20000] * 3)
        assert e.value.problem.startswith("cannot be written (database or disk is full)")
        assert e.value.fix == "the disk is full; free some space and try again"
        assert len(list((root / "clips").rglob("*.wav"))) == 1 and len(log.query()) == 1
        log._db.execute("PRAGMA max_page_count = 1073741823")  # space freed
        again = log.append(np.zeros(10, np.float32), **tap, warnings=["clipped"])
    assert [r.warnings for r in InspectionLog(root).query()] == [(), ("clipped",)]
    assert again.id == 2


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_log_removed_mid_session_stops_the_writer(tmp_path, how):
    """The inspections folder removed while listen ran: SQLite wrote on into the deleted file,
    the later taps' clips went into a new folder with no rows, and `log` found none (QA)."""
    import shutil

    root = tmp_path / "log"
    tap = dict(sr=44100, when=T0, board=1, model="m", model_path="m.pt", score=0, threshold=1,
               verdict="NORMAL")
    with InspectionLog(root, create=True) as log:
        log.append(np.zeros(10, np.float32), **tap)
        shutil.rmtree(root)
        if how == "replaced":  # another log in its place
            with InspectionLog(root, create=True):
                pass
        with pytest.raises(InspectionLogError) as e:
            log.append(np.zeros(10, np.float32), **tap)
        said = "moved or deleted" if how == "deleted" else how  # a path cannot tell which
        assert str(e.value) == (
            f"{root / 'inspections.sqlite'}: was {said} while this session wrote to it, so the "
            "taps judged from now on could not be logged — keep the inspections folder where it "
            "is while a session runs, and start it again (a moved log keeps what was logged "
            "where it went; a deleted one lost it)")
    assert not (root / "clips").exists()  # no clip without its row


def test_a_damaged_log_is_one_clear_error(tmp_path):
    (tmp_path / "inspections.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(InspectionLogError, match="is not a usable inspection log") as e:
        InspectionLog(tmp_path)
    assert str(tmp_path / "inspections.sqlite") in str(e.value) and "move it aside" in str(e.value)


def test_a_log_file_that_is_a_folder_is_named_so(tmp_path, run_cli, monkeypatch):
    """It read "is not a usable inspection log (disk I/O error)" (QA)."""
    (tmp_path / "inspections.sqlite").mkdir()
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(tmp_path))
    code, out, err = run_cli("log")
    assert code == 2 and err.startswith(
        f"tapcheck: error: {tmp_path / 'inspections.sqlite'}: is a folder, not the log file — "
        "move the folder aside"), err


def test_a_log_in_a_folder_whose_name_is_not_utf8_is_read_and_written(tmp_path, run_cli,
                                                                      monkeypatch):
    """A folder or model file named in bytes that are not UTF-8 (an old share): `log` raised
    UnicodeEncodeError quoting the folder as a URI, a traceback with exit 1, and a tap judged
    by such a model file lost its row after its clip was written (QA)."""
    folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/Pr\xfcfung"))
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(folder))
    model_path = os.fsdecode(b"models/Brett-\xe4.pt")
    with InspectionLog(create=True) as log:
        tap = log.append(np.zeros(441, np.float32), sr=44100, when=T0, board=3, model="m",
                         model_path=model_path, score=0.5, threshold=0.1,
                         verdict="ANOMALOUS", warnings=[f"{model_path}: odd"])
    assert tap.model_path == "models/Brett-\\xe4.pt" and tap.warnings == (
        "models/Brett-\\xe4.pt: odd",)
    code, out, err = run_cli("log", "--json")
    assert (code, err) == (0, ""), err
    row = json.loads(out)
    assert row["model_path"] == "models/Brett-\\xe4.pt" and row["verdict"] == "ANOMALOUS"
    assert row["clip"].encode("utf-8") and "Pr\\xfcfung" in row["clip"]
    # the table prints the folder's own bytes (which capsys cannot decode): a real process
    table = subprocess.run([sys.executable, "-m", "tapcheck", "log"], capture_output=True)
    assert table.returncode == 0 and b"/Pr\xfcfung/clips/" in table.stdout, table.stderr


@pytest.mark.parametrize("since", ["0001-01-01", "0001-01-01T00:00+09:00", "99999999999d"])
def test_since_before_the_calendar_is_from_the_start(run_cli, monkeypatch, since):
    """In a zone east of UTC, midnight of 0001-01-01 lies before year 1 in UTC: it raised
    ValueError ("year 0 is out of range") as a traceback, then was refused as "before year 1",
    while the station's since=0001-01-01 meant "from the start". Now the log says so too."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    with InspectionLog(create=True) as log:
        _, rows = _fill(log)
    code, out, err = run_cli("log", "--since", since)
    assert (code, err) == (0, "") and out.strip().splitlines()[-1] == "4 inspection(s), 1 anomalous"


@pytest.mark.parametrize("since", ["9999-12-31 23:00", "9999-12-31T23:00-05:00"])
def test_since_past_the_calendar_is_after_every_row(run_cli, monkeypatch, since):
    """The calendar's last hours west of UTC lie past year 9999 there: once "before year 1",
    then every row (the first fix caught both ends alike); nothing is after them."""
    monkeypatch.setenv("TZ", "America/New_York")
    with InspectionLog(create=True) as log:
        _fill(log)
    code, out, err = run_cli("log", "--since", since)
    assert (code, err) == (0, "") and "4 inspection(s)" not in out and "no inspections" in out


def test_log_command(run_cli):
    code, out, _ = run_cli("log")
    assert code == 0 and out.strip() == f"no inspections in {inspections_home()}/inspections.sqlite"
    with InspectionLog(create=True) as log:
        _, rows = _fill(log)
    code, out, _ = run_cli("log")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split() == ["time", "board", "verdict", "score", "threshold",
                                             "model", "clip"]
    assert len(lines) == 1 + 4 + 1 and lines[-1] == "4 inspection(s), 1 anomalous"
    first = lines[1].split()
    local = T0.astimezone()
    assert first[:8] == [f"{local:%Y-%m-%d}", f"{local:%H:%M:%S}", f"{local:%Z}", "3",
                         "NORMAL", "0.0100", "0.0700", "arcface-resnet18"]
    assert first[8] == str(inspections_home() / rows[0].clip)
    code, out, _ = run_cli("log", "--board", "3", "--since", "2025-05-01T06:30+00:00")
    assert [ln.split()[4] for ln in out.strip().splitlines()[1:-1]] == ["ANOMALOUS"]
    code, out, _ = run_cli("log", "--json", "--board", "4")
    row = json.loads(out)
    assert row["board"] == 4 and row["score"] == 0.02 and row["latency_ms"] == 42.0
    # the clip as the table gives it, not relative to the log's folder: it opens from here
    assert Path(row["clip"]) == inspections_home() / rows[2].clip and Path(row["clip"]).exists()
    code, out, _ = run_cli("log", "--board", "7")
    assert "no inspections" in out and "for that selection" in out
    code, _, err = run_cli("log", "--since", "soon")
    assert code == 2 and err.startswith("tapcheck: error: --since 'soon' is not a time")


def test_a_taps_warnings_are_logged_with_it(tmp_path, run_cli):
    """A clipped or doubled tap's warnings ("the verdict may be off") were said at the terminal
    and on the live page only: `log`, its --json and the log page gave the verdict as sound
    (QA). They are rows of their own, written in the tap's transaction; a log written before
    them reads as having none."""
    said = ("tap at 11:50:28: clipped for 1.9 ms (82 samples at full scale); the verdict may "
            "be off", "tap at 11:50:28: 2 strikes in the clip; the loudest was judged")
    with InspectionLog(create=True) as log:
        _fill(log)
        warned = log.append(np.zeros(4410, np.float32), sr=44100, when=T0 + timedelta(hours=5),
                            board=9, model="arcface-lite", model_path="m.pt", score=0.001,
                            threshold=0.07, verdict="NORMAL", warnings=said)
    assert warned.warnings == said and InspectionLog().query()[-1] == warned
    assert [r.warnings for r in InspectionLog().query()[:4]] == [()] * 4
    code, out, _ = run_cli("log")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split()[:5] == ["time", "board", "verdict", "!", "score"]
    assert lines[5].split()[4:6] == ["NORMAL", "*"] and lines[1].split()[4:6] == ["NORMAL",
                                                                                 "0.0100"]
    local = (T0 + timedelta(hours=5)).astimezone()
    assert lines[6:] == [
        "5 inspection(s), 1 anomalous, 1 with a warning (*): their verdict may be off",
        *(f"* {local:%Y-%m-%d %H:%M:%S %Z}  board 9: {w}" for w in said)]
    code, out, _ = run_cli("log", "--json", "--board", "9")
    assert code == 0 and json.loads(out)["warnings"] == list(said)
    code, out, _ = run_cli("log", "--json", "--board", "3")
    assert [json.loads(ln)["warnings"] for ln in out.splitlines()] == [[], []]
    # a log of before the table: read, its taps with no warnings; the next listen adds it
    db = sqlite3.connect(inspections_home() / "inspections.sqlite")
    db.execute("DROP TABLE tap_warnings")
    db.commit()
    db.close()
    assert [r.warnings for r in InspectionLog().query()] == [()] * 5
    code, out, _ = run_cli("log")
    assert code == 0 and "*" not in out and out.strip().splitlines()[-1].endswith("1 anomalous")
    with InspectionLog(create=True) as log:
        log.append(np.zeros(4410, np.float32), sr=44100, when=T0 + timedelta(hours=6), board=9,
                   model="arcface-lite", model_path="m.pt", score=0.5, threshold=0.07,
                   verdict="ANOMALOUS", warnings=said[:1])
    assert [r.warnings for r in InspectionLog().query(board=9)] == [(), said[:1]]
    # a row no tapcheck wrote (anything can write an SQLite file): one line naming it
    db = sqlite3.connect(inspections_home() / "inspections.sqlite")
    db.execute("INSERT INTO tap_warnings (inspection, warning) VALUES (1, x'00ff')")
    db.commit()
    db.close()
    code, _, err = run_cli("log")
    assert code == 2 and err.startswith("tapcheck: error: ") and "tap_warnings row 2: " in err
    assert len(err.splitlines()) == 1


def test_log_lists_the_newest_taps_warnings(run_cli):
    """Past 20 warned taps the newest are listed (the oldest were; review), the rest counted."""
    from tapcheck.log_report import WARNED_SHOWN

    with InspectionLog(create=True) as log:
        for i in range(WARNED_SHOWN + 2):
            log.append(np.zeros(441, np.float32), sr=44100, when=T0 + timedelta(minutes=i),
                       board=1, model="m", model_path="m.pt", score=0.01, threshold=0.07,
                       verdict="NORMAL", warnings=[f"warning {i}"])
    code, out, _ = run_cli("log")
    listed = [ln for ln in out.splitlines() if ln.startswith("* ")]
    assert code == 0 and listed[0] == ("* … 2 earlier tap(s) with warnings (tapcheck log --json "
                                       "gives each tap's)")
    assert [ln.rsplit(": ", 1)[1] for ln in listed[1:]] == [
        f"warning {i}" for i in range(2, WARNED_SHOWN + 2)]


def test_board_verdicts_are_logged_beside_the_taps(tmp_path, run_cli, monkeypatch):
    """`listen --taps-per-board` writes a `boards` row per board; `log` shows them after the taps,
    and a log from before the `boards` table still reads (and gets the table when written)."""
    from tapcheck.boards import board_verdicts

    old = tmp_path / "old"
    with InspectionLog(old, create=True) as log:
        _fill(log)
    db = sqlite3.connect(old / "inspections.sqlite")  # the log as tapcheck wrote it before
    db.execute("DROP TABLE boards")
    db.commit()
    db.close()
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(old))
    with InspectionLog(old) as log:
        assert len(log.query()) == 4 and log.query_boards() == []
    code, out, _ = run_cli("log")
    assert code == 0 and out.strip().splitlines()[-1] == "4 inspection(s), 1 anomalous"
    code, out, _ = run_cli("log", "--json")
    assert code == 0 and len(out.splitlines()) == 4

    db = sqlite3.connect(old / "inspections.sqlite")  # taps 1-3 of one board, as listen logs
    db.execute("UPDATE inspections SET board = 3 WHERE id = 3")
    db.commit()
    db.close()
    with InspectionLog(old, create=True) as log:  # listen opens it: the table is added
        rows = log.query()
        bv, = board_verdicts(["a", "b", "c"], [r.score for r in rows[:3]], threshold=0.015,
                             expected_taps=3, board="#1")
        assert (bv.verdict, bv.median) == ("ANOMALOUS", 0.02)  # median of 0.01, 0.31, 0.02
        logged = log.append_board(bv, when=T0 + timedelta(hours=2), board=3, number=1,
                                  first=rows[0].id, last=rows[2].id)
    assert (logged.id, logged.number, logged.first_inspection, logged.last_inspection) == (
        1, 1, 1, 3)
    with InspectionLog(old) as log:
        got, = log.query_boards()
        assert got == logged
        assert log.query_boards(board=4) == []
        assert log.query_boards(since=T0 + timedelta(hours=3)) == []
    code, out, _ = run_cli("log")
    lines = out.strip().splitlines()
    assert lines[-1] == "1 board verdict(s), 1 anomalous"
    assert lines[-3].split() == ["time", "board", "#", "verdict", "median", "threshold",
                                 "taps", "tap", "ids"]
    assert lines[-2].split()[3:] == ["3", "1", "ANOMALOUS", "0.0200", "0.0150", "3", "(for",
                                     "3)", "1-3"]
    code, out, _ = run_cli("log", "--json")
    assert json.loads(out.splitlines()[-1]) == {"board_verdict": {**logged.to_dict(),
                                                                  "tap_rows": 3}}

    db = sqlite3.connect(old / "inspections.sqlite")  # one of its taps' rows deleted
    db.execute("DELETE FROM inspections WHERE id = 3")
    db.commit()
    db.close()
    code, out, _ = run_cli("log")
    # it says so: the ids read as if they could be looked up (QA)
    assert out.strip().splitlines()[-2].endswith("1-3 (1 of 3 rows gone)"), out
    code, out, _ = run_cli("log", "--json")
    assert json.loads(out.splitlines()[-1])["board_verdict"]["tap_rows"] == 2
    db = sqlite3.connect(old / "inspections.sqlite")  # all of them, as a fix says
    db.execute("DELETE FROM inspections WHERE board = 3")
    db.commit()
    db.close()
    code, out, _ = run_cli("log", "--board", "3")  # the board verdict was shown by --json only
    lines = out.strip().splitlines()
    assert code == 0 and "no inspections" in lines[0] and "for that selection" in lines[0]
    assert lines[-1] == "1 board verdict(s), 1 anomalous" and "ANOMALOUS" in lines[-2]
    assert lines[-2].endswith("1-3 (rows gone)"), lines[-2]
    # SQLite gives a deleted last row's id to the next row: other taps at ids 1-3 are not its
    db = sqlite3.connect(old / "inspections.sqlite")
    db.execute("DELETE FROM inspections")
    db.commit()
    db.close()
    with InspectionLog(old, create=True) as log:
        later = [log.append(np.zeros(441, np.float32), sr=44100, board=9, model="m",
                            when=T0 + timedelta(hours=5 + i), model_path="m.pt", score=0.01,
                            threshold=0.07, verdict="NORMAL") for i in range(3)]
        assert [r.id for r in later] == [1, 2, 3]
    code, out, _ = run_cli("log")
    assert out.strip().splitlines()[-2].endswith("1-3 (rows gone)"), out

    db = sqlite3.connect(old / "inspections.sqlite")  # a row edited by hand is refused
    db.execute("UPDATE boards SET median = 'x'")
    db.commit()
    db.close()
    code, _, err = run_cli("log")
    # the table named: "row 1" sent a user to row 1 of inspections, which was fine (QA)
    assert code == 2 and ": boards row 1: median 'x' is not a finite number — delete or fix " \
        "the row (sqlite3: DELETE FROM boards WHERE id = 1)" in err, err


@pytest.mark.parametrize("inside", ["", "board01", "board01/left/new"])
def test_no_log_is_kept_in_a_dataset(tmp_path, monkeypatch, run_cli, inside):
    """$TAPCHECK_INSPECTIONS naming a dataset's folder, a folder in it or the recordings folder
    put the log, its clips and the station's pictures among the takes. listen and station
    refuse it before the model loads (the model named here does not exist) and the microphone
    opens, doctor names it, and nothing is written into the dataset."""
    from tapcheck.datasets import Dataset
    from tapcheck.errors import StorageError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(tmp_path / "recordings"))
    ds = Dataset.create("d")
    ds.add_take(np.random.default_rng(0).normal(0, 0.1, 44100).astype(np.float32), sr=44100,
                board=1, side="left", label="normal", source="test")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    folder = f"recordings/d/{inside}".rstrip("/")
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", folder)
    problem = ("is a dataset folder (it holds manifest.csv)" if not inside else
               "is inside dataset recordings/d (its folder holds manifest.csv)")
    line = (f"{folder}: {problem}; the inspection log's clips and pictures would mix with its "
            "takes — set $TAPCHECK_INSPECTIONS to a folder of its own, e.g. inspections")
    for command in ("listen", "station"):
        assert run_cli(command, "--model", "nosuch.pt") == (2, "", f"tapcheck: error: {line}\n")
    with pytest.raises(StorageError, match="inside dataset|a dataset folder"):
        InspectionLog(create=True)
    code, out, _ = run_cli("doctor")
    assert code == 1 and f"PROBLEM  inspections folder {line}" in out
    assert "none yet" not in out  # not also "inspection log …: none yet (listen starts it)"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", "recordings")
    assert run_cli("listen", "--model", "nosuch.pt")[2] == (
        "tapcheck: error: recordings: is the recordings folder, which holds the datasets; the "
        "log's folders would read as datasets there — set $TAPCHECK_INSPECTIONS to a folder of "
        "its own, e.g. inspections\n")
    # the models folder: the log and its clips among the model files (QA)
    monkeypatch.setenv("TAPCHECK_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", "models")
    assert run_cli("station", "--model", "nosuch.pt")[2] == (
        "tapcheck: error: models: is the models folder; the inspection log and its clips would "
        "mix with the model files — set $TAPCHECK_INSPECTIONS (or $TAPCHECK_MODELS) to a folder "
        "of its own, e.g. inspections\n")
    # a folder of its own beside the datasets is kept (/data/inspections by /data/<dataset>)
    from tapcheck.inspections import check_log_folder

    assert str(check_log_folder("recordings/log")) == "recordings/log"
    # unset, the log is ./inspections: run from inside a dataset, "e.g. inspections" named
    # the folder just refused
    monkeypatch.delenv("TAPCHECK_INSPECTIONS")
    monkeypatch.chdir(tmp_path / "recordings" / "d")
    assert run_cli("station", "--model", "nosuch.pt")[2] == (
        f"tapcheck: error: inspections: is inside dataset {tmp_path / 'recordings' / 'd'} (its "
        "folder holds manifest.csv); the inspection log's clips and pictures would mix with its "
        "takes — run tapcheck from outside the dataset's folder, or set $TAPCHECK_INSPECTIONS "
        "to a folder of its own\n")


@pytest.mark.parametrize("zone, time", [
    ("America/Los_Angeles", "0001-01-01T00:00:00.000+00:00"),
    ("Pacific/Kiritimati", "9999-12-31T23:59:59.999+00:00")])
def test_a_time_at_the_calendars_edge_is_shown_in_utc(tmp_path, monkeypatch, zone, time):
    """`tapcheck log` stopped on "OverflowError: date value out of range" for such a row."""
    import time as clock

    from tapcheck.inspections import Inspection

    monkeypatch.setenv("TZ", zone)
    clock.tzset()
    try:
        row = Inspection(id=1, time=time, board=1, model="m", model_path="m.pt", score=0.1,
                         threshold=0.2, verdict="NORMAL", clip="clips/x.wav", latency_ms=None,
                         device=None)
        assert row.local_time == time[:10] + " " + time[11:19] + " UTC"
    finally:
        monkeypatch.delenv("TZ")
        clock.tzset()


def test_hand_edited_rows_cannot_forge_or_reorder_the_log(tmp_path, monkeypatch, run_cli):
    """QA: a line break in a row's model forged a line of the table, a score of 1e308 printed
    309 digits, and a time in another zone than UTC, or UTC spelt otherwise, sorted out of order
    and passed --since (the log compares its times as text, as listen writes them)."""
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(tmp_path))
    with InspectionLog(create=True) as log:
        _fill(log)
    db = sqlite3.connect(tmp_path / "inspections.sqlite")
    db.execute("UPDATE inspections SET model = 'm\n2026-01-01 00:00:00  9  NORMAL' WHERE id = 1")
    db.execute("UPDATE inspections SET score = 1e308 WHERE id = 2")
    db.commit()
    code, out, err = run_cli("log")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 1 + 4 + 1, out
    assert "m\\n2026-01-01 00:00:00  9  NORMAL" in lines[1]
    assert "1e+308" in lines[2] and len(lines[2]) < 200
    for time in ("2025-05-01T15:00:00.000+09:00", "2025-05-01 09:00:00+00:00",
                 "2025-05-01T07:00:00Z", "2025-05-01T07:00:00.000"):
        db.execute("UPDATE inspections SET time = ? WHERE id = 3", (time,))
        db.commit()
        code, _, err = run_cli("log")
        assert code == 2 and (f": inspections row 3: time '{time}' is not written as tapcheck "
                              "writes it (UTC: 2025-05-01T06:00:00.000+00:00) — delete or fix "
                              "the row") in err, err
    db.execute("UPDATE inspections SET time = '2025-05-01T06:00:00.000+00:00' WHERE id = 3")
    # a board no manifest holds was listed as logged
    db.execute("UPDATE inspections SET board = 99999999999 WHERE id = 4")
    db.commit()
    code, _, err = run_cli("log")
    assert code == 2 and (": inspections row 4: board 99999999999 is not a board number (0 to "
                          "999999)") in err, err
    db.execute("UPDATE inspections SET board = 3 WHERE id = 4")
    # a clip led out of the log's folder was listed as the tap's: the row is, its clip is not
    # (the station serves and exports it neither)
    for clip in ("/etc/passwd", "clips/../../../etc/passwd"):
        db.execute("UPDATE inspections SET clip = ? WHERE id = 4", (clip,))
        db.commit()
        code, out, err = run_cli("log")
        assert code == 0 and "etc/passwd" not in out and "(outside the log's folder)" in out
        assert err == (f"tapcheck: warning: {tmp_path / 'inspections.sqlite'}: the clip of "
                       "inspection(s) 4 leads out of the log's folder (edited by hand?); it is "
                       "not listed\n")
        code, out, _ = run_cli("log", "--json")
        assert code == 0 and json.loads(out.splitlines()[3])["clip"] is None
    db.close()


def test_log_shows_the_stations_marks(run_cli):
    """An operator's "false alarm" at the station reached its log page and export, but
    `tapcheck log` and its --json showed none (QA). The latest mark stands; "cleared" withdraws
    it; a log the station never marked has no column."""
    from tapcheck.marks import MarkBook

    with InspectionLog(create=True) as log:
        _fill(log)
    code, out, _ = run_cli("log")
    assert code == 0 and "mark" not in out.splitlines()[0].split()
    book = MarkBook(inspections_home())
    try:
        book.mark(2, "confirmed defect")
        book.mark(2, "false alarm")
        book.mark(3, "confirmed defect")
        book.mark(3, "cleared")
    finally:
        book.close()
    code, out, _ = run_cli("log")
    lines = out.strip().splitlines()
    assert lines[0].split() == ["time", "board", "verdict", "score", "threshold", "mark",
                                "model", "clip"]
    assert "false alarm" in lines[2] and [ln for ln in lines if "confirmed" in ln] == []
    code, out, _ = run_cli("log", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["id"], r["mark"]) for r in rows] == [(1, None), (2, "false alarm"), (3, None),
                                                     (4, None)]
    assert rows[1]["marked_at"].endswith("+00:00") and rows[0]["marked_at"] is None


def test_a_teams_log_is_written_by_each_of_its_members(tmp_path):
    """SQLite made the log 0644 whatever the umask (its -wal and -shm files as the log), so in
    a team's folder (group plant, umask 002) the second operator's listen was refused with
    "attempt to write a readonly database" (QA). Made as any file, each member logs."""
    from .conftest import as_another_user

    plant, op1, qa1 = 12345, 54321, 54322
    folder = tmp_path / "line1"
    folder.mkdir()
    os.chown(folder, 0, plant)
    folder.chmod(0o2775)  # set-group-ID: what is made in it is the team's
    code = f"""
import os
import numpy as np
from datetime import datetime, timezone
from tapcheck.inspections import InspectionLog
os.umask(0o002)
with InspectionLog({str(folder)!r}, create=True) as log:
    log.append(np.linspace(-0.5, 0.5, 4410, dtype=np.float32), sr=44100,
               when=datetime.now(timezone.utc), board=3, model="m", model_path="m.pt",
               score=0.01, threshold=0.07, verdict="NORMAL", latency_ms=40.0, device="pulse")
"""
    for user in (op1, qa1):
        done = subprocess.run([*as_another_user(user, groups=(plant,)), sys.executable, "-c",
                               code], capture_output=True, text=True)
        assert done.returncode == 0, (user, done.stderr)
    assert oct(os.stat(folder / "inspections.sqlite").st_mode & 0o777) == oct(0o664)
    with InspectionLog(folder) as log:
        assert len(log.query()) == 2


def test_the_log_names_each_times_zone_so_a_repeated_hour_reads_twice(tmp_path, run_cli,
                                                                     monkeypatch):
    """In the hour the clocks repeat (Berlin, 2026-10-25) two taps an hour apart showed one
    time, and the table never said its zone (QA). A TZ that names no zone made every time UTC
    without a word; it is said once."""
    import time as clock

    from tapcheck import inspections

    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(tmp_path / "insp"))
    monkeypatch.setenv("TZ", "Europe/Berlin")
    clock.tzset()
    try:
        with InspectionLog(create=True) as log:
            for hour, verdict in ((0, "ANOMALOUS"), (1, "NORMAL")):
                log.append(np.zeros(4410, np.float32), sr=44100,
                           when=datetime(2026, 10, 25, hour, 30, tzinfo=timezone.utc), board=2,
                           model="m", model_path="m.pt", score=0.1, threshold=0.2,
                           verdict=verdict)
        code, out, err = run_cli("log")
        assert code == 0 and err == ""
        assert [ln.split()[:3] for ln in out.splitlines()[1:3]] == [
            ["2026-10-25", "02:30:00", "CEST"], ["2026-10-25", "02:30:00", "CET"]]
        monkeypatch.setenv("TZ", "Nowhere/Bogus")
        clock.tzset()
        inspections.unknown_time_zone.cache_clear()
        monkeypatch.setattr(inspections, "_TIME_ZONE_TOLD", False)
        code, out, err = run_cli("log")
        assert code == 0 and err.startswith(
            "tapcheck: warning: TZ='Nowhere/Bogus' names no time zone this system knows, so "
            "tapcheck's local times (the log's, its clips' names, --since) are UTC")
    finally:
        monkeypatch.delenv("TZ")
        clock.tzset()
        inspections.unknown_time_zone.cache_clear()
