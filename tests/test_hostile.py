"""Hostile input and concurrent use (issue 13): one test per defect found, through the real CLI.

Each test makes the hostile thing for real (a fifo, a held lock in another process, a manifest
row pointing outside its dataset, a model file with NaN in it) and asserts the one-line error,
the exit status, and that nothing earlier was lost or changed.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tapcheck.config import Config, load_config
from tapcheck.errors import ConfigError
from tapcheck.validate import RULES

from .conftest import FAST_CONFIG, ROOT, write_tone


def test_every_setting_has_a_rule():
    config = Config()
    for section in dataclasses.fields(config):
        names = {f.name for f in dataclasses.fields(getattr(config, section.name))}
        assert names == set(RULES[section.name]), section.name


@pytest.mark.parametrize("section,key,value", [
    ("features", "hop_length", 0), ("features", "n_fft", 0), ("audio", "sr", 0),
    ("train", "epochs", 0), ("train", "batch_size", 0), ("train", "calib_fraction", 2.0),
    ("features", "n_crops", 0), ("train", "lr", math.nan), ("train", "far", 0.0),
    ("train", "knn_metric", "cosin"), ("train", "triplet_mining", "batch_hard"),
    ("features", "top_db", math.nan), ("features", "n_bins", 5000), ("train", "lr", math.inf),
    ("train", "optimizer", "adamw"), ("train", "scorer", "kNN"), ("train", "seed", -1),
])
def test_settings_refused_when_loaded(tmp_path, section, key, value):
    text = "nan" if isinstance(value, float) and math.isnan(value) else (
        "inf" if value == math.inf else repr(value).replace("'", '"'))
    path = tmp_path / "bad.toml"
    path.write_text(f"[{section}]\n{key} = {text}\n")
    with pytest.raises(ConfigError, match=rf"bad\.toml: '{section}\.{key}'"):
        load_config(path)
    with pytest.raises(ConfigError, match=rf"^option: '{section}\.{key}'"):
        Config().replace(section, **{key: value})


def test_bad_setting_fails_before_any_work(run_cli, tiny_dataset, tmp_path):
    """`train` with far = 0 stops at once: no model file, no .partial left to block a rerun."""
    config = tmp_path / "far.toml"
    config.write_text("[train]\nfar = 0.0\n")
    out = tmp_path / "m" / "ae.pt"
    code, _, err = run_cli("train", "--model", "ae", "--dataset", tiny_dataset.root, "--config",
                           config, "--epochs", "1", "--out", out)
    assert code == 2 and "'train.far' must be in (0, 1)" in err and "Traceback" not in err
    assert not out.parent.exists() or not any(out.parent.iterdir())


# -- shared pieces: a real dataset copy, a real model, real subprocesses ------------------------

def _tapcheck(*args, prefix=(), env=None, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    """``tapcheck ARGS`` in a subprocess of this checkout (real signals, mounts, locks)."""
    return subprocess.run([*prefix, sys.executable, "-m", "tapcheck", *map(os.fspath, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, **kwargs)


def _one_line_error(err: str, *fragments: str) -> None:
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("tapcheck: error: ")]
    assert lines, err
    assert any(all(f in ln for f in fragments) for ln in lines), err


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")}


@pytest.fixture
def dataset_copy(small_train_set, tmp_path) -> Path:
    return Path(shutil.copytree(small_train_set, tmp_path / "ds"))


@pytest.fixture(scope="module")
def ae_model(small_train_set, tmp_path_factory) -> Path:
    """An autoencoder trained one epoch on the small set through the CLI (narrow crops)."""
    from tapcheck.cli import main

    folder = tmp_path_factory.mktemp("ae")
    (folder / "fast.toml").write_text(FAST_CONFIG)
    out = folder / "ae.pt"
    code = main(["train", "--model", "ae", "--dataset", str(small_train_set), "--epochs", "1",
                 "--config", str(folder / "fast.toml"), "--out", str(out)])
    assert code == 0 and out.is_file()
    return out


def _append_row(dataset: Path, **changes) -> int:
    """Append a copy of the manifest's first row with ``changes``; returns its line number."""
    path = dataset / "manifest.csv"
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    row = {**rows[0], **{k: str(v) for k, v in changes.items()}}
    with open(path, "a", encoding="utf-8", newline="") as f:
        csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n").writerow(row)
    return len(rows) + 2


# -- 1 and 11: manifest rows --------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    {"path": "../../../../etc/passwd"}, {"path": "/etc/passwd"},
    {"path": "board01/../../../secret.wav"}, {"board": -3}, {"take": -1},
    {"sample_rate": 0}, {"duration_s": "nan"}, {"side": "../x"},
])
def test_bad_manifest_rows_are_refused_naming_the_line(dataset_copy, run_cli, tmp_path, bad):
    line = _append_row(dataset_copy, **bad)
    before = _snapshot(dataset_copy)
    for args in (["info", dataset_copy], ["doctor", "--dataset", dataset_copy],
                 ["train", "--model", "ae", "--dataset", dataset_copy, "--epochs", "1", "--out",
                  tmp_path / "m.pt"]):
        code, out, err = run_cli(*args)
        text = out + err
        assert code in (1, 2) and f"manifest.csv:{line}:" in text, (args, text)
        assert "Traceback" not in text
    assert not (tmp_path / "m.pt").exists() and _snapshot(dataset_copy) == before


def test_a_take_linked_out_of_the_dataset_is_refused(dataset_copy, tmp_path, run_cli):
    secret = tmp_path / "secret.wav"
    shutil.copyfile(next(dataset_copy.rglob("take*.wav")), secret)
    first = dataset_copy / "board01" / "left" / "take001.wav"
    first.unlink()
    first.symlink_to(secret)
    code, _, err = run_cli("train", "--model", "ae", "--dataset", dataset_copy, "--epochs", "1",
                           "--out", tmp_path / "m.pt")
    assert code == 2
    _one_line_error(err, "board01/left/take001.wav is a link to a file outside the dataset")


def test_importing_appends_one_row_instead_of_rewriting(dataset_copy, run_cli, tmp_path):
    """A huge manifest is not rewritten per take: same file (inode), old bytes a prefix."""
    manifest = dataset_copy / "manifest.csv"
    before = manifest.read_bytes()
    inode = manifest.stat().st_ino
    clips = [write_tone(tmp_path / f"c{i}.wav", seed=i) for i in range(2)]
    code, out, err = run_cli("import", *clips, "--dataset", dataset_copy, "--board", "7",
                             "--side", "left", "--label", "normal")
    assert code == 0, err
    after = manifest.read_bytes()
    assert manifest.stat().st_ino == inode and after.startswith(before)
    assert after.count(b"\n") == before.count(b"\n") + 2


# -- 2: train --out -----------------------------------------------------------------------------

def _out_cases(root: Path, dataset: Path) -> dict[str, Path]:
    folder = root / "folder"
    folder.mkdir()
    fifo = root / "fifo.pt"
    os.mkfifo(fifo)
    device = root / "null.pt"
    os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    return {"take": dataset / "board01" / "left" / "take001.wav",
            "manifest": dataset / "manifest.csv", "folder": folder, "fifo": fifo,
            "device": device}


def test_train_out_refuses_what_tapcheck_did_not_make(dataset_copy, tmp_path, run_cli):
    before = _snapshot(dataset_copy)
    for name, out in _out_cases(tmp_path, dataset_copy).items():
        code, _, err = run_cli("train", "--model", "ae", "--dataset", dataset_copy, "--epochs",
                               "1", "--out", out)
        assert code == 2, name
        _one_line_error(err, f"{out}: ")
        assert "epoch" not in err  # refused before training
        assert not Path(f"{out}.partial").exists()
    assert _snapshot(dataset_copy) == before
    assert (tmp_path / "fifo.pt").is_fifo() and (tmp_path / "null.pt").is_char_device()


def _private_mounts(setup: str) -> list[str]:
    """Command prefix: a mount namespace of its own, set up by ``setup`` (sh)."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed for a private full or read-only disk"
    root = [] if os.geteuid() == 0 else ["--map-root-user"]
    return [unshare, "--mount", "--propagation", "private", *root, "sh", "-ec",
            f'{setup}; exec "$@"', "sh"]


def test_full_disk_while_training_is_one_storage_line(small_train_set, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    (tmp_path / "fast.toml").write_text(FAST_CONFIG)
    result = _tapcheck("train", "--model", "ae", "--dataset", small_train_set, "--epochs", "1",
                       "--config", tmp_path / "fast.toml", "--out", disk / "ae.pt",
                       prefix=_private_mounts(f"mount -t tmpfs -o size=24k tmpfs {disk}"))
    assert result.returncode == 2
    _one_line_error(result.stderr, "cannot be written (No space left on device)",
                    "the disk is full")


# -- 3 and 4: model-file contents ---------------------------------------------------------------

def _set(path: tuple, value):
    def mutate(checkpoint):
        target = checkpoint
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value(target[path[-1]]) if callable(value) else value
    return mutate


_DELETE = object()
MUTATIONS = {
    "threshold NaN": _set(("detector", "offset"), math.nan),
    "threshold inf": _set(("detector", "offset"), -math.inf),
    "threshold of the wrong sign": _set(("detector", "offset"), 3.0),
    "NaN weights": lambda c: [v.fill_(math.nan) for v in c["state_dict"].values()
                              if v.is_floating_point()],
    "no classes": _set(("classes",), _DELETE),
    "classes = 5": _set(("classes",), 5),
    "classes of numbers": _set(("classes",), lambda cs: list(range(len(cs)))),
    "no detector kind": _set(("detector", "kind"), _DELETE),
    "an absurd network": _set(("model_args", "embedding_dim"), 10**9),
    "far = 0": _set(("detector", "params", "far"), 0.0),
    "NaN calibration scores": _set(("detector", "calibration_scores"),
                                   lambda t: t.clone().fill_(math.nan)),
    "settings out of range": _set(("config", "features", "hop_length"), 0),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_damaged_model_contents_are_one_model_file_line(ae_model, tmp_path, run_cli, name):
    checkpoint = torch.load(ae_model, weights_only=True)
    MUTATIONS[name](checkpoint)
    bad = tmp_path / "bad.pt"
    torch.save(checkpoint, bad)
    clip = write_tone(tmp_path / "clip.wav", duration_s=1.0)
    code, out, err = run_cli("judge", clip, "--model", bad, "--json")
    assert code == 2 and out == ""  # no verdict at all, certainly not NORMAL
    _one_line_error(err, f"{bad}: is damaged")


def test_a_nan_score_is_never_normal_and_json_stays_json(ae_model, tmp_path):
    from tapcheck.judge import Judge

    judge = Judge(ae_model)
    (verdict,) = judge._verdicts(["clip.wav"], np.array([math.nan]))
    assert verdict.verdict is None and verdict.error and "NaN" in verdict.error
    json.loads(json.dumps(verdict.to_dict(), allow_nan=False))


# -- 6: named pipes and special files -----------------------------------------------------------

def test_named_pipes_are_refused_at_once(ae_model, dataset_copy, tmp_path):
    fifo = tmp_path / "x.wav"
    os.mkfifo(fifo)
    take = dataset_copy / "board02" / "left" / "take001.wav"
    take.unlink()
    os.mkfifo(take)
    cases = {
        "judge": ["judge", fifo, "--model", ae_model],
        "import": ["import", fifo, "--dataset", tmp_path / "new", "--board", "1", "--side",
                   "left", "--label", "normal"],
        "--model": ["judge", write_tone(tmp_path / "c.wav"), "--model", fifo],
        "--config": ["import", fifo, "--dataset", tmp_path / "new", "--board", "1", "--side",
                     "left", "--label", "normal", "--config", fifo],
        "manifest take": ["train", "--model", "ae", "--dataset", dataset_copy, "--epochs", "1",
                          "--out", tmp_path / "m.pt"],
        "doctor": ["doctor", "--dataset", dataset_copy],
    }
    for name, args in cases.items():
        result = _tapcheck(*args, timeout=60)  # a hang fails here, not forever
        assert result.returncode in (1, 2), (name, result.stderr)
        assert "is a named pipe (fifo), not a file" in result.stdout + result.stderr, name
        assert "Traceback" not in result.stderr


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
    assert "1 WAV file(s)" in out and "take099.wav" in out


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


# -- more of the same kinds ---------------------------------------------------------------------

def test_a_lock_file_that_is_not_a_file_is_one_line(dataset_copy, tmp_path, run_cli):
    (dataset_copy / ".lock").unlink(missing_ok=True)
    (dataset_copy / ".lock").mkdir()
    code, _, err = run_cli("import", write_tone(tmp_path / "c.wav"), "--dataset", dataset_copy,
                           "--board", "1", "--side", "left", "--label", "normal")
    assert code == 2
    _one_line_error(err, f"{dataset_copy}: cannot be locked: .lock beside it is not a lock file")


def test_a_manifest_linked_elsewhere_is_never_written_through(dataset_copy, tmp_path, run_cli):
    elsewhere = tmp_path / "elsewhere.csv"
    shutil.move(dataset_copy / "manifest.csv", elsewhere)
    (dataset_copy / "manifest.csv").symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    code, _, err = run_cli("import", write_tone(tmp_path / "c.wav"), "--dataset", dataset_copy,
                           "--board", "1", "--side", "left", "--label", "normal")
    assert code == 0, err
    assert elsewhere.read_bytes() == before  # the link was replaced by a file, not followed
    assert not (dataset_copy / "manifest.csv").is_symlink()


def test_out_of_range_options_are_one_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(tmp_path))
    code, _, err = run_cli("log", "--since", "99999999999d")
    assert code == 2 and "reaches back before year 1" in err
    code, _, err = run_cli("train", "--seed", "-1")
    assert code == 2 and "'train.seed'" in err
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli("bench", "--out", tmp_path / "notes.txt")
    assert code == 2 and "is not a benchmark report tapcheck wrote" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"
