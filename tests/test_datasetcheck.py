"""tapcheck doctor --dataset: every problem of a dataset named with its fix, the checks going on
past a bad take, and no cached feature trusted."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from tapcheck.datasets import Dataset

from .conftest import write_tone
from .test_doctor import _lines


def _section(out: str, title: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(title))
    rest = [ln.strip() for ln in lines[start + 1:]]
    return rest[:next((i for i, ln in enumerate(rest) if not ln or not lines[start + 1 + i]
                       .startswith("  ")), len(rest))]


def test_healthy_dataset(tiny_dataset, run_cli):
    _, out, _ = run_cli("doctor", "--dataset", tiny_dataset.root)
    section = _section(out, f"dataset {tiny_dataset.root} (90 takes)")
    assert section == [
        "ok       manifest: 90 takes, every file present",
        "ok       90 of 90 takes usable; rates 44100 Hz x90; 3.00-3.00 s",
        "ok       train: 4 normal board(s) (8 sides, 32 takes), 2 defect board(s) (2 sides, "
        "10 takes)",
        "ok       test: 7 normal board(s) (14 sides, 38 takes), 2 defect board(s) (2 sides, "
        "10 takes)",
        # as train warns of it: doctor said nothing, then train called the rate a guess
        "note     the threshold `train` fits would rest on 8 normal clips (15% of each normal "
        "board side's takes, held out); a 5% false-alarm rate needs at least 60 to be checked, "
        "so train will call the stated rate a guess — record or import more normal takes, or "
        "more normal boards"]


def test_a_board_cracked_since_it_was_trained_on_is_a_note(small_train_set, tmp_path, run_cli):
    """Defect takes of a healthy training side in the test split (a board cracked since: the
    fix import and train give for a side of both labels) are a note, not a problem: evaluate
    counts them apart and nothing refuses them. They were a PROBLEM (QA)."""
    import dataclasses

    from tapcheck.datasets import Dataset

    root = shutil.copytree(small_train_set, tmp_path / "bench")
    ds = Dataset(root)
    ds.takes[6] = dataclasses.replace(ds.takes[6], label="defect", split="test")
    ds.write_manifest()
    code, out, _ = run_cli("doctor", "--dataset", root)
    section = _section(out, f"dataset {root} (16 takes)")
    assert code == 0 and not [ln for ln in section if ln.startswith("PROBLEM")], section
    assert f"note     {root / 'manifest.csv'}: {ds.takes[6].class_name} holds both labels " \
        "(normal takes in train, defect takes in test; a board cracked since?); evaluate " \
        "counts each label's takes apart" in section, section
    # both labels in the test split: said so, not "each in its own split" (QA)
    side = ds.takes[0].class_name
    ds.takes = [dataclasses.replace(t, split="test") if t.class_name == side else t
                for t in ds.takes]
    ds.takes[0] = dataclasses.replace(ds.takes[0], label="defect")
    ds.write_manifest()
    code, out, _ = run_cli("doctor", "--dataset", root)
    assert f"{side} holds both labels (normal takes in test, defect takes in test; " in out, out


def test_dataset_problems_are_each_named_with_their_fix(small_train_set, tmp_path, run_cli):
    root = shutil.copytree(small_train_set, tmp_path / "bench")
    ds = Dataset.open(root)
    takes = {t.path: root / t.path for t in ds.takes}
    paths = sorted(takes)
    takes[paths[0]].unlink()  # missing
    write_tone(takes[paths[1]], duration_s=3.0, tap_at_s=None)  # no strike
    write_tone(takes[paths[2]], sr=8000, duration_s=3.0, tap_at_s=1.0)  # too low a rate
    y, sr = sf.read(takes[paths[3]])
    sf.write(takes[paths[3]], np.clip(y * 40, -1, 1), sr)  # heavily clipped
    write_tone(takes[paths[4]], channels=2, duration_s=3.0, tap_at_s=1.0)  # stereo
    orphan = root / "board01" / "left" / "take099.wav"
    shutil.copyfile(takes[paths[5]], orphan)
    shutil.copyfile(takes[paths[5]], root / "board01" / "Extra Tap.WAV")  # copied in by hand
    (root / ".cache").mkdir()
    shutil.copyfile(takes[paths[5]], root / ".cache" / "x.wav")  # hidden: not a take
    ds.takes[6] = dataclasses.replace(ds.takes[6], label="defect")
    ds.write_manifest()

    code, out, _ = run_cli("doctor", "--dataset", root)
    assert code == 1
    section = _section(out, f"dataset {root} (16 takes)")
    problems = [ln for ln in section if ln.startswith("PROBLEM")]
    assert problems[0] == (f"PROBLEM  {root / 'manifest.csv'}: 1 take(s) have no file, e.g. "
                           f"{paths[0]} — restore them from a backup, or delete their rows")
    assert problems[1].startswith(f"PROBLEM  {takes[paths[1]]}: no strike found")
    assert problems[2].startswith(f"PROBLEM  {takes[paths[2]]}: is sampled at 8000 Hz")
    assert problems[3].startswith(f"PROBLEM  {takes[paths[3]]}: is heavily clipped")
    # in train's words, with its fix: doctor and train each wrote the rule (review)
    assert problems[4] == (f"PROBLEM  {root / 'manifest.csv'}: training side "
                           f"{ds.takes[6].class_name} holds both normal and defect takes; a board "
                           "side is one class, healthy or cracked — give each training board side "
                           "one label (a cracked end its own side name, e.g. right-crack), or mark "
                           "the odd takes split=test")
    assert len(problems) == 5
    notes = [ln for ln in section if ln.startswith("note")]
    assert not any("holds both labels" in ln for ln in notes)
    assert any(ln.startswith("note     2 audio file(s)") and "no command uses them" in ln
               and "e.g. board01/Extra Tap.WAV" in ln for ln in notes)
    assert any(f"{takes[paths[4]]}: 2 channels averaged to mono" in ln for ln in notes)
    assert any("12 of 15 takes usable" in ln and "8000 Hz x1" in ln for ln in notes)
    # a training set only: it said "ok  test: no takes", and evaluate then refused it
    assert "note     the test split has no takes: `evaluate` and `compare` have nothing to " \
           "measure false alarms or found defects on — record or import a few more takes per " \
           "board, healthy and cracked, with --split test" in notes
    assert out.rstrip().endswith("problem(s) to fix")


def _linked_out(take, tmp_path, *, dangling: bool = False) -> None:
    secret = tmp_path / "outside" / "secret.wav"
    secret.parent.mkdir()
    if not dangling:
        shutil.copyfile(take, secret)
        os.utime(secret, (0, secret.stat().st_mtime))  # relatime: a read would move the atime
    take.unlink()
    take.symlink_to(secret)


@pytest.mark.parametrize("make, problem", [
    (lambda take, tmp: (take.unlink(), os.mkfifo(take)), "is a named pipe (fifo), not a file"),
    # as train and evaluate say it; "pass the clips themselves" was a command line's advice
    (lambda take, tmp: (take.unlink(), take.mkdir()),
     "is a folder, not a take's audio file — fix its row's path or delete the row"),
    (lambda take, tmp: take.write_bytes(b""), "is empty (0 bytes)"),
    (lambda take, tmp: take.write_bytes(b"junk" * 5000), "is not a readable audio file"),
    (_linked_out, "take board02/left/take001.wav is a link to a file outside the dataset"),
    (lambda take, tmp: _linked_out(take, tmp, dangling=True),
     "take board02/left/take001.wav is a link to a file outside the dataset"),
], ids=["fifo", "folder", "empty", "junk", "link out", "dangling link out"])
def test_a_bad_take_is_one_problem_and_the_checks_go_on(small_train_set, tmp_path, run_cli,
                                                       make, problem):
    """Each bad take is a PROBLEM line of its own; the doctor never stops at it, as train does."""
    root = shutil.copytree(small_train_set, tmp_path / "bench")
    take = root / "board02" / "left" / "take001.wav"
    make(take, tmp_path)
    code, out, err = run_cli("doctor", "--dataset", root)
    assert code == 1 and "error" not in err, err
    section = _section(out, f"dataset {root} (16 takes)")
    problems = [ln for ln in section if ln.startswith("PROBLEM")]
    assert len(problems) == 1 and problem in problems[0], section
    named = root / "manifest.csv" if "outside" in problem else take
    assert problems[0].startswith(f"PROBLEM  {named}: "), problems[0]
    # the checks after it ran: the takes counted, the splits described
    assert any("15 of 16 takes usable" in ln for ln in section), section
    # the take train would refuse is not counted as one it can use ("ok train: … 16 takes")
    assert "note     train: 2 normal board(s) (4 sides, 16 takes, 15 usable)" in section, section
    secret = tmp_path / "outside" / "secret.wav"
    if secret.exists():
        assert secret.stat().st_atime == 0, "a file outside the dataset was read"


def _other_side(row: str) -> str:
    """A manifest row whose side column names the board's other end."""
    path, board, side, rest = row.split(",", 3)
    return ",".join([path, board, "right" if side == "left" else "left", rest])


@pytest.mark.parametrize("edit, problem", [
    (lambda rows: rows + rows[:1], "duplicate row for"),
    (lambda rows: [r.replace(",normal,", ",cracked,") for r in rows], "unknown label 'cracked'"),
    (lambda rows: [r.replace(",normal,", ",defect,") for r in rows],
     "no normal takes in the training split"),
    # a row whose board its folder contradicts: trained as the row says, "nothing to fix" (QA)
    (lambda rows: [rows[0].replace(f",{rows[0].split(',')[1]},", ",77,", 1), *rows[1:]],
     "1 take(s) lie in another board's folder than their row says, e.g. "),
    # and its side: a side is a class the networks train on; doctor said nothing (QA)
    (lambda rows: [_other_side(rows[0]), *rows[1:]],
     "1 take(s) lie in another side's folder than their row says, e.g. "),
])
def test_manifest_problems(small_train_set, tmp_path, run_cli, edit, problem):
    root = shutil.copytree(small_train_set, tmp_path / "bench")
    manifest = root / "manifest.csv"
    header, *rows = manifest.read_text().splitlines()
    manifest.write_text("\n".join([header, *edit(rows)]) + "\n")
    code, out, _ = run_cli("doctor", "--dataset", root)
    assert code == 1
    assert any(problem in ln for ln in _lines(out, "PROBLEM")), out


def test_a_folder_named_after_no_side_is_no_side(small_train_set, tmp_path, run_cli):
    """`board01/day2/take004.wav`, a layout train accepts, was called a take in another side's
    folder, a problem, exit 1 (review)."""
    root = shutil.copytree(small_train_set, tmp_path / "bench")
    manifest = root / "manifest.csv"
    header, first, *rest = manifest.read_text().splitlines()
    path = first.split(",", 1)[0]
    moved = path.replace("/left/", "/day2/").replace("/right/", "/day2/")
    (root / moved).parent.mkdir()
    (root / path).rename(root / moved)
    manifest.write_text("\n".join([header, first.replace(path, moved, 1), *rest]) + "\n")
    code, out, _ = run_cli("doctor", "--dataset", root)
    assert code == 0 and not _lines(out, "PROBLEM"), out


def test_unknown_dataset(run_cli):
    code, out, _ = run_cli("doctor", "--dataset", "nope")
    assert code == 1
    assert any("no such dataset" in ln for ln in _lines(out, "PROBLEM"))


def test_doctor_loads_without_the_feature_cache(small_train_set, tmp_path, run_cli):
    """A cached take would hide its warnings, so the doctor never trusts the cache."""
    root = shutil.copytree(small_train_set, tmp_path / "bench")
    take = sorted(root.glob("board*/*/take*.wav"))[0]
    write_tone(take, channels=2, duration_s=3.0, tap_at_s=1.0)
    for _ in range(2):
        _, out, _ = run_cli("doctor", "--dataset", root)
        assert any(f"{take}: 2 channels averaged" in ln for ln in _lines(out, "note"))


def test_one_board_side_is_a_note_as_train_takes_it(small_train_set, tmp_path, run_cli):
    """train learns one side against pseudo-anomaly classes, with a warning; doctor called it a
    PROBLEM and exited 1 on a dataset train accepted (QA)."""
    root = shutil.copytree(small_train_set, tmp_path / "bench")
    manifest = root / "manifest.csv"
    header, *rows = manifest.read_text().splitlines()
    manifest.write_text("\n".join([header, *[r for r in rows if "board01/left" in r]]) + "\n")
    code, out, _ = run_cli("doctor", "--dataset", root)
    assert code == 0 and not _lines(out, "PROBLEM"), out
    assert any("the training split has one board side (board01/left); the metric and "
               "classifier models learn it against pseudo-anomaly classes" in ln
               for ln in _lines(out, "note")), out
