"""A synthetic dataset on disk: the study's boards as takes, the same per seed, never written
over recordings, and taken back when a run is stopped."""

import os
from pathlib import Path

import pytest

from tapcheck.synth_dataset import make_study_dataset

from .conftest import default_signals


def test_dataset_is_deterministic_per_seed(tmp_path):
    a = make_study_dataset(tmp_path / "a", takes=1, seed=5)
    b = make_study_dataset(tmp_path / "b", takes=1, seed=5)
    assert [t.path for t in a.takes] == [t.path for t in b.takes]
    for t in a.takes:
        assert (a.root / t.path).read_bytes() == (b.root / t.path).read_bytes()


def test_dataset_mirrors_the_study(tiny_dataset):
    ds = tiny_dataset
    assert {t.board for t in ds.select(split="train")} == {1, 2, 3, 4, 5, 6}
    assert {t.board for t in ds.select(label="defect")} == {5, 6, 7, 8}
    assert {t.board for t in ds.select(group="similar-material")} == {11, 12, 13}
    test_boards = {t.board for t in ds.select(split="test")}
    assert test_boards == {1, 2, 3, 4, 7, 8, 11, 12, 13}  # held-out takes of 1-4 included
    assert {(t.board, t.side) for t in ds.select(board=[7, 8])} == {(7, "left"), (8, "right")}
    assert all(t.sample_rate == 44100 and t.duration_s == 3.0 and t.source == "synth"
               for t in ds.takes)


@pytest.mark.parametrize("args, problem", [
    (["--seed", "-1"], "--seed must be between 0 and 4294967295, not -1"),
    (["--takes", "5", "--test-takes", "5"], "--test-takes must be between 0 and 4"),
    (["--test-takes", "-2"], "--test-takes must be between 0 and 29"),
    (["--takes", "0"], "--takes must be between 1 and 1000, not 0 — about 30 per board side"),
    (["--takes", "100000"], "--takes must be between 1 and 1000, not 100000"),
])
def test_bad_synth_options_are_one_line_and_leave_no_folder(run_cli, tmp_path, args, problem):
    code, _, err = run_cli("synth", "--dataset", tmp_path / "new", *args)
    assert code == 2 and problem in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("signals, new, sig", [(1, False, "SIGTERM"), (3, False, "SIGTERM"),
                                              (1, True, "SIGTERM"), (1, False, "SIGHUP")])
def test_a_stopped_synth_takes_back_what_it_wrote_and_a_rerun_works(tmp_path, run_cli, signals,
                                                                    new, sig):
    """`kill` (as Ctrl-C) mid-synthesis: the half-written dataset is gone, files that were in
    the folder before stay, and the same command then succeeds. Ctrl-C pressed again and again
    stopped the taking back, leaving rows whose files were gone, which the rerun refused (QA):
    the later signals may end the process as signals do, after the line. A closed terminal
    (SIGHUP) left 40 take files and the lock, and the rerun refused them (QA)."""
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "half"
    if new:  # a dataset in folders synth makes: they go too (runs/a was left behind: QA)
        root = tmp_path / "runs" / "a" / "half"
    else:
        root.mkdir()
        (root / "notes.txt").write_text("mine")
    proc = subprocess.Popen([sys.executable, "-m", "tapcheck", "synth", "--dataset", root],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)
    deadline = time.monotonic() + 60
    while len(list(root.glob("board*/*/take*.wav"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # takes are on disk
    for _ in range(signals):
        proc.send_signal(getattr(signal, sig))
        time.sleep(0.02)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in ((130,) if signals == 1 else (130, -signal.SIGTERM)), err
    assert "Traceback" not in err, err
    assert err.splitlines()[-1].startswith("tapcheck: interrupted; the ")
    assert err.splitlines()[-1].endswith(f" take(s) written to {root} were removed (synth "
                                         "writes a whole dataset or none); run it again")
    if new:
        assert not (tmp_path / "runs").exists()
    else:
        assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]
    code, out, err = run_cli("synth", "--dataset", root, "--takes", "1")
    assert code == 0, err
    assert "wrote 18 takes" in out


def test_a_stopped_synth_takes_back_its_takes_before_it_lets_go_of_the_dataset(tmp_path,
                                                                               monkeypatch):
    """Taken back once the lock was gone, an `import` that took the lock in that moment lost
    its manifest, and its lock file (QA: 8 takes imported, no row left). Stopped at its third
    take here; its lock must still be held when it takes back what it wrote."""
    from tapcheck import synth_dataset
    from tapcheck.locks import holding

    root = tmp_path / "half"
    made, seen = [], []
    write = synth_dataset.write_take

    def write_then_stop(ds, *args, **kwargs):
        if len(made) == 2:
            raise KeyboardInterrupt  # Ctrl-C, as it arrives between two takes
        made.append(write(ds, *args, **kwargs))
        return made[-1]

    remove = synth_dataset._remove_written

    def remove_and_look(ds, *args, **kwargs):
        seen.append(holding(ds.root / ".lock"))
        remove(ds, *args, **kwargs)

    monkeypatch.setattr(synth_dataset, "write_take", write_then_stop)
    monkeypatch.setattr(synth_dataset, "_remove_written", remove_and_look)
    with pytest.raises(BaseException, match="the 2 take.s. written to .* were removed"):
        make_study_dataset(root, takes=2)
    assert seen == [True]
    assert not root.exists()  # the folder it made goes too, once its lock file has


def test_a_synth_stopped_again_while_taking_back_does_not_say_it_was_written_whole(
        tmp_path, monkeypatch):
    """A second Ctrl-C amid the taking back left its count unset, which read as "the run had
    finished": `… was written whole`, of takes left with an empty manifest (review)."""
    from tapcheck import synth_dataset

    made = []
    write = synth_dataset.write_take

    def write_then_stop(ds, *args, **kwargs):
        if len(made) == 2:
            raise KeyboardInterrupt
        made.append(write(ds, *args, **kwargs))
        return made[-1]

    def stopped_again(*args, **kwargs):
        raise KeyboardInterrupt  # the second Ctrl-C, before anything was taken back

    monkeypatch.setattr(synth_dataset, "write_take", write_then_stop)
    monkeypatch.setattr(synth_dataset, "_remove_written", stopped_again)
    with pytest.raises(BaseException, match="stopped again while taking back what it wrote "
                                            "to .*; delete that folder"):
        make_study_dataset(tmp_path / "half", takes=2)


def test_a_synth_killed_where_nothing_cleans_up_leaves_no_dataset_that_looks_whole(tmp_path,
                                                                                 run_cli):
    """`kill -9` mid-run left the manifest of the board sides done so far: info, train and
    doctor took it for a whole dataset (QA). The manifest is written once, at the end; the
    take files of a killed run are no row's, and the rerun says what they likely are."""
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "half"
    proc = subprocess.Popen([sys.executable, "-m", "tapcheck", "synth", "--dataset", root,
                             "--takes", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(root.glob("board*/*/take*.wav"))) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)  # past the first board sides (3 takes each)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    found = len(list(root.glob("board*/*/take*.wav")))
    assert found >= 8
    code, out, err = run_cli("info", root)
    assert code == 0 and out.startswith(f"{root}: 0 takes"), (out, err)
    assert err.startswith(f"tapcheck: warning: {found} audio file(s) in {root} no manifest row "
                          "lists, e.g. board01/left/take001.wav (copied in by hand, or a run "
                          "killed before it could clean up?)"), err
    code, out, err = run_cli("synth", "--dataset", root, "--takes", "3")
    assert code == 2 and err.endswith(
        f"{root}: holds {found} take file(s) its manifest does not list (an interrupted run "
        "killed before it could clean up?) — choose another --dataset name, or delete the "
        "folder if it holds nothing you need; synth never adds to or overwrites recordings\n")


def test_synth_into_a_link_to_nothing_names_the_link(tmp_path, run_cli, monkeypatch):
    """It said "recordings/x: cannot be written (File exists) — a file stands where a folder
    should be", of a folder that was not there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TAPCHECK_RECORDINGS")  # ./recordings, the default
    Path("recordings").symlink_to(tmp_path / "gone")
    code, out, err = run_cli("synth", "--dataset", "x", "--takes", "1")
    assert code == 2 and out == ""
    assert err == (f"tapcheck: error: recordings: is a symbolic link to {tmp_path / 'gone'}, "
                   "which does not exist — create the folder it points to, or choose another "
                   "path\n")
    assert os.listdir(tmp_path) == ["recordings"]


@pytest.mark.parametrize("manifest", [False, True], ids=["folder", "empty-dataset"])
@pytest.mark.parametrize("link", ["board03", "board05/left"])
def test_synth_refuses_a_board_folder_linked_out_of_the_dataset(tmp_path, run_cli, link,
                                                                manifest):
    """synth wrote its takes through the link, outside the dataset, which info, train and
    doctor then refused (import and record refused such a folder); and take files already
    there counted as "take file(s) its manifest does not list" of the dataset. Now the link is
    named, as import names it, before anything is written."""
    root = tmp_path / "syn"
    (root / link).parent.mkdir(parents=True)
    if manifest:
        (root / "manifest.csv").write_text(
            "path,board,side,label,group,split,take,recorded_at,sample_rate,duration_s,source,"
            "peak_dbfs\n")
    outside = tmp_path / "outside"
    (outside / "right").mkdir(parents=True)
    (outside / "right" / "take001.wav").write_bytes(b"someone else's")
    (root / link).symlink_to(outside)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, out, err = run_cli("synth", "--dataset", root, "--takes", "1")
    board, side = (3, "left") if link == "board03" else (5, "left")
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {root / link}: is a link to {outside}, outside the "
                   f"dataset; takes of board {board} {side} would be written there and the "
                   "dataset could no longer be read — replace the link by a folder (move what it "
                   "holds into the dataset)\n")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not list(root.rglob("*.wav"))


def test_synth_refuses_a_board_folder_linked_inside_the_dataset(tmp_path, run_cli):
    """board01 linked to board02: synth wrote board 2's take001 over board 1's, both rows named
    the same audio, and info and doctor saw nothing wrong. A link among the folders synth
    writes is now refused before anything is written."""
    root = tmp_path / "syn"
    (root / "board02").mkdir(parents=True)
    (root / "board01").symlink_to(root / "board02")
    code, out, err = run_cli("synth", "--dataset", root, "--takes", "1")
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {root / 'board01'}: is a link to {root / 'board02'}; synth "
                   "writes every board side into a folder of its own — remove the link (synth "
                   "makes the folders it needs)\n")
    assert not list(root.rglob("*.wav"))


def test_synth_refuses_a_compare_report_folder(tmp_path, run_cli):
    """synth wrote its takes into a compare report, which compare then refused to update as a
    dataset folder (QA)."""
    report = tmp_path / "reports" / "g1"
    (report / "cells" / "ae").mkdir(parents=True)
    (report / "metrics.json").write_text('{"meta": {}, "models": []}')
    before = sorted(p.relative_to(report) for p in report.rglob("*"))
    code, out, err = run_cli("synth", "--dataset", report, "--takes", "2")
    assert (code, out) == (2, "") and err == (
        f"tapcheck: error: {report}: holds a compare report (metrics.json, cells/): takes there "
        "would make it a dataset, which compare no longer writes to — choose another folder for "
        "the dataset, e.g. --dataset bench\n"), err
    assert sorted(p.relative_to(report) for p in report.rglob("*")) == before
