"""Concurrent use and interrupted work (issue 13): locks, signals, full disks, the log.

Real processes hold real locks (fcntl, SQLite), real signals stop real imports, and full or
read-only disks are real mounts in a private mount namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import FAST_CONFIG, ROOT, write_tone
from .hostile_helpers import (_one_line_error, _private_mounts, _snapshot, _tapcheck, copy_dataset)

dataset_copy = pytest.fixture(copy_dataset, name="dataset_copy")


# -- 5 and 7: locks -----------------------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from tapcheck.errors import TapcheckError
from tapcheck.locks import exclusive
with exclusive(Path(sys.argv[1]), what=sys.argv[1], error=TapcheckError):
    print("held", flush=True)
    time.sleep(60)
"""


@contextlib.contextmanager
def _held(lock: Path):
    """Another process holding ``lock`` as a tapcheck writer does; yields its PID."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_second_train_on_one_model_file_is_told_who_trains_it(dataset_copy, tmp_path,
                                                                run_cli):
    out = tmp_path / "m" / "ae.pt"
    out.parent.mkdir()
    with _held(out.with_name("ae.pt.lock")) as pid:
        code, _, err = run_cli("train", "--model", "ae", "--dataset", dataset_copy,
                               "--epochs", "1", "--out", out)
        assert code == 2
        _one_line_error(err, f"{out}: in use by PID {pid}")
        assert "interrupted" not in err and not out.exists()


def test_a_second_writer_of_a_dataset_is_told_who_writes_it(dataset_copy, tmp_path, run_cli):
    before = _snapshot(dataset_copy)
    with _held(dataset_copy / ".lock") as pid:
        code, _, err = run_cli("import", write_tone(tmp_path / "c.wav"), "--dataset",
                               dataset_copy, "--board", "1", "--side", "left", "--label",
                               "normal")
        assert code == 2
        _one_line_error(err, f"{dataset_copy}: in use by PID {pid}")
    assert _snapshot(dataset_copy) == before
    # the holder is gone (killed): its stale lock file blocks nobody
    code, _, err = run_cli("import", tmp_path / "c.wav", "--dataset", dataset_copy, "--board",
                           "1", "--side", "left", "--label", "normal")
    assert code == 0, err


def test_a_second_writer_of_the_log_is_told_who_writes_it(tmp_path):
    from tapcheck.errors import InspectionLogError
    from tapcheck.inspections import InspectionLog

    log = InspectionLog(tmp_path, create=True)
    log.close()
    with _held(tmp_path / "inspections.sqlite.lock") as pid:
        with pytest.raises(InspectionLogError, match=f"in use by PID {pid}"):
            InspectionLog(tmp_path, create=True)
        with InspectionLog(tmp_path) as reader:  # readers are never locked out
            assert reader.query() == []


# -- 8: import on a full disk, stopped mid-way, and what doctor sees afterwards ------------------

def test_import_on_a_full_disk_is_one_line_and_a_summary(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    clips = [write_tone(tmp_path / f"c{i}.wav", duration_s=3.0, seed=i) for i in range(5)]
    result = _tapcheck("import", *clips, "--dataset", disk / "ds", "--board", "1", "--side",
                       "left", "--label", "normal",
                       prefix=_private_mounts(f"mount -t tmpfs -o size=400k tmpfs {disk}"))
    assert result.returncode == 2
    _one_line_error(result.stderr, "No space left on device", "the disk is full")
    assert len([ln for ln in result.stderr.splitlines() if "error" in ln]) == 1
    assert "file(s) into" in result.stdout and "not tried" in result.stdout


def test_import_stopped_mid_way_leaves_every_wav_with_its_row(dataset_copy, tmp_path):
    clips = [write_tone(tmp_path / f"c{i}.wav", duration_s=3.0, seed=i) for i in range(40)]
    importer = subprocess.Popen(
        [sys.executable, "-m", "tapcheck", "import", *map(str, clips), "--dataset",
         str(dataset_copy), "--board", "9", "--side", "left", "--label", "normal"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    assert " -> " in importer.stdout.readline()  # one take is in: now stop it
    importer.send_signal(signal.SIGINT)
    _, err = importer.communicate(timeout=60)
    assert importer.returncode == 130 and "Traceback" not in err, err
    from tapcheck.datasets import Dataset

    rows = {t.path for t in Dataset.open(dataset_copy).takes}
    wavs = {p.relative_to(dataset_copy).as_posix() for p in dataset_copy.rglob("take*.wav")}
    assert wavs == rows and not list(dataset_copy.rglob("*.tmp"))
    assert 1 <= len([r for r in rows if r.startswith("board09/")]) < len(clips)


def test_doctor_reports_stray_temporary_files_and_wavs_without_rows(dataset_copy, run_cli):
    (dataset_copy / "board01" / "left" / ".take009.wav.x1y2.tmp").write_bytes(b"RIFF")
    shutil.copyfile(dataset_copy / "board01" / "left" / "take001.wav",
                    dataset_copy / "board01" / "left" / "take099.wav")
    code, out, _ = run_cli("doctor", "--dataset", dataset_copy)
    assert "1 unfinished temporary file(s)" in out and ".take009.wav.x1y2.tmp" in out
    assert "1 audio file(s)" in out and "take099.wav" in out


# -- 9: problems that are not the takes' ---------------------------------------------------------

def test_an_unwritable_feature_cache_is_not_blamed_on_the_takes(small_train_set, tmp_path):
    from .conftest import obeying_file_modes

    cache = tmp_path / "cache"
    cache.mkdir(mode=0o555)
    (tmp_path / "fast.toml").write_text(FAST_CONFIG)
    result = _tapcheck("train", "--model", "ae", "--dataset", small_train_set, "--epochs", "1",
                       "--config", tmp_path / "fast.toml", "--out", tmp_path / "m.pt",
                       prefix=obeying_file_modes(), env={"TAPCHECK_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    assert "feature cache not used" in result.stderr and "re-record" not in result.stderr
    assert (tmp_path / "m.pt").is_file() and not any(cache.iterdir())


def test_too_many_bins_is_a_settings_error_not_the_takes(dataset_copy, tmp_path, run_cli):
    (tmp_path / "bins.toml").write_text("[features]\nn_bins = 5000\n")
    code, _, err = run_cli("train", "--model", "ae", "--dataset", dataset_copy, "--epochs", "1",
                           "--config", tmp_path / "bins.toml", "--out", tmp_path / "m.pt")
    assert code == 2 and "re-record" not in err
    _one_line_error(err, "bins.toml: 'features.n_bins'", "513 frequency bins")


# -- 10: the inspection log ---------------------------------------------------------------------

def _log_with_rows(folder: Path, n: int = 3) -> Path:
    from datetime import datetime, timezone

    from tapcheck.inspections import InspectionLog

    with InspectionLog(folder, create=True) as log:
        for i in range(n):
            log.append(np.zeros(100, np.float32), sr=44100, when=datetime.now(timezone.utc),
                       board=i, model="ae", model_path="ae.pt", score=0.1 * i, threshold=0.15,
                       verdict="NORMAL" if i < 2 else "ANOMALOUS")
    return folder / "inspections.sqlite"


def test_log_reads_a_read_only_log_without_writing(tmp_path):
    folder = tmp_path / "log"
    db = _log_with_rows(folder)
    before = _snapshot(folder)
    result = _tapcheck("log", "--json", env={"TAPCHECK_INSPECTIONS": str(folder)},
                       prefix=_private_mounts(f"mount --bind {folder} {folder}; "
                                              f"mount -o remount,ro,bind {folder}"))
    assert result.returncode == 0, result.stderr
    assert [json.loads(ln)["board"] for ln in result.stdout.splitlines()] == [0, 1, 2]
    assert _snapshot(folder) == before and sorted(os.listdir(folder)) == ["clips", db.name]


def test_a_log_of_another_schema_is_refused_unchanged(tmp_path, run_cli, monkeypatch):
    import sqlite3

    db = tmp_path / "inspections.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as other:
        other.execute("CREATE TABLE inspections (id INTEGER PRIMARY KEY, note TEXT)")
        other.execute("INSERT INTO inspections (note) VALUES ('theirs')")
        other.commit()
    before = db.read_bytes()
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(tmp_path))
    code, _, err = run_cli("log")
    assert code == 2
    _one_line_error(err, f"{db}: is not a tapcheck inspection log")
    # the fix said "point $TAPCHECK_INSPECTIONS at a tapcheck log folder; `tapcheck listen`
    # then starts a new one (or set $TAPCHECK_INSPECTIONS)": the same advice twice, garbled
    assert err.endswith(" — move it aside; `tapcheck listen` then starts a new one (or set "
                        "$TAPCHECK_INSPECTIONS)\n"), err
    from tapcheck.errors import InspectionLogError
    from tapcheck.inspections import InspectionLog

    with pytest.raises(InspectionLogError, match="is not a tapcheck inspection log"):
        InspectionLog(tmp_path, create=True)  # listen's way in: refused before any write
    assert db.read_bytes() == before
    with contextlib.closing(sqlite3.connect(db)) as other:
        assert other.execute("PRAGMA user_version").fetchone()[0] == 0
        assert [r[0] for r in other.execute("SELECT name FROM sqlite_master")] == ["inspections"]


def test_a_locked_log_is_one_clear_line(tmp_path):
    db = _log_with_rows(tmp_path)
    locker = subprocess.Popen([sys.executable, "-c", f"""
import sqlite3, time
db = sqlite3.connect({str(db)!r}, isolation_level=None)
db.execute("PRAGMA journal_mode=DELETE")
db.execute("BEGIN EXCLUSIVE")
db.execute("DELETE FROM inspections WHERE id = 1")
print("locked", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        result = _tapcheck("log", env={"TAPCHECK_INSPECTIONS": str(tmp_path)}, timeout=30)
    finally:
        locker.kill()
        locker.wait()
    assert result.returncode == 2
    _one_line_error(result.stderr, f"{db}: is locked by another process")
    assert "move it aside" not in result.stderr


